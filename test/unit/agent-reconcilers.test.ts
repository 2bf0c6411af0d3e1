/**
 * The runtime agent's reconcilers, on the in-memory API server
 * (kube/fake-client.ts): the decisions taken before any PostgreSQL or LDAP
 * server is reached (Secrets generated or left alone, waiting for an
 * instance, names and claims refused, the reclaim finalizer), and the
 * instance gate. What needs a live server stays in test/integration/.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KILN_API_VERSION } from '../../kinds/api.js';
import { Endpoints, type AgentContext, type WatchedKind } from '../../agent/context.js';
import { DatabaseReconciler, RECLAIM_FINALIZER, ServerPools } from '../../agent/database-reconciler.js';
import { DirectoryReconciler, RetryLater } from '../../agent/directory-reconciler.js';
import { InstanceGate } from '../../agent/instance-gate.js';
import { InstanceReconciler } from '../../agent/instance-reconciler.js';
import { agentStatusWriter } from '../../agent/status.js';
import { ApiError } from '../../kube/errors.js';
import { EventRecorder } from '../../kube/events.js';
import { FakeKubeClient, type FakeObject } from '../../kube/fake-client.js';
import type { Condition } from '../../kube/status.js';

type Live = FakeObject & { status?: Record<string, unknown> & { conditions?: Condition[]; observedGeneration?: number } };
type SecretLive = FakeObject & { data?: Record<string, string> };

const API = { PostgresInstance: KILN_API_VERSION, PostgresDatabase: KILN_API_VERSION, DirectoryService: KILN_API_VERSION, EtcdCluster: KILN_API_VERSION, Secret: 'v1' } as const;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString());

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** An agent context whose caches read the fake API server as it is now (the agent's informers, without their lag). */
function agent(seed: FakeObject[]) {
  const fake = new FakeKubeClient(seed);
  const log = () => undefined;
  const ctx: AgentContext = {
    client: fake,
    caches: {
      get: (kind: WatchedKind, namespace, name) => fake.peek({ apiVersion: API[kind], kind, namespace, name }),
      list: (kind: WatchedKind, namespace) => fake.objects({ apiVersion: API[kind], kind, namespace }),
    },
    events: new EventRecorder(fake, 'kiln-agent', 'test', log),
    endpoints: new Endpoints({ 'DirectoryService/ns/ds': 'ldap://127.0.0.1:1' }),
    log,
    passwordIntervalMs: 300_000,
    databaseCheckMs: 60_000,
    fullCheckMs: 300_000,
    task: () => undefined,
  };
  const status = agentStatusWriter(fake);
  const pools = new ServerPools(() => undefined);
  closers.push(() => pools.close());
  const get = <T = Live>(kind: keyof typeof API, name: string) => fake.peek<T>({ apiVersion: API[kind], kind, namespace: 'ns', name });
  const condition = (kind: keyof typeof API, name: string, type: string) => get(kind, name)?.status?.conditions?.find((c) => c.type === type);
  const events = async () => {
    await fake.settled();
    return fake.objects<FakeObject & { reason: string; message: string }>({ apiVersion: 'v1', kind: 'Event', namespace: 'ns' }).map((e) => `${e.reason}: ${e.message}`);
  };
  return {
    fake,
    get,
    condition,
    events,
    instances: new InstanceReconciler(ctx, status),
    databases: new DatabaseReconciler(ctx, pools, status),
    directories: new DirectoryReconciler(ctx, status),
  };
}

const instance = (spec: Record<string, unknown> = {}): FakeObject => ({ apiVersion: KILN_API_VERSION, kind: 'PostgresInstance', metadata: { name: 'pg', namespace: 'ns' }, spec });
const database = (name: string, spec: Record<string, unknown>, created = '2026-01-01T00:00:00Z'): FakeObject => ({
  apiVersion: KILN_API_VERSION,
  kind: 'PostgresDatabase',
  metadata: { name, namespace: 'ns', creationTimestamp: created },
  spec: { instance: 'pg', ...spec },
});
const secret = (name: string, data: Record<string, string>, extra: Partial<FakeObject['metadata']> = {}): FakeObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace: 'ns', ...extra },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
});
const key = (name: string) => ({ namespace: 'ns', name });

describe('PostgresInstance (agent)', () => {
  it('generates <name>-superuser when spec.superuserSecret names none, and says so in the status', async () => {
    const { fake, get, condition, events, instances } = agent([instance()]);
    await instances.reconcile(key('pg'));
    const s = get<SecretLive>('Secret', 'pg-superuser')!;
    expect(unb64(s.data?.['username'])).toBe('postgres');
    expect(unb64(s.data?.['password'])!.length).toBeGreaterThanOrEqual(16);
    expect(s.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'kiln-agent', 'kiln.dev/postgres-instance': 'pg' });
    expect(s.metadata['ownerReferences']).toBeUndefined();
    expect(condition('PostgresInstance', 'pg', 'SuperuserSecretReady')).toMatchObject({ status: 'True', reason: 'SecretPresent' });
    expect(get('PostgresInstance', 'pg')!.status?.['superuserSecret']).toBe('pg-superuser');
    expect(fake.actions.filter((a) => a.op === 'apply' && a.subresource === 'status').map((a) => a.fieldManager)).toEqual(['kiln-agent']);
    expect(await events()).toEqual(['SuperuserSecretGenerated: generated the superuser password into Secret pg-superuser']);
  });

  it('a named Secret that is missing is not made up: SuperuserSecretReady False naming the field', async () => {
    const { fake, condition, instances } = agent([instance({ superuserSecret: { name: 'mine' } })]);
    await instances.reconcile(key('pg'));
    expect(fake.actions.filter((a) => a.resource === 'secrets' && a.verb !== 'GET')).toEqual([]);
    const c = condition('PostgresInstance', 'pg', 'SuperuserSecretReady')!;
    expect(c).toMatchObject({ status: 'False', reason: 'SecretMissing' });
    expect(c.message).toContain('spec.superuserSecret: Secret mine has no key password');
  });

  it("racing another writer to create the Secret, it takes the winner's password and overwrites nothing", async () => {
    const { fake, get, instances } = agent([instance()]);
    let raced = false;
    fake.reactor = (a) => {
      if (a.op !== 'create' || a.resource !== 'secrets' || raced) return;
      raced = true;
      fake.seed(secret('pg-superuser', { username: 'postgres', password: 'theirs' }));
      throw new ApiError(409, 'AlreadyExists', 'secrets "pg-superuser" already exists', 'POST', '/api/v1/namespaces/ns/secrets', 'secrets "pg-superuser" already exists');
    };
    await instances.reconcile(key('pg'));
    expect(unb64(get<SecretLive>('Secret', 'pg-superuser')!.data?.['password'])).toBe('theirs');
    expect(fake.actions.filter((a) => a.resource === 'secrets' && (a.op === 'merge' || a.op === 'apply'))).toEqual([]);
  });

  it('writes its status once: a second reconcile with nothing changed writes nothing', async () => {
    const { fake, instances } = agent([instance()]);
    await instances.reconcile(key('pg'));
    const writes = fake.writes();
    await instances.reconcile(key('pg'));
    expect(fake.writes()).toBe(writes);
  });
});

describe('PostgresDatabase (agent), before any server is reached', () => {
  it('waits for its instance: Reconciling InstanceNotFound, looked at again in 5 s, nothing written but the status', async () => {
    const { fake, get, condition, databases } = agent([database('orders', { name: 'orders' }, new Date().toISOString())]);
    const r = await databases.reconcile(key('orders'));
    expect(r.requeueAfterMs).toBe(5_000);
    expect(condition('PostgresDatabase', 'orders', 'Reconciling')).toMatchObject({ status: 'True', reason: 'InstanceNotFound' });
    expect(condition('PostgresDatabase', 'orders', 'Ready')).toMatchObject({ status: 'False' });
    expect(get('PostgresDatabase', 'orders')!.status?.observedGeneration).toBe(1);
    expect(fake.actions.filter((a) => a.resource === 'secrets')).toEqual([]);
  });

  it('an instance still missing after the grace period (a wrong name): Stalled InstanceNotFound naming spec.instance', async () => {
    const { condition, databases } = agent([database('orders', { name: 'orders' }, new Date(Date.now() - 3 * 60_000).toISOString())]);
    await databases.reconcile(key('orders'));
    const stalled = condition('PostgresDatabase', 'orders', 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'InstanceNotFound' });
    expect(stalled.message).toContain('spec.instance: PostgresInstance ns/pg does not exist');
  });

  it('the instance of a database that was Ready is deleted: Stalled InstanceNotFound at once, saying it was deleted', async () => {
    const db = database('orders', { name: 'orders' }, new Date().toISOString());
    db.status = { conditions: [{ type: 'DatabaseReady', status: 'True', reason: 'DatabaseReady', message: '', lastTransitionTime: new Date().toISOString() }] };
    const { condition, databases } = agent([db]);
    await databases.reconcile(key('orders'));
    const stalled = condition('PostgresDatabase', 'orders', 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'InstanceNotFound' });
    expect(stalled.message).toContain('was deleted');
    expect(condition('PostgresDatabase', 'orders', 'Ready')).toMatchObject({ status: 'False' });
  });

  it("waits for the instance's superuser Secret: Reconciling SuperuserSecretMissing", async () => {
    const { condition, databases } = agent([instance(), database('orders', { name: 'orders' })]);
    await databases.reconcile(key('orders'));
    expect(condition('PostgresDatabase', 'orders', 'Reconciling')).toMatchObject({ status: 'True', reason: 'SuperuserSecretMissing' });
  });

  it('refuses a name that is not a plain identifier: Stalled InvalidName naming the field', async () => {
    const { condition, databases } = agent([instance(), database('bad', { name: 'orders; drop table x' })]);
    await databases.reconcile(key('bad'));
    const stalled = condition('PostgresDatabase', 'bad', 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'InvalidName' });
    expect(stalled.message).toContain('spec.name');
  });

  it('the younger of two resources claiming one database: Stalled AlreadyClaimed naming the older', async () => {
    const { condition, databases } = agent([instance(), database('first', { name: 'orders' }, '2026-01-01T00:00:00Z'), database('second', { name: 'orders' }, '2026-01-02T00:00:00Z')]);
    await databases.reconcile(key('second'));
    const stalled = condition('PostgresDatabase', 'second', 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'AlreadyClaimed' });
    expect(stalled.message).toContain('already managed by PostgresDatabase ns/first');
    await databases.reconcile(key('first'));
    expect(condition('PostgresDatabase', 'first', 'Stalled')?.reason).not.toBe('AlreadyClaimed');
  });

  it('an extension off the allowlist: Stalled ExtensionNotAllowed naming it', async () => {
    const { condition, databases } = agent([instance(), database('orders', { name: 'orders', extensions: ['plpython3u'] })]);
    await databases.reconcile(key('orders'));
    const stalled = condition('PostgresDatabase', 'orders', 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'ExtensionNotAllowed' });
    expect(stalled.message).toContain('spec.extensions[0] plpython3u');
  });

  it('a connection Secret of its name that kiln does not own: Reconciling SecretConflict, the Secret left alone', async () => {
    const { fake, condition, databases } = agent([
      instance(),
      secret('pg-superuser', { username: 'postgres', password: 'pw' }),
      database('orders', { name: 'orders' }),
      secret('orders-connection', { password: 'someone-elses' }),
    ]);
    const r = await databases.reconcile(key('orders'));
    expect(r.requeueAfterMs).toBe(5_000);
    expect(condition('PostgresDatabase', 'orders', 'Reconciling')).toMatchObject({ status: 'True', reason: 'SecretConflict' });
    expect(fake.actions.filter((a) => a.resource === 'secrets' && a.verb !== 'GET')).toEqual([]);
  });

  it('reclaimPolicy Delete: the reclaim finalizer is applied; deleted once its instance is gone, the finalizer goes (nothing to drop) and so does the resource', async () => {
    const { fake, get, events, databases } = agent([database('orders', { name: 'orders', reclaimPolicy: 'Delete' })]);
    await databases.reconcile(key('orders'));
    expect(get('PostgresDatabase', 'orders')!.metadata.finalizers).toEqual([RECLAIM_FINALIZER]);
    await fake.delete({ apiVersion: KILN_API_VERSION, kind: 'PostgresDatabase', namespace: 'ns', name: 'orders' });
    expect(get('PostgresDatabase', 'orders')!.metadata.deletionTimestamp).toBeDefined();
    await databases.reconcile(key('orders'));
    expect(get('PostgresDatabase', 'orders')).toBeUndefined();
    expect(await events()).toContain('InstanceGone: PostgresInstance pg is gone: nothing dropped');
  });

  it('reclaimPolicy Retain (the default): no finalizer', async () => {
    const { get, databases } = agent([database('orders', { name: 'orders' })]);
    await databases.reconcile(key('orders'));
    expect(get('PostgresDatabase', 'orders')!.metadata.finalizers).toBeUndefined();
  });
});

describe('DirectoryService passwords (agent), before the directory is reached', () => {
  const ds = (passwords: Record<string, unknown>): FakeObject => ({
    apiVersion: KILN_API_VERSION,
    kind: 'DirectoryService',
    metadata: { name: 'ds', namespace: 'ns' },
    spec: { image: 'ds:7', passwords },
  });

  it('no uid=admin entry: PasswordsSynced False NoAdminEntry', async () => {
    const { condition, directories } = agent([ds({ 'uid=app,ou=people,dc=example,dc=com': { secretName: 'app' } }), secret('app', { password: 'x' })]);
    await directories.reconcile(key('ds'));
    expect(condition('DirectoryService', 'ds', 'PasswordsSynced')).toMatchObject({ status: 'False', reason: 'NoAdminEntry' });
  });

  it("the admin entry's Secret missing (create not asked): SecretMissing, looked at again on the password interval", async () => {
    const { fake, condition, directories } = agent([ds({ 'uid=admin': { secretName: 'admin' } })]);
    const r = await directories.reconcile(key('ds'));
    expect(r.requeueAfterMs).toBe(300_000);
    expect(condition('DirectoryService', 'ds', 'PasswordsSynced')).toMatchObject({ status: 'False', reason: 'SecretMissing' });
    expect(fake.actions.filter((a) => a.resource === 'secrets' && a.verb !== 'GET')).toEqual([]);
  });

  it('create: true generates the admin password into its Secret; an unreachable directory is DirectoryUnreachable (the password in no message) and retried', async () => {
    const { get, condition, events, directories } = agent([ds({ 'uid=admin': { secretName: 'admin', create: true } })]);
    const err = await directories.reconcile(key('ds')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryLater);
    const password = unb64(get<SecretLive>('Secret', 'admin')!.data?.['password'])!;
    expect(password.length).toBeGreaterThanOrEqual(16);
    const c = condition('DirectoryService', 'ds', 'PasswordsSynced')!;
    expect(c).toMatchObject({ status: 'False', reason: 'DirectoryUnreachable' });
    expect(c.message).toContain('ldap://127.0.0.1:1');
    expect(c.message).not.toContain(password);
    expect(await events()).toContain('PasswordGenerated: generated a password for uid=admin into Secret admin (key password)');
  });
});

describe('InstanceGate', () => {
  it('one operation per instance at a time: a second is turned away without running, others go on, the key is freed after a failure', async () => {
    const gate = new InstanceGate();
    let release!: () => void;
    const held = gate.tryRun('ns/pg', () => new Promise<string>((r) => (release = () => r('first'))));
    let ran = false;
    expect(await gate.tryRun('ns/pg', () => Promise.resolve((ran = true)))).toBeUndefined();
    expect(ran).toBe(false);
    expect(await gate.tryRun('ns/other', () => Promise.resolve('other'))).toEqual({ value: 'other' });
    release();
    expect(await held).toEqual({ value: 'first' });
    await expect(gate.tryRun('ns/pg', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(gate.isBusy('ns/pg')).toBe(false);
  });

  it('hands the keys it turned away to onFree when the operation ends, once each, and none when nobody waited', async () => {
    const freed: string[][] = [];
    const gate = new InstanceGate((keys) => freed.push(keys));
    let release!: () => void;
    const held = gate.tryRun('ns/pg', () => new Promise<void>((r) => (release = r)), 'ns/db-1');
    expect(await gate.tryRun('ns/pg', () => Promise.resolve(), 'ns/db-2')).toBeUndefined();
    expect(await gate.tryRun('ns/pg', () => Promise.resolve(), 'ns/db-3')).toBeUndefined();
    expect(await gate.tryRun('ns/pg', () => Promise.resolve(), 'ns/db-2')).toBeUndefined();
    expect(freed).toEqual([]);
    release();
    await held;
    expect(freed).toEqual([['ns/db-2', 'ns/db-3']]);
    await gate.tryRun('ns/pg', () => Promise.resolve(), 'ns/db-4');
    expect(freed).toHaveLength(1);
  });
});
