/**
 * The apply-mode controller talks to the real kube-apiserver through a fault
 * proxy (test/harness/fault-proxy.ts; TLS passes through it unchanged, the
 * server's certificate names 127.0.0.1). For each fault, applied to the open
 * connections (watches, pooled keep-alive connections) and to new ones:
 *  - the failure is noticed within a bounded time and logged naming it
 *    (a silent watch, a request timeout, a reset or closed connection);
 *  - a reconcile in flight is not stuck: it fails within the request timeout
 *    and its worker is free again;
 *  - when the fault ends (for new connections only: the old ones stay dead,
 *    as after a NAT or load-balancer entry is dropped) the same Manager picks
 *    up a change made during the fault.
 * The timeouts are shortened (4 s per request, 4 s of watch silence) so the
 * file runs in well under a minute; the defaults are 60 s and 120 s.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { KubeClient } from '../../kube/client.js';
import { Informer } from '../../kube/informer.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { Manager } from '../../controller/manager.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { startFaultProxy, type Fault, type FaultProxy } from '../harness/fault-proxy.js';
import { waitFor as waitUntil } from '../harness/wait.js';

const ns = `kiln-faults-api-${randomBytes(3).toString('hex')}`;
const REQUEST_MS = 4000;
const WATCH_SILENT_S = 4;
/** Detection must come within a few timeouts (the watchdog checks every WATCH_SILENT_S). */
const DETECT_MS = 3 * WATCH_SILENT_S * 1000;
/** After the fault ends: a backoff (capped at 30 s by default, so at most that) plus a relist and a reconcile. */
const RECOVER_MS = 45_000;

let cp: ControlPlaneClient;
let proxy: FaultProxy;
let manager: Manager;
const t0 = Date.now();
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`+${((Date.now() - t0) / 1000).toFixed(1)}s ${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const logsSince = (n: number) => logs.slice(n);

const cache = { apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', metadata: { name: 'c', namespace: ns }, spec: { image: 'x', size: 1, catalogServers: 1 } };
const grid = { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g1', namespace: ns }, spec: { cache: 'c' } };

const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number) => waitUntil(what, fn, timeoutMs, () => logs.slice(-25).join('\n'));

async function partitions(): Promise<number | undefined> {
  const r = await cp.kubectl(['get', '-n', ns, 'configmap', 'c-grid-g1', '-o', 'json']);
  return r.code === 0 ? (JSON.parse(JSON.parse(r.stdout).data['grid.json']) as { partitions: number }).partitions : undefined;
}

/** Changes the DataGrid directly (not through the proxy): the controller can only learn of it through its watch. */
const setPartitions = (n: number) => cp.kubectlOk(['patch', '-n', ns, 'grid', 'g1', '--type=merge', '-p', JSON.stringify({ spec: { partitions: n } })]);

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  const direct = new URL(cp.server);
  proxy = await startFaultProxy({ host: direct.hostname, port: Number(direct.port) });
  const kc = { ...loadKubeConfig({ kubeconfig: cp.kubeconfig }), server: proxy.url('https') };
  manager = new Manager({ kc, namespaces: [ns], concurrency: 2, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log, timeouts: { requestMs: REQUEST_MS, watchSilentSeconds: WATCH_SILENT_S } });
  await manager.start();
  for (const r of [cache, grid]) await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(r) });
  await waitFor('c-grid-g1 rendered', async () => (await partitions()) === 13, 30_000);
}, 120_000);

afterAll(async () => {
  if (process.env['KILN_FAULTS_LOG']) (await import('node:fs')).writeFileSync(process.env['KILN_FAULTS_LOG'], logs.join('\n'));
  await manager?.stop();
  await proxy?.close();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

/** What the log must show, per fault, once the open connections are hit. */
const detected: Record<string, RegExp> = {
  blackhole: /watch silent, restarting|no answer within 4 s/,
  reset: /(watch|list) failed.*ECONNRESET|(watch|list) failed.*socket hang up/,
  'half-close': /(watch|list) failed.*(socket hang up|aborted|ECONNRESET|closed)/,
};

describe('one informer behind a partition', () => {
  it('a watch that went silent is reopened on a new connection, not on a dead pooled one, and gets what it missed', async () => {
    const direct = new URL(cp.server);
    const p = await startFaultProxy({ host: direct.hostname, port: Number(direct.port) });
    const client = new KubeClient({ ...loadKubeConfig({ kubeconfig: cp.kubeconfig }), server: p.url('https') }, { qps: 0, requestTimeoutMs: REQUEST_MS });
    const seen: string[] = [];
    const inf = new Informer(client, { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, watchdogSeconds: 2, resyncSeconds: 0, log: (level, msg) => logs.push(`informer ${level} ${msg}`) });
    inf.on((e, o) => seen.push(`${e} ${o.metadata.name}`));
    try {
      await inf.start();
      // Keep-alive connections in the pool, as a running controller has.
      await Promise.all([1, 2, 3, 4, 5, 6].map(() => client.request('GET', '/version')));
      p.setFault({ kind: 'blackhole' }, { existing: true });
      await cp.kubectlOk(['create', 'configmap', '-n', ns, 'made-during-partition']);
      await new Promise((r) => setTimeout(r, 3000));
      expect(seen).not.toContain('added made-during-partition');
      // The partition ends for new connections; those open stay dead, as after a dropped NAT entry.
      p.setFault({ kind: 'none' });
      const healed = Date.now();
      await waitFor('the missed ConfigMap', () => seen.includes('added made-during-partition'), 15_000);
      console.log(`[faults-apiserver] informer: missed event delivered ${Date.now() - healed} ms after the partition ended (watchdog 2 s)`);
    } finally {
      inf.stop();
      await client.close();
      await p.close();
    }
  });
});

describe('kube-apiserver behind a faulty network', () => {
  // Partition counts must be prime (validate/checks.ts).
  const primes = [29, 31, 37];
  for (const fault of [{ kind: 'blackhole' }, { kind: 'reset' }, { kind: 'half-close' }] as Fault[]) {
    it(`${fault.kind}: noticed in bounded time, in-flight work freed, converges when it ends`, async () => {
      const mark = logs.length;
      const want = primes.shift()!;
      let noticed: string;
      const faultAt = Date.now();
      proxy.setFault(fault, { existing: true });
      await setPartitions(want);

      try {
        // A request made during the fault (what a reconcile's worker waits on) ends within the
        // request timeout, naming itself, instead of holding its worker.
        const started = Date.now();
        const err = await manager.client.get({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', namespace: ns, name: 'g1' }).then(
          () => undefined,
          (e: unknown) => e as Error,
        );
        expect(err?.message).toMatch(
          fault.kind === 'blackhole' ? `GET /apis/kiln.dev/v1alpha1/namespaces/${ns}/datagrids/g1: no answer within ${REQUEST_MS / 1000} s` : /ECONNRESET|socket hang up|socket disconnected/,
        );
        expect(Date.now() - started).toBeLessThan(REQUEST_MS + 1500);
        const line = await waitFor(`the informers noticing ${fault.kind}`, () => logsSince(mark).find((l) => detected[fault.kind]!.test(l)), DETECT_MS);
        noticed = `after ${Date.now() - faultAt} ms (${line.slice(0, 160)})`;
        expect(await partitions()).not.toBe(want);
      } finally {
        proxy.setFault({ kind: 'none' });
      }
      const healedAt = Date.now();
      await waitFor(`partitions ${want} after ${fault.kind} ended`, async () => (await partitions()) === want, RECOVER_MS);
      console.log(`[faults-apiserver] ${fault.kind}: noticed ${noticed}; converged ${Date.now() - healedAt} ms after the fault ended`);
    });
  }

  it('delay: slow answers (100 ms each way) still converge', async () => {
    proxy.setFault({ kind: 'delay', ms: 100 }, { existing: true });
    try {
      await setPartitions(41);
      await waitFor('partitions 41 under delay', async () => (await partitions()) === 41, RECOVER_MS);
    } finally {
      proxy.setFault({ kind: 'none' }, { existing: true });
    }
  });
});
