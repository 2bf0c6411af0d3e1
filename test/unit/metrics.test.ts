import { afterEach, describe, expect, it } from 'vitest';
import { startHttpServer, startHttpServers, type HttpServer } from '../../lib/http-server.js';
import {
  recordAgentTask, recordApiRequest, recordGitCommit, recordGitPush, recordQueueAdd, recordQueueRetry,
  recordReconcile, resetMetrics, setLeader, setLeaderCheck, setQueueDepth, metricsText,
} from '../../lib/metrics.js';

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
  it('serves every kiln metric in Prometheus text format', async () => {
    const s = await startHttpServer({ port: 0, host: '127.0.0.1', info: { version: '0.0.0-test', component: 'controller' } });
    servers.push(s);
    recordReconcile('DirectoryService', 0.02, 'success');
    recordReconcile('DirectoryService', 0.5, 'error');
    recordReconcile('PostgresInstance', 0.01, 'success');
    setQueueDepth('controller', 3);
    recordQueueAdd('controller');
    recordQueueRetry('controller');
    recordApiRequest('PATCH', 200);
    recordApiRequest('GET', 404);
    recordGitCommit();
    recordGitPush('success');
    recordGitPush('error');
    recordAgentTask('PostgresDatabase', 'database', 'success');
    setLeader(true);
    const { status, body, type } = await get(s.port, '/metrics');
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(body).toContain('kiln_reconcile_total{kind="DirectoryService",outcome="success"} 1');
    expect(body).toContain('kiln_reconcile_total{kind="DirectoryService",outcome="error"} 1');
    expect(body).toContain('kiln_reconcile_errors_total{kind="DirectoryService"} 1');
    expect(body).toContain('kiln_reconcile_duration_seconds_count{kind="PostgresInstance",outcome="success"} 1');
    expect(body).toContain('kiln_reconcile_duration_seconds_bucket{le="0.025",kind="DirectoryService",outcome="success"} 1');
    expect(body).toContain('kiln_workqueue_depth{name="controller"} 3');
    expect(body).toContain('kiln_workqueue_adds_total{name="controller"} 1');
    expect(body).toContain('kiln_workqueue_retries_total{name="controller"} 1');
    expect(body).toContain('kiln_api_requests_total{verb="PATCH",code="200"} 1');
    expect(body).toContain('kiln_api_requests_total{verb="GET",code="404"} 1');
    expect(body).toContain('kiln_git_commits_total 1');
    expect(body).toContain('kiln_git_pushes_total{outcome="success"} 1');
    expect(body).toContain('kiln_git_pushes_total{outcome="error"} 1');
    expect(body).toContain('kiln_agent_tasks_total{kind="PostgresDatabase",task="database",outcome="success"} 1');
    expect(body).toContain('kiln_leader 1');
    expect(body).toContain('kiln_build_info{version="0.0.0-test",component="controller"} 1');
    expect(body).toMatch(/^process_cpu_user_seconds_total /m);
    expect(body).toMatch(/^# HELP kiln_reconcile_total /m);
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
    const s = await startHttpServer({ port: 0, host: '127.0.0.1', healthy: () => false, ready: () => { throw new Error('boom'); } });
    servers.push(s);
    expect((await get(s.port, '/healthz')).status).toBe(503);
    expect((await get(s.port, '/readyz')).status).toBe(503);
  });

  it('splits metrics and probes over two ports, or one, or turns them off', async () => {
    const probe = await startHttpServer({ port: 0, host: '127.0.0.1' });
    const free = [probe.port];
    await probe.close();
    const probe2 = await startHttpServer({ port: 0, host: '127.0.0.1' });
    free.push(probe2.port);
    await probe2.close();
    const two = await startHttpServers({ metrics: { host: '127.0.0.1', port: free[0] }, health: { host: '127.0.0.1', port: free[1] }, ready: () => true });
    servers.push(...two);
    expect(two).toHaveLength(2);
    expect((await get(free[0], '/metrics')).status).toBe(200);
    expect((await get(free[0], '/healthz')).status).toBe(404);
    expect((await get(free[1], '/readyz')).status).toBe(200);
    expect((await get(free[1], '/metrics')).status).toBe(404);
    await Promise.all(servers.splice(0).map((s) => s.close()));
    const one = await startHttpServers({ metrics: { host: '127.0.0.1', port: free[0] }, health: { host: '127.0.0.1', port: free[0] } });
    servers.push(...one);
    expect(one).toHaveLength(1);
    expect((await get(free[0], '/metrics')).status).toBe(200);
    expect((await get(free[0], '/healthz')).status).toBe(200);
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

describe('kiln_leader', () => {
  it('asks its check at every scrape', async () => {
    let leading = false;
    setLeaderCheck(() => leading);
    expect(await metricsText()).toMatch(/^kiln_leader 0$/m);
    leading = true;
    expect(await metricsText()).toMatch(/^kiln_leader 1$/m);
    setLeaderCheck();
  });
});

describe('an instrumented WorkQueue', () => {
  it('records depth, adds, retries and each run as a reconcile of the key\'s kind', async () => {
    const { WorkQueue } = await import('../../controller/queue.js');
    const { metricsText } = await import('../../lib/metrics.js');
    let fail = true;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const q = new WorkQueue(async (key) => {
      if (key.startsWith('DataGrid/')) await gate;
      if (key.startsWith('CacheCluster/') && fail) {
        fail = false;
        throw new Error('boom');
      }
    }, { concurrency: 1, baseDelayMs: 1 }).instrument('test');
    q.add('DataGrid/ns/a');
    q.add('CacheCluster/ns/b');
    q.add('CacheCluster/ns/b'); // already waiting: not added again
    expect(await metricsText()).toContain('kiln_workqueue_depth{name="test"} 2');
    q.start();
    expect(await metricsText()).toContain('kiln_workqueue_depth{name="test"} 2'); // one running, one waiting
    release();
    await q.idle();
    await new Promise((r) => setTimeout(r, 30));
    await q.idle();
    const text = await metricsText();
    expect(text).toContain('kiln_workqueue_depth{name="test"} 0');
    expect(text).toContain('kiln_workqueue_adds_total{name="test"} 3'); // a, b, and b after its backoff
    expect(text).toContain('kiln_workqueue_retries_total{name="test"} 1');
    expect(text).toContain('kiln_reconcile_total{kind="DataGrid",outcome="success"} 1');
    expect(text).toContain('kiln_reconcile_total{kind="CacheCluster",outcome="error"} 1');
    expect(text).toContain('kiln_reconcile_total{kind="CacheCluster",outcome="success"} 1');
    q.stop();
  });
});
