import { afterEach, describe, expect, it } from 'vitest';
import { startHttpServer, startHttpServers, type HttpServer } from '../../lib/http-server.js';
import {
  controllerMetrics,
  instrumentClient,
  metricsText,
  recordAgentTask,
  recordGitCommit,
  recordGitPush,
  recordRestLatency,
  recordRestRequest,
  resetMetrics,
  restHost,
  setLeaderCheck,
} from '../../lib/metrics.js';
import { ApiError } from '../../kube/client.js';

/** The value of one series in Prometheus' text format (undefined: absent). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const servers: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  resetMetrics();
});

async function get(port: number, path: string): Promise<{ status: number; body: string; type: string | null }> {
  // No keep-alive: the tests close and reopen servers on the same ports.
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' } });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

describe('metrics and probes', () => {
  it("serves controller-runtime's and client-go's families, with their names, labels and buckets, and kiln's own", async () => {
    const s = await startHttpServer({ port: 0, host: '127.0.0.1', info: { version: '0.0.0-test', component: 'controller' } });
    servers.push(s);
    const m = controllerMetrics('directoryservice');
    m.init(4);
    m.added();
    m.started('DirectoryService/ns/a', 0.002);
    m.finished('DirectoryService/ns/a', 'success');
    m.added();
    m.started('DirectoryService/ns/a', 0.002);
    m.finished('DirectoryService/ns/a', 'error');
    m.retried();
    recordRestRequest('127.0.0.1:6443', 'PATCH', 201);
    recordRestRequest('127.0.0.1:6443', 'LIST', 200);
    recordRestRequest('127.0.0.1:6443', 'WATCH', 200);
    recordRestRequest('127.0.0.1:6443', 'GET', 0);
    recordRestLatency('127.0.0.1:6443', 'PATCH', 0.03);
    recordGitCommit();
    recordGitPush('success');
    recordGitPush('error');
    recordAgentTask('PostgresDatabase', 'database', 'success');
    setLeaderCheck('kiln-controller', () => true);
    const { status, body, type } = await get(s.port, '/metrics');
    setLeaderCheck();
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    const c = 'controller="directoryservice"';
    // controller-runtime's reconcile families: every result series exists from the start.
    expect(sample(body, `controller_runtime_reconcile_total{${c},result="success"}`)).toBe(1);
    expect(sample(body, `controller_runtime_reconcile_total{${c},result="error"}`)).toBe(1);
    expect(sample(body, `controller_runtime_reconcile_total{${c},result="requeue_after"}`)).toBe(0);
    expect(sample(body, `controller_runtime_reconcile_total{${c},result="requeue"}`)).toBe(0);
    expect(sample(body, `controller_runtime_reconcile_errors_total{${c}}`)).toBe(1);
    expect(sample(body, `controller_runtime_reconcile_time_seconds_count{${c}}`)).toBe(2);
    expect(sample(body, `controller_runtime_max_concurrent_reconciles{${c}}`)).toBe(4);
    expect(sample(body, `controller_runtime_active_workers{${c}}`)).toBe(0);
    // controller-runtime's reconcile_time buckets, exactly.
    const les = (family: string, labels: string) => [...body.matchAll(new RegExp(`^${family}_bucket\\{le="([^"]+)",${labels}\\}`, 'gm'))].map((x) => x[1]);
    expect(les('controller_runtime_reconcile_time_seconds', c)).toEqual([
      '0.005',
      '0.01',
      '0.025',
      '0.05',
      '0.1',
      '0.15',
      '0.2',
      '0.25',
      '0.3',
      '0.35',
      '0.4',
      '0.45',
      '0.5',
      '0.6',
      '0.7',
      '0.8',
      '0.9',
      '1',
      '1.25',
      '1.5',
      '1.75',
      '2',
      '2.5',
      '3',
      '3.5',
      '4',
      '4.5',
      '5',
      '6',
      '7',
      '8',
      '9',
      '10',
      '15',
      '20',
      '25',
      '30',
      '40',
      '50',
      '60',
      '+Inf',
    ]);
    // The work queue's, named after the controller; prometheus.ExponentialBuckets(10e-9, 10, 12).
    const q = 'name="directoryservice",controller="directoryservice"';
    expect(sample(body, `workqueue_depth{${q},priority="0"}`)).toBe(0);
    expect(sample(body, `workqueue_adds_total{${q}}`)).toBe(2);
    expect(sample(body, `workqueue_retries_total{${q}}`)).toBe(1);
    expect(sample(body, `workqueue_queue_duration_seconds_count{${q}}`)).toBe(2);
    expect(sample(body, `workqueue_work_duration_seconds_count{${q}}`)).toBe(2);
    expect(sample(body, `workqueue_unfinished_work_seconds{${q}}`)).toBe(0);
    expect(sample(body, `workqueue_longest_running_processor_seconds{${q}}`)).toBe(0);
    // The float64s Go's repeated multiplication gives (its text format prints 1e-08, 9.999999999999999e-06, ...).
    expect(les('workqueue_queue_duration_seconds', q)).toEqual([
      '1e-8',
      '1e-7',
      '0.000001',
      '0.000009999999999999999',
      '0.00009999999999999999',
      '0.001',
      '0.01',
      '0.1',
      '1',
      '10',
      '100',
      '1000',
      '+Inf',
    ]);
    expect(les('workqueue_work_duration_seconds', q)).toEqual(les('workqueue_queue_duration_seconds', q));
    // client-go's REST client families: code, method (a LIST or WATCH is a GET), host; no reply is <error>.
    expect(sample(body, 'rest_client_requests_total{code="201",method="PATCH",host="127.0.0.1:6443"}')).toBe(1);
    expect(sample(body, 'rest_client_requests_total{code="200",method="GET",host="127.0.0.1:6443"}')).toBe(2);
    expect(sample(body, 'rest_client_requests_total{code="<error>",method="GET",host="127.0.0.1:6443"}')).toBe(1);
    expect(sample(body, 'rest_client_request_duration_seconds_count{verb="PATCH",host="127.0.0.1:6443"}')).toBe(1);
    expect(les('rest_client_request_duration_seconds', 'verb="PATCH",host="127.0.0.1:6443"')).toEqual(['0.005', '0.025', '0.1', '0.25', '0.5', '1', '2', '4', '8', '15', '30', '60', '+Inf']);
    expect(sample(body, 'leader_election_master_status{name="kiln-controller"}')).toBe(1);
    // kiln's own keep their prefix; the ones controller-runtime's replace are gone.
    expect(sample(body, 'kiln_git_commits_total')).toBe(1);
    expect(sample(body, 'kiln_git_pushes_total{outcome="success"}')).toBe(1);
    expect(sample(body, 'kiln_git_pushes_total{outcome="error"}')).toBe(1);
    expect(sample(body, 'kiln_agent_tasks_total{kind="PostgresDatabase",task="database",outcome="success"}')).toBe(1);
    expect(sample(body, 'kiln_build_info{version="0.0.0-test",component="controller"}')).toBe(1);
    expect(body).not.toMatch(/^kiln_(reconcile|workqueue|api_requests|leader)/m);
    expect(body).toMatch(/^process_cpu_user_seconds_total /m);
    expect(body).toMatch(/^# HELP controller_runtime_reconcile_total Total number of reconciliations per controller$/m);
    expect(body).toMatch(/^# TYPE controller_runtime_reconcile_time_seconds histogram$/m);
  });

  it('answers /healthz always and /readyz from its callback', async () => {
    let ready = false;
    const s = await startHttpServer({ port: 0, host: '127.0.0.1', ready: () => ready });
    servers.push(s);
    expect((await get(s.port, '/healthz')).status).toBe(200);
    expect(await get(s.port, '/readyz')).toMatchObject({ status: 503, body: 'not ready\n' });
    ready = true;
    expect(await get(s.port, '/readyz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect((await get(s.port, '/nothing')).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${s.port}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('a throwing or false health check is 503', async () => {
    const s = await startHttpServer({
      port: 0,
      host: '127.0.0.1',
      healthy: () => false,
      ready: () => {
        throw new Error('boom');
      },
    });
    servers.push(s);
    expect((await get(s.port, '/healthz')).status).toBe(503);
    expect((await get(s.port, '/readyz')).status).toBe(503);
  });

  it('splits metrics and probes over two ports, or one, or turns them off', async () => {
    const probe = await startHttpServer({ port: 0, host: '127.0.0.1' });
    const first = probe.port;
    await probe.close();
    const probe2 = await startHttpServer({ port: 0, host: '127.0.0.1' });
    const second = probe2.port;
    await probe2.close();
    const two = await startHttpServers({ metrics: { host: '127.0.0.1', port: first }, health: { host: '127.0.0.1', port: second }, ready: () => true });
    servers.push(...two);
    expect(two).toHaveLength(2);
    expect((await get(first, '/metrics')).status).toBe(200);
    expect((await get(first, '/healthz')).status).toBe(404);
    expect((await get(second, '/readyz')).status).toBe(200);
    expect((await get(second, '/metrics')).status).toBe(404);
    await Promise.all(servers.splice(0).map((s) => s.close()));
    const one = await startHttpServers({ metrics: { host: '127.0.0.1', port: first }, health: { host: '127.0.0.1', port: first } });
    servers.push(...one);
    expect(one).toHaveLength(1);
    expect((await get(first, '/metrics')).status).toBe(200);
    expect((await get(first, '/healthz')).status).toBe(200);
    expect(await startHttpServers({})).toEqual([]);
    await Promise.all(servers.splice(0).map((s) => s.close()));
    // Port 0 (":0"): each server on a port of its own that the kernel picks, even when both ask for 0.
    const picked = await startHttpServers({ metrics: { host: '127.0.0.1', port: 0 }, health: { host: '127.0.0.1', port: 0 } });
    servers.push(...picked);
    expect(picked).toHaveLength(2);
    expect(picked[0]!.port).not.toBe(picked[1]!.port);
    expect((await get(picked[0]!.port, '/metrics')).status).toBe(200);
    expect((await get(picked[1]!.port, '/readyz')).status).toBe(200);
  });

  it('rejects when the port is taken', async () => {
    const s = await startHttpServer({ port: 0, host: '127.0.0.1' });
    servers.push(s);
    await expect(startHttpServer({ port: s.port, host: '127.0.0.1' })).rejects.toThrow(/EADDRINUSE/);
  });
});

describe('leader_election_master_status', () => {
  it('asks its check at every scrape, and is absent without leader election', async () => {
    let leading = false;
    setLeaderCheck('kiln-controller', () => leading);
    expect(await metricsText()).toMatch(/^leader_election_master_status\{name="kiln-controller"\} 0$/m);
    leading = true;
    expect(await metricsText()).toMatch(/^leader_election_master_status\{name="kiln-controller"\} 1$/m);
    setLeaderCheck();
    expect(await metricsText()).not.toMatch(/^leader_election_master_status\{/m);
  });
});

describe('rest_client_* of a KubeClient', () => {
  it('counts each reply by code, method and host, times requests, and counts no reply as <error>', async () => {
    expect(restHost('https://10.96.0.1:443')).toBe('10.96.0.1:443');
    expect(restHost('https://api.example.com/prefix/')).toBe('api.example.com');
    const calls: string[] = [];
    const client = {
      server: 'https://api.example.com:6443',
      onRequest: undefined as ((verb: never, path: string, status: number) => void) | undefined,
      async request(method: string, path: string): Promise<unknown> {
        await new Promise((r) => setTimeout(r, 20));
        calls.push(`${method} ${path}`);
        if (path === '/gone') {
          this.onRequest?.('GET' as never, path, 404);
          throw new ApiError(404, 'NotFound', 'GET /gone: 404', 'GET', path);
        }
        if (path === '/down') throw new Error('connect ECONNREFUSED');
        this.onRequest?.((path.endsWith('s') ? 'LIST' : method) as never, path, method === 'POST' ? 201 : 200);
        return {};
      },
    };
    instrumentClient(client);
    await client.request('GET', '/api/v1/namespaces/a/configmaps');
    await client.request('POST', '/api/v1/namespaces/a/configmap');
    await expect(client.request('GET', '/gone')).rejects.toThrow(/404/);
    await expect(client.request('GET', '/down')).rejects.toThrow(/ECONNREFUSED/);
    expect(calls).toHaveLength(4);
    const text = await metricsText();
    const h = 'host="api.example.com:6443"';
    expect(sample(text, `rest_client_requests_total{code="200",method="GET",${h}}`)).toBe(1);
    expect(sample(text, `rest_client_requests_total{code="201",method="POST",${h}}`)).toBe(1);
    expect(sample(text, `rest_client_requests_total{code="404",method="GET",${h}}`)).toBe(1);
    expect(sample(text, `rest_client_requests_total{code="<error>",method="GET",${h}}`)).toBe(1);
    expect(sample(text, `rest_client_request_duration_seconds_count{verb="GET",${h}}`)).toBe(3);
    expect(sample(text, `rest_client_request_duration_seconds_sum{verb="GET",${h}}`)).toBeGreaterThanOrEqual(0.05);
    expect(sample(text, `rest_client_request_duration_seconds_bucket{le="0.005",verb="GET",${h}}`)).toBe(0);
  });
});

describe('an instrumented WorkQueue', () => {
  it('records what controller-runtime records: depth, adds, retries, queue and work time, workers, results per controller', async () => {
    const { WorkQueue } = await import('../../kube/queue.js');
    let fail = true;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let requeued = false;
    const q = new WorkQueue(
      async (key) => {
        if (key.startsWith('DataGrid/')) await gate;
        if (key.startsWith('CacheCluster/') && fail) {
          fail = false;
          throw new Error('boom');
        }
        if (key === 'CacheCluster/ns/c' && !requeued) {
          requeued = true;
          return { requeueAfterMs: 5 };
        }
        return undefined;
      },
      { concurrency: 1, baseDelayMs: 1 },
    ).instrument(undefined, ['DataGrid', 'CacheCluster', 'PostgresInstance']);
    const grid = 'name="datagrid",controller="datagrid"';
    const cache = 'name="cachecluster",controller="cachecluster"';
    let text = await metricsText();
    // Every series a controller-runtime controller has from the start, for each kind named.
    expect(sample(text, 'controller_runtime_reconcile_total{controller="postgresinstance",result="success"}')).toBe(0);
    expect(sample(text, 'controller_runtime_max_concurrent_reconciles{controller="postgresinstance"}')).toBe(1);
    expect(sample(text, 'workqueue_depth{name="postgresinstance",controller="postgresinstance",priority="0"}')).toBe(0);
    q.add('DataGrid/ns/a');
    q.add('CacheCluster/ns/b');
    q.add('CacheCluster/ns/b'); // already waiting: not added again
    text = await metricsText();
    expect(sample(text, `workqueue_depth{${grid},priority="0"}`)).toBe(1);
    expect(sample(text, `workqueue_depth{${cache},priority="0"}`)).toBe(1);
    q.start();
    await new Promise((r) => setTimeout(r, 30));
    q.add('DataGrid/ns/a'); // while it runs: waits, and runs again afterwards
    text = await metricsText();
    expect(sample(text, `workqueue_depth{${grid},priority="0"}`)).toBe(1); // a again (a itself is being worked on)
    expect(sample(text, `workqueue_depth{${cache},priority="0"}`)).toBe(1);
    expect(sample(text, 'controller_runtime_active_workers{controller="datagrid"}')).toBe(1);
    expect(sample(text, `workqueue_longest_running_processor_seconds{${grid}}`)).toBeGreaterThanOrEqual(0.02);
    expect(sample(text, `workqueue_unfinished_work_seconds{${grid}}`)).toBeGreaterThanOrEqual(0.02);
    release();
    q.add('CacheCluster/ns/c');
    for (let i = 0; i < 20; i++) {
      await q.idle();
      await new Promise((r) => setTimeout(r, 20));
    }
    text = await metricsText();
    expect(sample(text, `workqueue_depth{${grid},priority="0"}`)).toBe(0);
    expect(sample(text, `workqueue_depth{${cache},priority="0"}`)).toBe(0);
    expect(sample(text, 'controller_runtime_active_workers{controller="datagrid"}')).toBe(0);
    expect(sample(text, `workqueue_unfinished_work_seconds{${grid}}`)).toBe(0);
    expect(sample(text, `workqueue_adds_total{${grid}}`)).toBe(2); // a, and a while it ran
    expect(sample(text, `workqueue_adds_total{${cache}}`)).toBe(4); // b, b after its backoff, c, c after its requeue
    expect(sample(text, `workqueue_retries_total{${cache}}`)).toBe(2); // b's backoff, c's requeue-after
    expect(sample(text, `workqueue_retries_total{${grid}}`)).toBe(0);
    expect(sample(text, 'controller_runtime_reconcile_total{controller="datagrid",result="success"}')).toBe(2);
    expect(sample(text, 'controller_runtime_reconcile_total{controller="cachecluster",result="error"}')).toBe(1);
    expect(sample(text, 'controller_runtime_reconcile_errors_total{controller="cachecluster"}')).toBe(1);
    expect(sample(text, 'controller_runtime_reconcile_total{controller="cachecluster",result="requeue_after"}')).toBe(1);
    expect(sample(text, 'controller_runtime_reconcile_total{controller="cachecluster",result="success"}')).toBe(2);
    expect(sample(text, `workqueue_work_duration_seconds_count{${grid}}`)).toBe(2);
    expect(sample(text, `workqueue_queue_duration_seconds_count{${cache}}`)).toBe(4);
    expect(sample(text, 'controller_runtime_reconcile_time_seconds_count{controller="cachecluster"}')).toBe(4);
    expect(sample(text, 'controller_runtime_reconcile_time_seconds_sum{controller="datagrid"}')).toBeGreaterThanOrEqual(0.02);
    q.stop();
  });
});
