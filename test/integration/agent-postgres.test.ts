/**
 * The runtime agent against a real PostgreSQL 15 (Debian's package, started
 * by the harness with log_statement = all) and the real control plane:
 * databases, roles, connection Secrets, re-creation, reclaim, claims, bad
 * names, a server restart, and no password in any log.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { InvalidNameError } from '../../agent/names.js';
import { PostgresServer } from '../../agent/postgres.js';
import { isNotFound } from '../../kube/client.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { startPostgres, type PostgresServer as TestPostgres } from '../harness/postgres.js';
import { waitFor as waitUntil } from '../harness/wait.js';

let cp: ControlPlaneClient;
let server: TestPostgres;
let agent: Agent;
const ns = `kiln-agent-pg-${randomBytes(3).toString('hex')}`;
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-15).join('\n'));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const get = async (kind: string, name: string): Promise<Any> => {
  try {
    return await agent.client.get({ apiVersion: kind === 'Secret' ? 'v1' : 'kiln.dev/v1alpha1', kind, namespace: ns, name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
};
const apply = (obj: unknown) => cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(obj) });
const database = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name, namespace: ns }, spec: { instance: 'pg', ...spec } });
const condition = (o: Any, type: string) => o?.status?.conditions?.find((c: { type: string }) => c.type === type);
const databaseReady = (name: string, timeoutMs = 30_000) =>
  waitFor(
    `PostgresDatabase ${name} DatabaseReady`,
    async () => {
      const o = await get('PostgresDatabase', name);
      return condition(o, 'DatabaseReady')?.status === 'True' && o.status.observedGeneration === o.metadata.generation ? o : undefined;
    },
    timeoutMs,
  );
const exists = async (kind: 'database' | 'role', name: string) =>
  (await server.sql(kind === 'database' ? `SELECT count(*) FROM pg_database WHERE datname = '${name}'` : `SELECT count(*) FROM pg_roles WHERE rolname = '${name}'`)).trim() === '1';
const secretData = (s: Any) => Object.fromEntries(Object.entries(s.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  server = await startPostgres();
  await cp.kubectlOk(['create', 'namespace', ns]);
  await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', 'pg-superuser', `--from-literal=password=${server.password}`]);
  await apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'pg', namespace: ns }, spec: { superuserSecret: { name: 'pg-superuser' } } });
  const kc = loadKubeConfig({ kubeconfig: cp.kubeconfig });
  agent = new Agent({
    kc,
    namespaces: [ns],
    concurrency: 4,
    qps: 0,
    burst: 0,
    passwordIntervalSeconds: 5,
    databaseCheckSeconds: 10, // full checks every 5 s, so the no-writes test sees them
    // pg2 is a second name for the same server: the instance-deletion test deletes and recreates it.
    endpoints: { [`PostgresInstance/${ns}/pg`]: `${server.host}:${server.port}`, [`PostgresInstance/${ns}/pg2`]: `${server.host}:${server.port}` },
    log,
  });
  await agent.start();
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  await server?.destroy();
});

describe('agent: Postgres', () => {
  it('creates the role, the database, its extensions and a connection Secret that works', async () => {
    await apply(database('orders', { name: 'orders', owner: 'orders_app', extensions: ['pgcrypto'] }));
    const db = await databaseReady('orders');
    expect(db.status).toMatchObject({ applied: true, secretName: 'orders-connection' });
    expect(condition(db, 'Ready')?.status).toBe('True');
    const secret = await get('Secret', 'orders-connection');
    expect(secret.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'PostgresDatabase', name: 'orders', uid: db.metadata.uid, controller: true })]);
    const c = secretData(secret);
    expect(c).toMatchObject({ username: 'orders_app', dbname: 'orders', host: `pg-client.${ns}.svc`, port: '5432' });
    expect(c.password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(c.uri).toBe(`postgresql://orders_app:${c.password}@pg-client.${ns}.svc:5432/orders`);
    // The Secret's credentials log in (the Service name only resolves in a cluster; here the server is local).
    const client = new pg.Client({ host: server.host, port: server.port, user: c.username, password: c.password, database: c.dbname });
    await client.connect();
    try {
      await client.query('CREATE TABLE t (id int primary key, v text)');
      await client.query("INSERT INTO t VALUES (1, 'one')");
      expect((await client.query('SELECT v FROM t')).rows).toEqual([{ v: 'one' }]);
      expect((await client.query("SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'pgcrypto'")).rows[0].n).toBe(1);
      expect((await client.query('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()')).rows[0].owner).toBe('orders_app');
    } finally {
      await client.end();
    }
  });

  it('a dropped database is back within the 10 s check interval', async () => {
    await databaseReady('orders');
    await server.sql('DROP DATABASE orders WITH (FORCE)');
    const dropped = Date.now();
    await waitFor('orders re-created', async () => exists('database', 'orders'), 15_000);
    const seconds = (Date.now() - dropped) / 1000;
    console.log(`dropped database back after ${seconds.toFixed(2)} s`);
    // --database-check-interval 10 (the default) bounds it: the catalog is read every 5 s.
    // The figure also holds the test's own polling and psql start-up.
    expect(seconds).toBeLessThanOrEqual(10);
  });

  it('refuses a malicious name at admission and in the agent; postgres still exists', async () => {
    const r = await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(database('evil', { name: 'a"; DROP DATABASE postgres; --' })) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('spec.name');
    const direct = new PostgresServer({ host: server.host, port: server.port, user: 'postgres', password: server.password });
    try {
      await expect(direct.ensureDatabase('a"; DROP DATABASE postgres; --', 'app', { resource: 'x/y', uid: 'u', created: true })).rejects.toThrow(InvalidNameError);
      await expect(direct.ensureRole('x"; DROP ROLE postgres; --', 'pw', { resource: 'x/y', uid: 'u', created: true })).rejects.toThrow(InvalidNameError);
    } finally {
      await direct.close();
    }
    expect(await exists('database', 'postgres')).toBe(true);
    expect(await exists('role', 'postgres')).toBe(true);
  });

  it('a second resource claiming the same database is Stalled and names the holder', async () => {
    await apply(database('orders-again', { name: 'orders', owner: 'other_app' }));
    const o = await waitFor('orders-again Stalled', async () => {
      const d = await get('PostgresDatabase', 'orders-again');
      return condition(d, 'Stalled')?.status === 'True' ? d : undefined;
    });
    expect(condition(o, 'Stalled').reason).toBe('AlreadyClaimed');
    expect(condition(o, 'Stalled').message).toContain(`PostgresDatabase ${ns}/orders`);
    expect(await exists('role', 'other_app')).toBe(false);
    await cp.kubectlOk(['-n', ns, 'delete', 'postgresdatabase', 'orders-again']);
  });

  it('converges a database created while Postgres is down once it is back', async () => {
    await server.stop();
    await apply(database('during-outage', { name: 'during_outage' }));
    const waiting = await waitFor('during-outage Reconciling', async () => {
      const d = await get('PostgresDatabase', 'during-outage');
      return condition(d, 'Reconciling')?.status === 'True' ? d : undefined;
    });
    expect(condition(waiting, 'DatabaseReady').status).toBe('False');
    await server.start();
    await databaseReady('during-outage', 45_000);
    expect(await exists('database', 'during_outage')).toBe(true);
    // The database made before the restart is still served.
    await databaseReady('orders');
  });

  it('reclaimPolicy Delete drops the database and role; Retain keeps them', async () => {
    await apply(database('drop-me', { name: 'drop_me', reclaimPolicy: 'Delete' }));
    await apply(database('keep-me', { name: 'keep_me', reclaimPolicy: 'Retain' }));
    const d = await databaseReady('drop-me');
    await databaseReady('keep-me');
    expect(d.metadata.finalizers).toContain('kiln.dev/database-reclaim');
    expect(await exists('database', 'drop_me')).toBe(true);
    await cp.kubectlOk(['-n', ns, 'delete', 'postgresdatabase', 'drop-me', 'keep-me', '--wait=true', '--timeout=30s']);
    expect(await exists('database', 'drop_me')).toBe(false);
    expect(await exists('role', 'drop_me')).toBe(false);
    expect(await exists('database', 'keep_me')).toBe(true);
    expect(await exists('role', 'keep_me')).toBe(true);
  });

  it('generates the superuser Secret of an instance that names none', async () => {
    await apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'fresh', namespace: ns }, spec: {} });
    const s = await waitFor('fresh-superuser', async () => get('Secret', 'fresh-superuser'));
    const data = secretData(s);
    expect(data.username).toBe('postgres');
    expect(data.password).toMatch(/^[A-Za-z0-9]{32}$/);
    const pi = await waitFor('fresh status', async () => {
      const o = await get('PostgresInstance', 'fresh');
      return condition(o, 'SuperuserSecretReady')?.status === 'True' ? o : undefined;
    });
    expect(pi.status.superuserSecret).toBe('fresh-superuser');
  });

  it('its instance deleted: the database reports Stalled InstanceNotFound (not waiting forever), and is Ready again when the instance is back', async () => {
    const instance = { apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'pg2', namespace: ns }, spec: { superuserSecret: { name: 'pg-superuser' } } };
    await apply(instance);
    await apply(database('on-pg2', { instance: 'pg2', name: 'on_pg2' }));
    await databaseReady('on-pg2');
    await cp.kubectlOk(['-n', ns, 'delete', 'postgresinstance', 'pg2', '--wait=true']);
    const stalled = await waitFor(
      'on-pg2 Stalled',
      async () => {
        const o = await get('PostgresDatabase', 'on-pg2');
        return condition(o, 'Stalled')?.status === 'True' ? o : undefined;
      },
      15_000,
    );
    expect(condition(stalled, 'Stalled')).toMatchObject({ reason: 'InstanceNotFound' });
    expect(condition(stalled, 'Stalled').message).toContain(`spec.instance: PostgresInstance ${ns}/pg2 was deleted`);
    expect(condition(stalled, 'Ready')?.status).toBe('False');
    await apply(instance);
    const back = await databaseReady('on-pg2');
    expect(condition(back, 'Stalled')?.status).not.toBe('True');
  });

  it('writes nothing to the API server while nothing changes (a whole check interval)', async () => {
    await databaseReady('orders');
    await databaseReady('during-outage');
    await new Promise((r) => setTimeout(r, 1000));
    const before = { ...agent.client.counts };
    const checksBefore = agent.dropChecks;
    const reconcilesBefore = agent.reconciles;
    await new Promise((r) => setTimeout(r, 11_000));
    expect(agent.dropChecks).toBeGreaterThanOrEqual(checksBefore + 2); // the catalog look-ups ran
    expect(agent.reconciles).toBeGreaterThan(reconcilesBefore); // and the full checks
    const writes = (['POST', 'PUT', 'PATCH', 'DELETE'] as const).map((v) => agent.client.counts[v] - before[v]);
    expect(writes).toEqual([0, 0, 0, 0]);
  });

  it("no password or verifier reaches the Postgres log or the agent's log", async () => {
    const passwords = [server.password];
    for (const name of ['orders-connection', 'during-outage-connection', 'fresh-superuser']) {
      const s = await get('Secret', name);
      if (s) passwords.push(secretData(s).password!);
    }
    expect(passwords.length).toBe(4);
    const pgLog = server.readLog();
    expect(pgLog).toContain('CREATE DATABASE'); // the log is on and holds kiln's statements
    const agentLog = logs.join('\n');
    for (const p of passwords) {
      expect(pgLog).not.toContain(p);
      expect(agentLog).not.toContain(p);
    }
    expect(pgLog).not.toContain('SCRAM-SHA-256$');
    expect(pgLog.split('\n').filter((l) => /PASSWORD\s+'/i.test(l))).toEqual([]);
  });
});
