/**
 * The runtime agent against servers it must not trust, on the real control
 * plane: fake PostgreSQL servers (test/harness/fake-postgres.ts) that ask for
 * the password in cleartext or MD5, or let the agent in and never answer; a
 * real PostgreSQL 15 with pre-existing roles and databases kiln must not take
 * over, statement logging as a tenant could set it (log_min_duration_statement
 * = 0), and a second one that accepts only TLS, with a CA made by openssl.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { postgresPolicy } from '../../agent/policy.js';
import { isNotFound } from '../../kube/client.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { startFakePostgres, type FakePostgres } from '../harness/fake-postgres.js';
import { startPostgres, type PostgresServer as TestPostgres } from '../harness/postgres.js';
import { makeCa } from '../harness/tls-certs.js';
import { waitFor as waitUntil } from '../harness/wait.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

let cp: ControlPlaneClient;
let server: TestPostgres;
let tlsServer: TestPostgres;
let agent: Agent;
const fakes: Record<'cleartext' | 'md5' | 'hang' | 'allowed', FakePostgres> = {} as never;
const suffix = randomBytes(3).toString('hex');
const ns = `kiln-agent-trust-${suffix}`;
/** A namespace the agent's operator lists in --allow-insecure-auth-namespace. */
const legacyNs = `kiln-agent-legacy-${suffix}`;
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-15).join('\n'));

const get = async (kind: string, name: string, namespace = ns): Promise<Any> => {
  try {
    return await agent.client.get({ apiVersion: kind === 'Secret' ? 'v1' : 'kiln.dev/v1alpha1', kind, namespace, name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
};
const apply = (obj: unknown) => cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(obj) });
const instance = (name: string, spec: Record<string, unknown> = {}, namespace = ns) =>
  apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name, namespace }, spec: { superuserSecret: { name: 'pg-superuser' }, ...spec } });
const database = (name: string, spec: Record<string, unknown>, namespace = ns) =>
  apply({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name, namespace }, spec: { instance: 'pg', ...spec } });
const condition = (o: Any, type: string) => o?.status?.conditions?.find((c: { type: string }) => c.type === type);
const withCondition = (name: string, type: string, timeoutMs = 30_000, namespace = ns) =>
  waitFor(
    `PostgresDatabase ${name} ${type}`,
    async () => {
      const o = await get('PostgresDatabase', name, namespace);
      return condition(o, type)?.status === 'True' ? o : undefined;
    },
    timeoutMs,
  );
/** Until the agent has acted on the resource: Ready or Stalled (today's harm shows as Ready). */
const settled = (name: string, timeoutMs = 30_000) =>
  waitFor(
    `PostgresDatabase ${name} Ready or Stalled`,
    async () => {
      const o = await get('PostgresDatabase', name);
      return condition(o, 'Ready')?.status === 'True' || condition(o, 'Stalled')?.status === 'True' ? o : undefined;
    },
    timeoutMs,
  );
const sql = (q: string, db?: string) => server.sql(q, db);
const secretData = (s: Any) => Object.fromEntries(Object.entries(s.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  const ca = await makeCa();
  const otherCa = await makeCa('another CA');
  const serverCert = await ca.issue([`tls-client.${ns}.svc`]);
  [server, tlsServer, fakes.cleartext, fakes.md5, fakes.hang, fakes.allowed] = await Promise.all([
    // What a tenant's spec.parameters may set: every statement's text with its duration.
    startPostgres({ config: ["log_statement = 'none'", 'log_min_duration_statement = 0'] }),
    // Accepts TLS connections only.
    startPostgres({ tls: { ...serverCert, ca: ca.ca }, hba: ['hostssl all all 127.0.0.1/32 scram-sha-256', 'hostnossl all all 0.0.0.0/0 reject'] }),
    startFakePostgres('cleartext'),
    startFakePostgres('md5'),
    startFakePostgres('hang'),
    startFakePostgres('cleartext'),
  ]);
  await tlsServer.sql(`ALTER ROLE postgres PASSWORD '${server.password}'`);
  for (const n of [ns, legacyNs]) {
    await cp.kubectlOk(['create', 'namespace', n]);
    await cp.kubectlOk(['-n', n, 'create', 'secret', 'generic', 'pg-superuser', `--from-literal=password=${server.password}`]);
  }
  const tlsSecret = (name: string, caPem: string) =>
    apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: ns },
      type: 'kubernetes.io/tls',
      stringData: { 'tls.crt': serverCert.cert, 'tls.key': serverCert.key, 'ca.crt': caPem },
    });
  await tlsSecret('pg-tls', ca.ca);
  await tlsSecret('pg-tls-other-ca', otherCa.ca);
  await instance('pg');
  await instance('clear');
  await instance('md5');
  await instance('hang');
  await instance('clear', { allowInsecureAuth: true }, legacyNs);
  await instance('tls', { tls: { secretName: 'pg-tls' } });
  // Same certificate, but the agent expects it to name wrongname-client.<ns>.svc.
  await instance('wrongname', { tls: { secretName: 'pg-tls' } });
  await instance('wrongca', { tls: { secretName: 'pg-tls-other-ca' } });
  const at = (s: { host: string; port: number }) => `${s.host}:${s.port}`;
  agent = new Agent({
    kc: loadKubeConfig({ kubeconfig: cp.kubeconfig }),
    namespaces: [ns, legacyNs],
    concurrency: 4,
    qps: 0,
    burst: 0,
    passwordIntervalSeconds: 300,
    databaseCheckSeconds: 10,
    endpoints: {
      [`PostgresInstance/${ns}/pg`]: at(server),
      [`PostgresInstance/${ns}/clear`]: at(fakes.cleartext),
      [`PostgresInstance/${ns}/md5`]: at(fakes.md5),
      [`PostgresInstance/${ns}/hang`]: at(fakes.hang),
      [`PostgresInstance/${legacyNs}/clear`]: at(fakes.allowed),
      [`PostgresInstance/${ns}/tls`]: at(tlsServer),
      [`PostgresInstance/${ns}/wrongname`]: at(tlsServer),
      [`PostgresInstance/${ns}/wrongca`]: at(tlsServer),
    },
    postgres: {
      ...postgresPolicy({ insecureAuthNamespaces: [legacyNs] }),
      timeouts: { connectMs: 5_000, queryMs: 3_000, statementMs: 2_000, lockMs: 1_000, idleInTransactionMs: 10_000, keepAliveMs: 1_000 },
    },
    log,
  });
  await agent.start();
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  for (const n of [ns, legacyNs]) await cp?.kubectl(['delete', 'namespace', n, '--wait=false']);
  await Promise.all([server?.destroy(), tlsServer?.destroy(), ...Object.values(fakes).map((f) => f?.close())]);
});

describe('agent: a PostgreSQL server it must not trust', () => {
  it.each(['cleartext', 'md5'] as const)('a server asking for a %s password gets none; the resource is Stalled saying why', async (mode) => {
    const instanceName = mode === 'cleartext' ? 'clear' : 'md5';
    await database(`via-${mode}`, { instance: instanceName, name: `via_${mode}` });
    const fake = fakes[mode];
    // Until the agent has answered the request one way or the other.
    const o = await waitFor(`via-${mode} answered`, async () => {
      const d = await get('PostgresDatabase', `via-${mode}`);
      return fake.passwords().length > 0 || condition(d, 'Stalled')?.status === 'True' ? d : undefined;
    });
    expect(fake.passwords()).toEqual([]);
    expect(fake.messages.map((m) => m.body.toString('latin1')).join()).not.toContain(server.password);
    expect(condition(o, 'Stalled')).toMatchObject({ status: 'True', reason: 'InsecureAuthRefused' });
    expect(condition(o, 'Stalled').message).toContain(mode === 'cleartext' ? 'cleartext' : 'MD5');
    expect(condition(o, 'Stalled').message).toContain('SCRAM-SHA-256');
  });

  it("spec.allowInsecureAuth is honoured only in a namespace the agent's operator listed", async () => {
    await instance('clear', { allowInsecureAuth: true });
    await database('via-clear-asked', { instance: 'clear', name: 'via_clear_asked' });
    const refused = await waitFor('via-clear-asked Stalled naming the flag', async () => {
      const d = await get('PostgresDatabase', 'via-clear-asked');
      return condition(d, 'Stalled')?.message?.includes('--allow-insecure-auth-namespace') ? d : undefined;
    });
    expect(condition(refused, 'Stalled').reason).toBe('InsecureAuthRefused');
    expect(fakes.cleartext.passwords()).toEqual([]);
    // In the listed namespace the (fake) server gets what it asked for.
    await database('legacy', { instance: 'clear', name: 'legacy_app' }, legacyNs);
    await waitFor('the password sent where allowed', () => fakes.allowed.passwords().length > 0);
    expect(fakes.allowed.passwords()[0]).toBe(server.password);
  });

  it("a server that never answers: the timeout fires, and another instance's database is created meanwhile", async () => {
    // More resources on the hung server than the agent has workers.
    for (const i of [1, 2, 3, 4, 5]) await database(`hung-${i}`, { instance: 'hang', name: `hung_${i}` });
    await waitFor('the hung server queried', () => fakes.hang.messages.some((m) => m.type === 'Q' || m.type === 'P'));
    const started = Date.now();
    await database('meanwhile', { name: 'meanwhile' });
    await withCondition('meanwhile', 'Ready', 20_000);
    console.log(`database on a healthy instance ready ${((Date.now() - started) / 1000).toFixed(2)} s after the hung server took its first query`);
    const hung = await waitFor(
      'hung-1 reports the timeout',
      async () => {
        const d = await get('PostgresDatabase', 'hung-1');
        return /timeout/i.test(condition(d, 'Reconciling')?.message ?? '') ? d : undefined;
      },
      20_000,
    );
    expect(condition(hung, 'Ready').status).toBe('False');
  });

  it('refuses to take over a superuser role: password untouched, nothing created, no Secret', async () => {
    await sql("CREATE ROLE boss SUPERUSER LOGIN PASSWORD 'boss-secret-1'");
    const before = await sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'boss'");
    await database('grab-boss', { name: 'grab_boss_db', owner: 'boss' });
    const o = await settled('grab-boss');
    expect(await sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'boss'")).toBe(before);
    expect(await sql("SELECT count(*) FROM pg_database WHERE datname = 'grab_boss_db'")).toBe('0');
    expect(await get('Secret', 'grab-boss-connection')).toBeUndefined();
    expect(condition(o, 'Stalled')?.reason).toBe('PrivilegedRole');
    expect(condition(o, 'Stalled').message).toContain('role boss has SUPERUSER');
  });

  it("refuses to take over another tenant's role or an existing database: password and owner unchanged, no Secret", async () => {
    await sql("CREATE ROLE other_owner LOGIN PASSWORD 'other-secret-1'");
    await sql('CREATE DATABASE legacy OWNER other_owner');
    const password = await sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'other_owner'");
    await database('grab-role', { name: 'grab_role_db', owner: 'other_owner' });
    await database('grab-db', { name: 'legacy', owner: 'legacy_thief' });
    const role = await settled('grab-role');
    const db = await settled('grab-db');
    expect(await sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'other_owner'")).toBe(password);
    expect(await sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'legacy'")).toBe('other_owner');
    expect(await sql("SELECT count(*) FROM pg_roles WHERE rolname = 'legacy_thief'")).toBe('0');
    expect(await sql("SELECT count(*) FROM pg_database WHERE datname = 'grab_role_db'")).toBe('0');
    expect(await get('Secret', 'grab-role-connection')).toBeUndefined();
    expect(await get('Secret', 'grab-db-connection')).toBeUndefined();
    expect(condition(role, 'Stalled')).toMatchObject({ reason: 'RoleNotManaged' });
    expect(condition(role, 'Stalled').message).toContain('role other_owner exists and kiln did not create it');
    expect(condition(db, 'Stalled')).toMatchObject({ reason: 'DatabaseNotManaged' });
    expect(condition(db, 'Stalled').message).toContain('database legacy exists and kiln did not create it');
  });

  it('a role kiln made that later gained REPLICATION is no longer managed', async () => {
    await database('promoted', { name: 'promoted' });
    await withCondition('promoted', 'Ready');
    await sql('ALTER ROLE promoted REPLICATION');
    const password = await sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'promoted'");
    // A spec change makes the agent look again at once.
    await database('promoted', { name: 'promoted', extensions: ['citext'] });
    const o = await waitFor('promoted acted on', async () => {
      const d = await get('PostgresDatabase', 'promoted');
      return d.status.observedGeneration === d.metadata.generation && (condition(d, 'Ready')?.status === 'True' || condition(d, 'Stalled')?.status === 'True') ? d : undefined;
    });
    expect(await sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'promoted'")).toBe(password);
    expect(condition(o, 'Stalled')).toMatchObject({ reason: 'PrivilegedRole' });
    expect(condition(o, 'Stalled').message).toContain('REPLICATION');
  });

  it('creates only allowlisted extensions, into schema public with search_path pinned', async () => {
    await database('ext-bad', { name: 'ext_bad', extensions: ['pg_trgm', 'file_fdw'] });
    const bad = await settled('ext-bad');
    expect(await sql("SELECT count(*) FROM pg_database WHERE datname = 'ext_bad'")).toBe('0');
    expect(condition(bad, 'Stalled')?.reason).toBe('ExtensionNotAllowed');
    expect(condition(bad, 'Stalled').message).toContain('spec.extensions[1] file_fdw');
    await database('ext-ok', { name: 'ext_ok', extensions: ['pg_trgm', 'uuid-ossp'] });
    await withCondition('ext-ok', 'Ready');
    expect(await sql("SELECT string_agg(extname || ':' || extnamespace::regnamespace, ',' ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql'", 'ext_ok')).toBe(
      'pg_trgm:public,uuid-ossp:public',
    );
    const lines = server.readLog().split('\n');
    const create = lines.findIndex((l) => l.includes('CREATE EXTENSION IF NOT EXISTS "pg_trgm" SCHEMA public'));
    expect(create).toBeGreaterThan(0);
    const pid = /\[(\d+)\]/.exec(lines[create]!)![1];
    const before = lines.slice(0, create).filter((l) => l.includes(`[${pid}]`) && l.includes('statement:'));
    expect(before.at(-1)).toContain('SET LOCAL search_path = pg_catalog, pg_temp');
  });

  it('connects with verify-full to an instance with spec.tls, and refuses a wrong name or CA', async () => {
    await database('over-tls', { instance: 'tls', name: 'over_tls' });
    await withCondition('over-tls', 'Ready');
    expect(await tlsServer.sql("SELECT count(*) FROM pg_database WHERE datname = 'over_tls'")).toBe('1');
    await database('wrong-name', { instance: 'wrongname', name: 'wrong_name' });
    await database('wrong-ca', { instance: 'wrongca', name: 'wrong_ca' });
    const name = await withCondition('wrong-name', 'Stalled');
    expect(condition(name, 'Stalled').reason).toBe('TLSVerificationFailed');
    expect(condition(name, 'Stalled').message).toContain(`wrongname-client.${ns}.svc`);
    const ca = await withCondition('wrong-ca', 'Stalled');
    expect(condition(ca, 'Stalled').reason).toBe('TLSVerificationFailed');
    expect(await tlsServer.sql("SELECT count(*) FROM pg_database WHERE datname IN ('wrong_name', 'wrong_ca')")).toBe('0');
  });

  it("evicts a deleted resource's password and state from the agent's caches, and a deleted instance's pool", async () => {
    await database('evict-me', { name: 'evict_me', extensions: ['citext'] });
    const d = await withCondition('evict-me', 'Ready');
    const reconciler = (agent as Any).databases;
    expect(reconciler.written.has(d.metadata.uid)).toBe(true);
    await cp.kubectlOk(['-n', ns, 'delete', 'postgresdatabase', 'evict-me', '--wait=true', '--timeout=30s']);
    await waitFor('evict-me forgotten', () => !reconciler.written.has(d.metadata.uid), 10_000).catch(() => undefined);
    expect(reconciler.written.has(d.metadata.uid)).toBe(false);
    expect(reconciler.extensionsDone.has(d.metadata.uid)).toBe(false);
    expect(reconciler.pools.pools.has(`${ns}/tls`)).toBe(true);
    await cp.kubectlOk(['-n', ns, 'delete', 'postgresdatabase', 'over-tls', '--wait=true', '--timeout=30s']);
    await cp.kubectlOk(['-n', ns, 'delete', 'postgresinstance', 'tls', '--wait=true', '--timeout=30s']);
    await waitFor('the tls pool closed', () => !reconciler.pools.pools.has(`${ns}/tls`), 15_000).catch(() => undefined);
    expect(reconciler.pools.pools.has(`${ns}/tls`)).toBe(false);
  });

  it('no password or verifier reaches the server log, even with log_min_duration_statement = 0', async () => {
    const pgLog = server.readLog();
    expect(pgLog).toMatch(/duration: .* statement: CREATE DATABASE/); // the tenant's setting is in force
    // kiln's form of the statement (the test's own psql statements above are logged, as they should be).
    expect(pgLog).not.toMatch(/ROLE "[a-z_]+" WITH LOGIN PASSWORD/);
    expect(pgLog).not.toContain('SCRAM-SHA-256$');
    const passwords = [server.password];
    for (const name of ['meanwhile-connection', 'promoted-connection', 'ext-ok-connection']) {
      const s = await get('Secret', name);
      if (s) passwords.push(secretData(s).password!);
    }
    expect(passwords.length).toBeGreaterThanOrEqual(2);
    for (const p of passwords) expect(pgLog).not.toContain(p);
    expect(logs.join('\n')).not.toContain(server.password);
  });
});
