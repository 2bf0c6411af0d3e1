/**
 * Losing the Lease ends the process, even with work in flight (issue #19):
 * `kiln agent` and `kiln controller` run as child processes against the real
 * API server with --leader-elect; once they lead, the Lease is taken by
 * another identity and each must exit 1 with a clear log line within the
 * renew deadline plus a small margin. The agent's work in flight is a
 * database reconcile whose query hangs: a real PostgreSQL whose
 * pg_shdescription catalog (kiln's markers; connecting does not read it) is
 * locked by a transaction the test holds open, so the agent's pool cannot
 * end and its stop() cannot finish.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { startPostgres, type PostgresServer } from '../harness/postgres.js';
import { waitFor } from '../harness/wait.js';
import { freePort, startKiln, type KilnProcess } from './install-support.js';

let cp: ControlPlaneClient;
const ns = `kiln-lease-exit-${randomBytes(3).toString('hex')}`;
let server: PostgresServer;
let locker: pg.Client | undefined;
const running: KilnProcess[] = [];
const RENEW_DEADLINE_S = 3;
const MARGIN_MS = 2500;

const apply = (obj: unknown) => cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(obj) });
const micro = () => new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  server = await startPostgres();
});

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await locker?.end().catch(() => undefined);
  await server?.destroy();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

async function start(command: 'agent' | 'controller', lease: string, extra: string[]): Promise<KilnProcess> {
  const port = await freePort();
  const p = startKiln([
    command,
    ...extra,
    '--kubeconfig',
    cp.kubeconfig,
    '-n',
    ns,
    '--log-format',
    'json',
    '--leader-elect',
    '--leader-election-namespace',
    ns,
    '--leader-election-id',
    lease,
    '--lease-duration',
    '5',
    '--renew-deadline',
    String(RENEW_DEADLINE_S),
    '--retry-period',
    '1',
    '--metrics-bind-address',
    `127.0.0.1:${port}`,
    '--health-probe-bind-address',
    `127.0.0.1:${await freePort()}`,
  ]);
  running.push(p);
  return p;
}

/** Another identity takes the Lease; resolves with the time it did. */
async function takeLease(lease: string): Promise<number> {
  await cp.kubectlOk([
    'patch',
    'lease',
    '-n',
    ns,
    lease,
    '--type',
    'merge',
    '-p',
    JSON.stringify({ spec: { holderIdentity: 'intruder', renewTime: micro(), acquireTime: micro(), leaseDurationSeconds: 60 } }),
  ]);
  return performance.now();
}

async function exitsWithin(p: KilnProcess, since: number): Promise<{ code: number | null; ms: number }> {
  const budget = RENEW_DEADLINE_S * 1000 + MARGIN_MS;
  const code = await Promise.race([p.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), budget + 5000))]);
  if (code === 'running') throw new Error(`still running ${budget + 5000} ms after the Lease was taken; last lines:\n${p.lines.slice(-10).join('\n')}`);
  return { code, ms: performance.now() - since };
}

it('the agent exits 1 within the renew deadline when the Lease is taken while a query hangs', async () => {
  locker = new pg.Client({ host: server.host, port: server.port, user: 'postgres', password: server.password, database: 'postgres' });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE pg_catalog.pg_shdescription IN ACCESS EXCLUSIVE MODE');
  await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', 'pg-superuser', `--from-literal=password=${server.password}`]);
  await apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'pg', namespace: ns }, spec: { superuserSecret: { name: 'pg-superuser' } } });
  await apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name: 'db', namespace: ns }, spec: { instance: 'pg', name: 'app' } });
  const a = await start('agent', 'kiln-agent', ['--endpoint', `PostgresInstance/${ns}/pg=${server.host}:${server.port}`]);
  await a.waitForLine(/leading; starting workers/, 30_000);
  // Work in flight: the agent's query waits for the lock (asked in the locking transaction: any other session would wait too).
  await waitFor(
    "the agent's query waiting on the lock",
    async () => {
      await locker!.query('SELECT pg_stat_clear_snapshot()'); // activity is otherwise read once per transaction
      return Number((await locker!.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).rows[0]!.n) > 0;
    },
    20_000,
    () => a.lines.slice(-10).join('\n'),
  );
  const t0 = await takeLease('kiln-agent');
  const { code, ms } = await exitsWithin(a, t0);
  console.log(`agent exited ${ms.toFixed(0)} ms after the Lease was taken`);
  expect(code).toBe(1);
  expect(ms).toBeLessThan(RENEW_DEADLINE_S * 1000 + MARGIN_MS);
  expect(a.lines.some((l) => /lost leadership: exiting/.test(l))).toBe(true);
}, 90_000);

it('the controller exits 1 within the renew deadline when the Lease is taken', async () => {
  const c = await start('controller', 'kiln-controller', ['--mode', 'apply']);
  await c.waitForLine(/leading; starting workers/, 30_000);
  await apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g', namespace: ns }, spec: { cache: 'c' } });
  const t0 = await takeLease('kiln-controller');
  const { code, ms } = await exitsWithin(c, t0);
  console.log(`controller exited ${ms.toFixed(0)} ms after the Lease was taken`);
  expect(code).toBe(1);
  expect(ms).toBeLessThan(RENEW_DEADLINE_S * 1000 + MARGIN_MS);
  expect(c.lines.some((l) => /lost leadership: exiting/.test(l))).toBe(true);
}, 90_000);
