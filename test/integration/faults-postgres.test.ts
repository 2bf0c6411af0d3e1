/**
 * The agent's PostgresDatabase work against a real PostgreSQL 15 reached
 * through a fault proxy (instance pg-bad), beside an instance on the same
 * server reached directly (pg-good). The agent runs ONE worker, so pg-good's
 * database can be created only if the faulted reconcile gives its worker back.
 * Each fault hits the pooled connections too (`existing: true`). For each:
 *  - the faulted database reports DatabaseReady=False naming the failure
 *    within the agent's PostgreSQL timeouts (shortened here with
 *    --postgres-timeout 6: connect 2 s, a query 11 s);
 *  - the healthy instance's database is created meanwhile;
 *  - when the fault ends, the faulted one is created.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { postgresPolicy } from '../../agent/policy.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { startFaultProxy, type Fault, type FaultProxy } from '../harness/fault-proxy.js';
import { startPostgres, type PostgresServer } from '../harness/postgres.js';
import { waitFor as waitUntil } from '../harness/wait.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const FAULTS: Fault[] = [{ kind: 'blackhole' }, { kind: 'half-close' }, { kind: 'reset' }, { kind: 'delay', ms: 100 }];
/** The query timeout (11 s) plus a connect and a status write. */
const DETECT_MS = 25_000;

let cp: ControlPlaneClient;
let server: PostgresServer;
let proxy: FaultProxy;
let agent: Agent;
const ns = `kiln-faults-pg-${randomBytes(3).toString('hex')}`;
const t0 = Date.now();
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`+${((Date.now() - t0) / 1000).toFixed(1)}s ${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number) => waitUntil(what, fn, timeoutMs, () => logs.slice(-15).join('\n'));

const apply = (obj: unknown) => cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(obj) });
const sqlName = (s: string) => s.replace(/-/g, '_');

async function ready(name: string): Promise<Any> {
  const r = await cp.kubectl(['get', '-n', ns, 'postgresdatabase', name, '-o', 'json']);
  if (r.code !== 0) return undefined;
  return JSON.parse(r.stdout).status?.conditions?.find((c: Any) => c.type === 'DatabaseReady');
}
const exists = async (db: string) => (await server.sql(`SELECT count(*) FROM pg_database WHERE datname = '${db}'`)).trim() === '1';

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  server = await startPostgres();
  proxy = await startFaultProxy({ host: server.host, port: server.port });
  await cp.kubectlOk(['create', 'namespace', ns]);
  await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', 'pg-superuser', `--from-literal=password=${server.password}`]);
  for (const name of ['pg-bad', 'pg-good'])
    await apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name, namespace: ns }, spec: { superuserSecret: { name: 'pg-superuser' } } });
  agent = new Agent({
    kc: loadKubeConfig({ kubeconfig: cp.kubeconfig }),
    namespaces: [ns],
    concurrency: 1,
    qps: 0,
    burst: 0,
    passwordIntervalSeconds: 300,
    databaseCheckSeconds: 300,
    endpoints: { [`PostgresInstance/${ns}/pg-bad`]: `${proxy.host}:${proxy.port}`, [`PostgresInstance/${ns}/pg-good`]: `${server.host}:${server.port}` },
    postgres: postgresPolicy({ timeoutSeconds: 6 }),
    log,
  });
  await agent.start();
  // One database on each first, so the faults also meet pooled connections.
  for (const [name, instance] of [
    ['warm-bad', 'pg-bad'],
    ['warm-good', 'pg-good'],
  ] as const)
    await apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name, namespace: ns }, spec: { instance, name: sqlName(name) } });
  for (const name of ['warm-bad', 'warm-good']) await waitFor(`${name} ready`, async () => (await ready(name))?.status === 'True', 30_000);
}, 120_000);

afterAll(async () => {
  if (process.env['KILN_FAULTS_LOG']) (await import('node:fs')).writeFileSync(process.env['KILN_FAULTS_LOG'], logs.join('\n'));
  await agent?.stop();
  await proxy?.close();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  await server?.destroy();
});

describe('PostgreSQL behind a faulty network', () => {
  for (const fault of FAULTS) {
    it(`${fault.kind}: the faulted reconcile fails in bounded time naming why, the one worker is freed for a healthy instance, and it converges when the fault ends`, async () => {
      const bad = `bad-${fault.kind}`;
      const good = `good-${fault.kind}`;
      proxy.setFault(fault, { existing: true });
      try {
        const started = Date.now();
        const before = proxy.accepted;
        await apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name: bad, namespace: ns }, spec: { instance: 'pg-bad', name: sqlName(bad) } });
        // The faulted reconcile takes the only worker before the healthy one queues behind it.
        await new Promise((r) => setTimeout(r, 1500));
        await apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name: good, namespace: ns }, spec: { instance: 'pg-good', name: sqlName(good) } });
        if (fault.kind === 'delay') {
          await waitFor(`${bad} ready through a ${fault.ms} ms delay`, async () => (await ready(bad))?.status === 'True', DETECT_MS);
        } else {
          const c = await waitFor(
            `${bad} DatabaseReady=False`,
            async () => {
              const c = await ready(bad);
              return c?.status === 'False' && c.reason === 'PostgresError' ? c : undefined;
            },
            DETECT_MS,
          );
          console.log(`[faults-postgres] ${fault.kind}: ${c.reason} after ${Date.now() - started} ms (${proxy.accepted - before} new connections): ${c.message}`);
          expect(c.message).toMatch(/instance pg-bad: \S/);
        }
        await waitFor(`${good} ready while pg-bad is faulted`, async () => (await ready(good))?.status === 'True', DETECT_MS);
        expect(await exists(sqlName(good))).toBe(true);
        if (fault.kind !== 'delay') expect(await exists(sqlName(bad))).toBe(false);
      } finally {
        proxy.setFault({ kind: 'none' });
      }
      const healed = Date.now();
      await waitFor(`${bad} ready after the fault ended`, async () => (await ready(bad))?.status === 'True', 40_000);
      expect(await exists(sqlName(bad))).toBe(true);
      console.log(`[faults-postgres] ${fault.kind}: converged ${Date.now() - healed} ms after the fault ended`);
    });
  }
});
