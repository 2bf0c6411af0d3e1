/**
 * The apply-mode controller survives a kube-apiserver restart: its watches
 * break, the server is gone for a few seconds, and when it is back the same
 * Manager (never restarted) picks up changes made after the restart.
 *
 * Runs its own control plane, so restarting the API server does not disturb
 * the shared one the other files use.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from '../../kube/client.js';
import { Informer } from '../../kube/informer.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { Manager } from '../../controller/manager.js';
import { defaultCrdPaths, ensureBinaries, startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { startStandInKubelet, type StandInKubelet } from '../harness/stand-in-kubelet.js';
import { waitFor as waitUntil } from '../harness/wait.js';

const ns = 'kiln-restart';
const DOWN_MS = 3000;
/** How long the controller may take to converge once the API server is ready again. */
const RECOVERY_BUDGET_MS = 60_000;

let cp: ControlPlane;
let manager: Manager;
let kubelet: StandInKubelet | undefined;
const t0 = Date.now();
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`+${((Date.now() - t0) / 1000).toFixed(1)}s ${level} ${msg} ${JSON.stringify(fields ?? {})}`);

const cache = { apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', metadata: { name: 'c', namespace: ns }, spec: { image: 'x', size: 1, catalogServers: 1 } };
const grid = (name: string, spec: Record<string, unknown> = {}) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name, namespace: ns }, spec: { cache: 'c', ...spec } });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getJson<T = any>(args: string[]): Promise<T | undefined> {
  const r = await cp.kubectl(['get', ...args, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-30).join('\n'));

/** Ready for its current generation (re-read each poll, so a later patch is waited for too). */
async function readyAt(resource: string, name: string, timeoutMs?: number) {
  return waitFor(
    `${resource}/${name} Ready`,
    async () => {
      const o = await getJson(['-n', ns, resource, name]);
      const ready = o?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');
      const gen = o?.metadata.generation;
      return ready?.status === 'True' && o.status.observedGeneration === gen && ready.observedGeneration === gen ? o : undefined;
    },
    timeoutMs,
  );
}

async function gridJson(cm: string) {
  const o = await getJson(['-n', ns, 'configmap', cm]);
  return o ? (JSON.parse(o.data['grid.json']) as { name: string; partitions: number }) : undefined;
}

beforeAll(async () => {
  cp = await startControlPlane({ binDir: await ensureBinaries(), crdPaths: defaultCrdPaths() });
  // This control plane is the test's own: members run through a stand-in kubelet of its own.
  kubelet = startStandInKubelet(cp.info());
  await cp.kubectlOk(['create', 'namespace', ns]);
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({ kc, namespaces: [ns], concurrency: 4, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
  await manager.start();
  for (const r of [cache, grid('g1')]) await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(r) });
}, 300_000);

afterAll(async () => {
  await manager?.stop();
  kubelet?.stop();
  await cp?.stop();
});

describe('watch restarts', () => {
  it('a watch the watchdog restarts is not a failure: no backoff, no relist', async () => {
    const seen: string[] = [];
    const client = new KubeClient(loadKubeConfig({ kubeconfig: cp.kubeconfig }), { qps: 0 });
    // A kind with nothing in the namespace: no event, no bookmark within a second.
    const inf = new Informer(client, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      namespace: 'kiln-watchdog-nothing',
      watchdogSeconds: 1,
      resyncSeconds: 0,
      log: (level, msg) => seen.push(`${level} ${msg}`),
    });
    await inf.start();
    await new Promise((r) => setTimeout(r, 3500));
    inf.stop();
    await client.close();
    expect(seen.filter((l) => l.includes('watch silent')).length).toBeGreaterThanOrEqual(1);
    expect(seen.filter((l) => l.includes('failed'))).toEqual([]);
    expect(inf.lists).toBe(1);
  });
});

describe('kube-apiserver restart', () => {
  it('converges before the restart', async () => {
    await readyAt('cache', 'c');
    const g1 = await readyAt('grid', 'g1');
    expect(g1.metadata.generation).toBe(1);
    expect((await gridJson('c-grid-g1'))?.partitions).toBe(13);
  });

  it('after the API server restarts, the same Manager converges changes made afterwards', async () => {
    const dataGrids = manager.resources.get('DataGrid')!;
    const configMaps = manager.children.get('v1/ConfigMap')!;
    const listsBefore = { grid: dataGrids.lists, cm: configMaps.lists };
    const oldPid = cp.pids['kube-apiserver'];

    const down = Date.now();
    await cp.restartApiServer({ downMs: DOWN_MS });
    const up = Date.now();
    expect(cp.pids['kube-apiserver']).not.toBe(oldPid);
    log('info', 'test: kube-apiserver ready again', { restartMs: up - down });

    await cp.kubectlOk(['patch', '-n', ns, 'grid', 'g1', '--type=merge', '-p', JSON.stringify({ spec: { partitions: 17 } })]);
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(grid('g2', { partitions: 19 })) });

    const g1 = await readyAt('grid', 'g1', RECOVERY_BUDGET_MS);
    const g2 = await readyAt('grid', 'g2', RECOVERY_BUDGET_MS);
    const recoveredMs = Date.now() - up;
    expect(g1.metadata.generation).toBe(2);
    expect(g1.status.observedGeneration).toBe(2);
    expect(g2.status.observedGeneration).toBe(1);
    expect(await gridJson('c-grid-g1')).toMatchObject({ name: 'g1', partitions: 17 });
    expect(await gridJson('c-grid-g2')).toMatchObject({ name: 'g2', partitions: 19 });

    // A child deleted by hand after the restart is repaired: the child (ConfigMap) watch is back too.
    await cp.kubectlOk(['delete', '-n', ns, 'configmap', 'c-grid-g1']);
    await waitFor('c-grid-g1 recreated', async () => (await gridJson('c-grid-g1'))?.partitions === 17, RECOVERY_BUDGET_MS);
    const repairedMs = Date.now() - up;

    // The informers noticed: each relisted after the broken watch.
    expect(dataGrids.lists).toBeGreaterThan(listsBefore.grid);
    expect(configMaps.lists).toBeGreaterThan(listsBefore.cm);
    const failures = logs.filter((l) => /(watch|list) failed/.test(l));
    console.log(
      `[apiserver-restart] down+restart ${up - down} ms (downMs ${DOWN_MS}); converged ${recoveredMs} ms after ready; ` +
        `child repaired ${repairedMs} ms after ready; relists grid ${listsBefore.grid}->${dataGrids.lists}, configmap ${listsBefore.cm}->${configMaps.lists}; ` +
        `${failures.length} informer retries, first/last:\n${failures.slice(0, 1).concat(failures.slice(-1)).join('\n')}\n` +
        logs
          .filter((l) => /test:|reconciled/.test(l))
          .slice(-8)
          .join('\n'),
    );
  });
});
