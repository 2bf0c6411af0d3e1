/**
 * PostgresDatabase: the owner role, the database, its extensions and the
 * connection Secret `<name>-connection`; a periodic look at each instance's
 * catalog wakes a resource whose database was dropped (re-created when
 * recreateIfDropped, Stalled otherwise); with reclaimPolicy Delete a finalizer
 * drops what kiln created when the resource goes. The agent owns this kind's
 * whole status: Ready / Reconciling / Stalled, DatabaseReady, applied,
 * message, observedGeneration, secretName.
 */
import { createHash } from 'node:crypto';
import { isNotFound } from '../kube/client.js';
import type { KubeObject } from '../kube/informer.js';
import { readyConditions, sameJson } from '../kube/status.js';
import type { AgentContext } from './context.js';
import { postgresServiceAddress } from './context.js';
import { superuserSecretRef, type PostgresInstance } from './instance-reconciler.js';
import { InstanceGate } from './instance-gate.js';
import { databaseName, extensionName, InvalidNameError, roleName } from './names.js';
import { DEFAULT_POLICY, DEFAULT_TIMEOUTS, type PostgresPolicy, type Timeouts } from './policy.js';
import { InsecureAuthError, PostgresServer, TakeoverRefusedError, type Marker, type ServerAddress } from './postgres.js';
import { errorMessage, generatePassword } from './redact.js';
import { RetryLater } from './directory-reconciler.js';
import { secretValue, type SecretObject } from './secrets.js';
import { condition, FIELD_MANAGER } from './status.js';
import type { StatusWriter } from '../kube/status.js';
import type { NamespacedName, Reconciler, Result } from '../kube/reconcile.js';

/** A Stalled resource is looked at again this often (its server or spec may have been fixed). */
const STALLED_RECHECK_MS = 60_000;
/** How long a new database waits for its instance to appear before it reports Stalled (they are usually applied together). */
const INSTANCE_GRACE_MS = 120_000;
/** An instance busy with another resource's operation: try again this soon. */
const BUSY_RETRY_MS = 1_000;

export type PostgresDatabase = KubeObject & {
  spec: {
    instance: string;
    name: string;
    owner?: string;
    extensions?: string[];
    reclaimPolicy?: 'Retain' | 'Delete';
    dropWithForce?: boolean;
    recreateIfDropped?: boolean;
  };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
};

export const DATABASE_READY = 'DatabaseReady';
export const RECLAIM_FINALIZER = 'kiln.dev/database-reclaim';
export const connectionSecretName = (db: { metadata: { name: string } }) => `${db.metadata.name}-connection`;
const ownerRole = (db: PostgresDatabase) => db.spec.owner ?? db.spec.name;

/** One connection pool per instance, replaced when its address, TLS, auth policy or superuser password changes. */
export class ServerPools {
  private readonly pools = new Map<string, { fingerprint: string; server: PostgresServer }>();
  constructor(
    private readonly onError: (instance: string, err: Error) => void,
    private readonly timeouts: Timeouts = DEFAULT_TIMEOUTS,
  ) {}

  get(instance: string, address: ServerAddress): PostgresServer {
    const fingerprint = createHash('sha256').update(JSON.stringify(address)).digest('hex');
    const have = this.pools.get(instance);
    if (have?.fingerprint === fingerprint) return have.server;
    void have?.server.close();
    const server = new PostgresServer(address, (err) => this.onError(instance, err), this.timeouts);
    this.pools.set(instance, { fingerprint, server });
    return server;
  }

  /** Closes the pools of instances that are gone (their superuser password lives in the pool's config). */
  retain(keep: (instance: string) => boolean): void {
    for (const [instance, p] of this.pools) {
      if (keep(instance)) continue;
      void p.server.close();
      this.pools.delete(instance);
    }
  }

  has(instance: string): boolean {
    return this.pools.has(instance);
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.server.close()));
    this.pools.clear();
  }
}

/** The resource that holds the claim on a database or role name in an instance: the oldest one. */
export function claimant(all: PostgresDatabase[], db: PostgresDatabase): PostgresDatabase | undefined {
  const rivals = all.filter(
    (o) => o.metadata.uid !== db.metadata.uid && !o.metadata.deletionTimestamp && o.spec.instance === db.spec.instance && (o.spec.name === db.spec.name || ownerRole(o) === ownerRole(db)),
  );
  const older = (a: PostgresDatabase, b: PostgresDatabase) =>
    a.metadata.creationTimestamp! < b.metadata.creationTimestamp! || (a.metadata.creationTimestamp === b.metadata.creationTimestamp && a.metadata.name < b.metadata.name);
  return rivals.find((r) => older(r, db));
}

interface Outcome {
  kind: 'ready' | 'stalled' | 'reconciling';
  reason: string;
  message: string;
  applied: boolean;
}

export class DatabaseReconciler implements Reconciler<NamespacedName> {
  /** uid -> generation whose extensions are in place (extensions are checked on change, not on every poll). */
  private readonly extensionsDone = new Map<string, number>();
  /** uid -> the password last written to the connection Secret. */
  private readonly written = new Map<string, string>();
  /** namespace/name -> uid, so a resource gone from the cache can be forgotten. */
  private readonly uids = new Map<string, string>();
  /** Instances the last dropped-database check could not reach. */
  private readonly unreachable = new Set<string>();
  /** Dropped-database checks still running when their round ended, and what they found. */
  private readonly checking = new Map<string, Promise<void>>();
  private lateDropped: PostgresDatabase[] = [];
  private readonly gate: InstanceGate;

  constructor(
    private readonly ctx: AgentContext,
    readonly pools: ServerPools,
    private readonly status: StatusWriter,
    private readonly policy: PostgresPolicy = DEFAULT_POLICY,
    /** Reconcile this database now (its instance came free); without it, a busy instance's databases retry after BUSY_RETRY_MS. */
    wake?: (namespace: string, name: string) => void,
  ) {
    this.gate = new InstanceGate(wake && ((keys) => keys.forEach((k) => wake(...(k.split('/') as [string, string])))));
  }

  /** The agent owns this kind's whole status: observedGeneration included. */
  private async writeStatus(db: PostgresDatabase, o: Outcome): Promise<boolean> {
    const gen = db.metadata.generation;
    const w = await this.status.write(
      db,
      {
        applied: o.applied,
        message: o.message,
        secretName: connectionSecretName(db),
        conditions: [...readyConditions(o, gen), condition(DATABASE_READY, o.kind === 'ready', o.reason, o.message, gen)],
      },
      { ownsObservedGeneration: true },
    );
    return w.written;
  }

  /** Which of this reconciler's caches hold something of the resource `uid` (for tests of eviction). */
  cachedFor(uid: string): string[] {
    return [...(this.written.has(uid) ? ['written'] : []), ...(this.extensionsDone.has(uid) ? ['extensionsDone'] : []), ...([...this.uids.values()].includes(uid) ? ['uids'] : [])];
  }

  async reconcile({ namespace, name }: NamespacedName): Promise<Result> {
    const { ctx } = this;
    const started = performance.now();
    const db = ctx.caches.get('PostgresDatabase', namespace, name) as PostgresDatabase | undefined;
    if (!db) {
      this.forget(`${namespace}/${name}`);
      return {};
    }
    this.uids.set(`${namespace}/${name}`, db.metadata.uid!);
    const secrets: string[] = [];
    try {
      // Validated again here: the CRD's pattern refuses bad names at admission, and nothing unvalidated reaches SQL.
      databaseName(db.spec.name, 'spec.name');
      roleName(ownerRole(db), db.spec.owner ? 'spec.owner' : 'spec.name (the default owner)');
      (db.spec.extensions ?? []).forEach((e, i) => extensionName(e, `spec.extensions[${i}]`));
    } catch (err) {
      if (!(err instanceof InvalidNameError)) throw err;
      if (db.metadata.deletionTimestamp) return this.finish(db);
      await this.writeStatus(db, { kind: 'stalled', reason: 'InvalidName', message: err.message, applied: false });
      return {};
    }
    const instanceKey = `${namespace}/${db.spec.instance}`;
    if (db.metadata.deletionTimestamp) {
      const r = await this.gate.tryRun(instanceKey, () => this.delete(db, secrets), `${namespace}/${name}`);
      return r ? r.value : { requeueAfterMs: BUSY_RETRY_MS };
    }
    await this.setFinalizer(db, db.spec.reclaimPolicy === 'Delete');

    const holder = claimant(ctx.caches.list('PostgresDatabase', namespace) as PostgresDatabase[], db);
    if (holder) {
      const what = holder.spec.name === db.spec.name ? `database ${db.spec.name}` : `owner role ${ownerRole(db)}`;
      await this.writeStatus(db, {
        kind: 'stalled',
        reason: 'AlreadyClaimed',
        message: `spec.name: ${what} on instance ${db.spec.instance} is already managed by PostgresDatabase ${namespace}/${holder.metadata.name}`,
        applied: false,
      });
      return {};
    }
    const refused = (db.spec.extensions ?? []).map((e, i) => [e, i] as const).filter(([e]) => !this.policy.extensions.has(e));
    if (refused.length) {
      const list = refused.map(([e, i]) => `spec.extensions[${i}] ${e}`).join(', ');
      await this.writeStatus(db, {
        kind: 'stalled',
        reason: 'ExtensionNotAllowed',
        message: `${list}: not on the agent's extension allowlist (--allowed-extension; extensions are created as superuser). Allowed: ${[...this.policy.extensions].sort().join(', ')}`,
        applied: false,
      });
      return {};
    }

    const r = await this.gate.tryRun(instanceKey, () => this.converge(db, secrets, started), `${namespace}/${name}`);
    return r ? r.value : { requeueAfterMs: BUSY_RETRY_MS };
  }

  private async converge(db: PostgresDatabase, secrets: string[], started: number): Promise<Result> {
    const { ctx } = this;
    const namespace = db.metadata.namespace!;
    const name = db.metadata.name;
    try {
      const server = this.server(db, secrets);
      const instance = ctx.caches.get('PostgresInstance', namespace, db.spec.instance) as PostgresInstance;
      const role = ownerRole(db);
      const marker: Marker = { resource: `${namespace}/${name}`, uid: db.metadata.uid!, created: true };
      const connName = connectionSecretName(db);
      const connLive = ctx.caches.get('Secret', namespace, connName);
      if (connLive && !ownedBy(connLive, db)) throw new WaitFor('SecretConflict', `Secret ${connName} exists and kiln does not own it; rename or remove it`);
      // The cache may not show a Secret written a moment ago yet: the value written wins over a new one.
      const password = secretValue(connLive, 'password') ?? this.written.get(db.metadata.uid!) ?? generatePassword();
      secrets.push(password);

      const present = await server.database(db.spec.name);
      if (!present.exists && db.spec.recreateIfDropped === false && this.wasReady(db)) {
        await this.writeStatus(db, { kind: 'stalled', reason: 'DatabaseDropped', message: `database ${db.spec.name} was dropped and spec.recreateIfDropped is false`, applied: false });
        return { requeueAfterMs: ctx.databaseCheckMs };
      }
      // Both checked before either is touched: a refusal leaves role, database and Secret as they were.
      await server.assertManageable(role, db.spec.name, marker);
      const roleChange = await server.ensureRole(role, password, marker);
      const dbChange = await server.ensureDatabase(db.spec.name, role, marker);
      if (dbChange === 'created') this.extensionsDone.delete(db.metadata.uid!);
      const extensions = db.spec.extensions ?? [];
      if (extensions.length && this.extensionsDone.get(db.metadata.uid!) !== db.metadata.generation) {
        await server.ensureExtensions(db.spec.name, extensions);
        this.extensionsDone.set(db.metadata.uid!, db.metadata.generation!);
      }
      const address = postgresServiceAddress(namespace, db.spec.instance, instance.spec.service?.port ?? 5432);
      await this.applyConnectionSecret(db, { username: role, password, host: address.host, port: String(address.port), dbname: db.spec.name });

      if (dbChange === 'created' && present.exists === false && this.wasReady(db)) ctx.events.normal(db, 'DatabaseRecreated', `database ${db.spec.name} was missing and has been created again`);
      else if (dbChange === 'created') ctx.events.normal(db, 'DatabaseCreated', `created database ${db.spec.name} owned by ${role}`);
      if (roleChange === 'updated') ctx.events.normal(db, 'RolePasswordSet', `set the password of role ${role} from Secret ${connName}`);
      if (roleChange !== 'unchanged' || dbChange !== 'unchanged') ctx.log('info', 'database reconciled', { resource: `${namespace}/${name}`, database: db.spec.name, role: roleChange, db: dbChange });
      ctx.task('PostgresDatabase', 'database', 'success');
      await this.writeStatus(db, { kind: 'ready', reason: 'DatabaseReady', message: `database ${db.spec.name} on instance ${db.spec.instance} is ready, owned by ${role}`, applied: true });
      // Drops are caught by droppedDatabases() between full checks; the full check (role password,
      // owner, Secret) comes round on the slower interval, one interval after this one began.
      return { requeueAfterMs: Math.max(0, ctx.fullCheckMs - (performance.now() - started)) };
    } catch (err) {
      if (err instanceof WaitFor) {
        await this.writeStatus(db, { kind: 'reconciling', reason: err.reason, message: err.message, applied: false });
        return { requeueAfterMs: 5_000 };
      }
      const refusal = this.refusal(db, err);
      if (refusal) {
        ctx.task('PostgresDatabase', 'database', 'error');
        const message = err instanceof InstanceMissingError ? refusal.message : `instance ${db.spec.instance}: ${errorMessage(refusal.message, secrets)}`;
        await this.writeStatus(db, { kind: 'stalled', reason: refusal.reason, message, applied: false });
        return { requeueAfterMs: STALLED_RECHECK_MS };
      }
      const message = errorMessage(err, secrets);
      ctx.task('PostgresDatabase', 'database', 'error');
      await this.writeStatus(db, { kind: 'reconciling', reason: 'PostgresError', message: `instance ${db.spec.instance}: ${message}`, applied: false });
      throw new RetryLater(message);
    }
  }

  /** Errors that retrying will not cure until someone changes the server, its certificate or the spec: Stalled. */
  private refusal(db: PostgresDatabase, err: unknown): { reason: string; message: string } | undefined {
    if (err instanceof TakeoverRefusedError) return { reason: err.reason, message: err.message };
    if (err instanceof InstanceMissingError) return { reason: 'InstanceNotFound', message: err.message };
    if (err instanceof InsecureAuthError) {
      const ns = db.metadata.namespace!;
      const asked = (this.ctx.caches.get('PostgresInstance', ns, db.spec.instance) as PostgresInstance | undefined)?.spec.allowInsecureAuth === true;
      const why = asked
        ? `; spec.allowInsecureAuth of PostgresInstance ${db.spec.instance} is not honoured in namespace ${ns} (the agent's --allow-insecure-auth-namespace does not list it)`
        : '; configure the server for scram-sha-256 (pg_hba.conf, password_encryption)';
      return { reason: 'InsecureAuthRefused', message: `${err.message}${why}` };
    }
    const e = err as { code?: string; message?: string };
    if (/^(ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED)/.test(e.code ?? '') || /does not support SSL/.test(e.message ?? '')) {
      return { reason: 'TLSVerificationFailed', message: `spec.tls: ${e.message ?? String(err)} (the agent connects with sslmode=verify-full)` };
    }
    return undefined;
  }

  /** Drops what the agent holds for a resource that is gone: its password, its extension mark, its last status. */
  private forget(key: string): void {
    const uid = this.uids.get(key);
    this.uids.delete(key);
    if (!uid) return;
    this.written.delete(uid);
    this.extensionsDone.delete(uid);
    const [namespace, name] = key.split('/') as [string, string];
    this.status.forget({ kind: 'PostgresDatabase', metadata: { namespace, name } });
  }

  /**
   * Resources whose database was ready and is now missing from its instance:
   * one `SELECT datname FROM pg_database` per instance, however many
   * databases it holds. An instance that cannot be reached is skipped (its
   * resources' own reconciles report that); one busy with an operation is
   * looked at next round; a check slower than half the interval goes on in
   * the background and what it finds is returned by the next round, so one
   * slow server does not hold back the others' checks.
   */
  async droppedDatabases(): Promise<PostgresDatabase[]> {
    const byInstance = new Map<string, PostgresDatabase[]>();
    for (const db of this.ctx.caches.list('PostgresDatabase') as PostgresDatabase[]) {
      if (db.metadata.deletionTimestamp || !this.wasReady(db)) continue;
      const key = `${db.metadata.namespace}/${db.spec.instance}`;
      byInstance.set(key, [...(byInstance.get(key) ?? []), db]);
    }
    const live = new Set((this.ctx.caches.list('PostgresInstance') as PostgresInstance[]).map((pi) => `${pi.metadata.namespace}/${pi.metadata.name}`));
    this.pools.retain((instance) => live.has(instance));
    for (const instance of this.unreachable) if (!live.has(instance)) this.unreachable.delete(instance);
    const dropped: PostgresDatabase[] = [];
    const round = [...byInstance.entries()]
      .filter(([instance]) => !this.checking.has(instance))
      .map(([instance, dbs]) => {
        const check = this.gate
          .tryRun(instance, async () => {
            const secrets: string[] = [];
            try {
              const names = await this.server(dbs[0]!, secrets).databaseNames();
              dropped.push(...dbs.filter((db) => !names.has(db.spec.name)));
              this.unreachable.delete(instance);
            } catch (err) {
              // Said once per outage, not every few seconds.
              if (!(err instanceof WaitFor) && !this.unreachable.has(instance)) {
                this.unreachable.add(instance);
                this.ctx.log('warn', 'dropped-database check cannot reach the instance', { instance, error: errorMessage(err, secrets) });
              }
            }
          })
          .then(() => {
            this.checking.delete(instance);
          });
        this.checking.set(instance, check);
        return check;
      });
    await Promise.race([Promise.all(round), new Promise((r) => setTimeout(r, Math.max(250, this.ctx.databaseCheckMs / 2)).unref())]);
    // What a slow check finds after its round ended is handed to the next one.
    void Promise.all(round).then(() => this.lateDropped.push(...dropped.splice(0)));
    const late = this.lateDropped.splice(0);
    return [...dropped.splice(0), ...late];
  }

  private wasReady(db: PostgresDatabase): boolean {
    return db.status?.conditions?.find((c) => c.type === DATABASE_READY)?.status === 'True';
  }

  /** The pool for the resource's instance, or WaitFor when the instance or its superuser Secret is not there yet. */
  private server(db: PostgresDatabase, secrets: string[]): PostgresServer {
    const ns = db.metadata.namespace!;
    const instance = this.ctx.caches.get('PostgresInstance', ns, db.spec.instance) as PostgresInstance | undefined;
    if (!instance) {
      // Missing for a moment is creation order (both applied together); missing after the database ran there,
      // or for longer than the grace period, is a deleted instance or a wrong name: Stalled, not waiting forever.
      const age = Date.now() - Date.parse(db.metadata.creationTimestamp ?? '');
      // Once Stalled for it, stay so (the same message) until the instance is there: no flapping back to waiting.
      const stalled = db.status?.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True' && c.reason === 'InstanceNotFound');
      if (stalled?.message) throw new InstanceMissingError(stalled.message);
      if (this.wasReady(db))
        throw new InstanceMissingError(
          `spec.instance: PostgresInstance ${ns}/${db.spec.instance} was deleted, and this database and its role with its data; recreate the instance (the database is then created again there) or delete this PostgresDatabase`,
        );
      if (age > INSTANCE_GRACE_MS)
        throw new InstanceMissingError(
          `spec.instance: PostgresInstance ${ns}/${db.spec.instance} does not exist (waited ${Math.round(INSTANCE_GRACE_MS / 1000)} s); create it, or recreate this PostgresDatabase naming an existing instance (spec.instance is immutable)`,
        );
      throw new WaitFor('InstanceNotFound', `spec.instance: PostgresInstance ${ns}/${db.spec.instance} does not exist (yet)`);
    }
    const ref = superuserSecretRef(instance);
    const secret = this.ctx.caches.get('Secret', ns, ref.name);
    const password = secretValue(secret, ref.key);
    if (password === undefined) throw new WaitFor('SuperuserSecretMissing', `the superuser Secret ${ref.name} (key ${ref.key}) of instance ${db.spec.instance} does not exist (yet)`);
    secrets.push(password);
    const user = secretValue(secret, 'username') ?? 'postgres';
    const servicePort = instance.spec.service?.port ?? 5432;
    const { host, port } = this.ctx.endpoints.postgres(ns, db.spec.instance, servicePort);
    let tls: ServerAddress['tls'];
    const tlsSecret = instance.spec.tls?.secretName;
    if (tlsSecret) {
      const ca = secretValue(this.ctx.caches.get('Secret', ns, tlsSecret), 'ca.crt');
      if (!ca) throw new WaitFor('TLSSecretMissing', `spec.tls.secretName: Secret ${tlsSecret} of instance ${db.spec.instance} has no ca.crt (yet)`);
      // The name applications use (the client Service), whatever address the agent dials.
      tls = { ca, servername: postgresServiceAddress(ns, db.spec.instance, servicePort).host };
    }
    // Honoured only where the agent's operator allowed it: a tenant cannot allow it for itself.
    const allowInsecureAuth = instance.spec.allowInsecureAuth === true && this.policy.insecureAuthNamespaces.has(ns);
    return this.pools.get(`${ns}/${db.spec.instance}`, { host, port, user, password, tls, allowInsecureAuth });
  }

  private async applyConnectionSecret(db: PostgresDatabase, c: { username: string; password: string; host: string; port: string; dbname: string }): Promise<void> {
    const uri = `postgresql://${encodeURIComponent(c.username)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${encodeURIComponent(c.dbname)}`;
    const stringData: Record<string, string> = { ...c, uri };
    const data = Object.fromEntries(Object.entries(stringData).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')]));
    const name = connectionSecretName(db);
    const live = this.ctx.caches.get('Secret', db.metadata.namespace!, name);
    if (live && sameJson(live.data, data) && live.metadata.ownerReferences?.some((o) => o.uid === db.metadata.uid && o.controller)) return;
    this.written.set(db.metadata.uid!, c.password);
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name,
        namespace: db.metadata.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'kiln-agent', 'kiln.dev/postgres-database': db.metadata.name },
        ownerReferences: [{ apiVersion: db.apiVersion!, kind: db.kind!, name: db.metadata.name, uid: db.metadata.uid!, controller: true, blockOwnerDeletion: true }],
      },
      data,
    };
    await this.ctx.client.apply(secret, FIELD_MANAGER);
  }

  /** Adds or removes the reclaim finalizer with the agent's field manager (finalizers merge as a set). */
  private async setFinalizer(db: PostgresDatabase, want: boolean): Promise<void> {
    const has = db.metadata.finalizers?.includes(RECLAIM_FINALIZER) ?? false;
    if (has === want) return;
    const finalizers = { apiVersion: db.apiVersion!, kind: db.kind!, metadata: { name: db.metadata.name, namespace: db.metadata.namespace, ...(want ? { finalizers: [RECLAIM_FINALIZER] } : {}) } };
    await this.ctx.client.apply(finalizers, FIELD_MANAGER);
  }

  private async finish(db: PostgresDatabase): Promise<Result> {
    try {
      await this.setFinalizer(db, false);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.extensionsDone.delete(db.metadata.uid!);
    this.written.delete(db.metadata.uid!);
    return {};
  }

  private async delete(db: PostgresDatabase, secrets: string[]): Promise<Result> {
    const { ctx } = this;
    if (!db.metadata.finalizers?.includes(RECLAIM_FINALIZER)) return {};
    if (db.spec.reclaimPolicy !== 'Delete') return this.finish(db);
    const ns = db.metadata.namespace!;
    if (!ctx.caches.get('PostgresInstance', ns, db.spec.instance)) {
      ctx.events.warning(db, 'InstanceGone', `PostgresInstance ${db.spec.instance} is gone: nothing dropped`);
      return this.finish(db);
    }
    try {
      const server = this.server(db, secrets);
      const dropped = await server.dropDatabase(db.spec.name, db.metadata.uid!, db.spec.dropWithForce === true);
      const role = await server.dropRole(ownerRole(db), db.metadata.uid!);
      ctx.events.normal(db, 'Reclaimed', `database ${db.spec.name}: ${dropped}; role ${ownerRole(db)}: ${role}`);
      ctx.log('info', 'database reclaimed', { resource: `${ns}/${db.metadata.name}`, database: dropped, role });
      ctx.task('PostgresDatabase', 'reclaim', 'success');
    } catch (err) {
      const message = errorMessage(err, secrets);
      ctx.task('PostgresDatabase', 'reclaim', 'error');
      await this.writeStatus(db, { kind: 'reconciling', reason: 'DeleteFailed', message: `reclaimPolicy Delete: ${message}`, applied: false }).catch(() => {});
      throw new RetryLater(message);
    }
    return this.finish(db);
  }
}

/** kiln's own connection Secret (a Secret of the same name that someone else made is never overwritten). */
function ownedBy(secret: SecretObject, db: PostgresDatabase): boolean {
  return !!secret.metadata.ownerReferences?.some((o) => o.uid === db.metadata.uid) || secret.metadata.labels?.['kiln.dev/postgres-database'] === db.metadata.name;
}

/** The database's instance is gone or never came: Stalled until it (re)appears, which enqueues the database again. */
class InstanceMissingError extends Error {}

/** Something the resource depends on is not there yet: Reconciling, and a look again soon. */
class WaitFor extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}
