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
import { isNotFound } from '../controller/client.js';
import type { KubeObject } from '../controller/informer.js';
import { readyConditions, sameJson } from '../controller/status.js';
import type { AgentContext, ReconcileOutcome } from './context.js';
import { postgresServiceAddress } from './context.js';
import { superuserSecretRef, type PostgresInstance } from './instance-reconciler.js';
import { databaseName, extensionName, InvalidNameError, roleName } from './names.js';
import { PostgresServer, type Marker } from './postgres.js';
import { errorMessage, generatePassword } from './redact.js';
import { RetryLater } from './directory-reconciler.js';
import { secretValue, type SecretObject } from './secrets.js';
import { applyAgentStatus, condition, FIELD_MANAGER } from './status.js';

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
  status?: { conditions?: { type: string; status: string }[] };
};

export const DATABASE_READY = 'DatabaseReady';
export const RECLAIM_FINALIZER = 'kiln.dev/database-reclaim';
export const connectionSecretName = (db: { metadata: { name: string } }) => `${db.metadata.name}-connection`;
const ownerRole = (db: PostgresDatabase) => db.spec.owner ?? db.spec.name;

/** One connection pool per instance, replaced when its address or superuser password changes. */
export class ServerPools {
  private readonly pools = new Map<string, { fingerprint: string; server: PostgresServer }>();
  constructor(private readonly onError: (instance: string, err: Error) => void) {}

  get(instance: string, address: { host: string; port: number; user: string; password: string }): PostgresServer {
    const fingerprint = createHash('sha256').update(JSON.stringify(address)).digest('hex');
    const have = this.pools.get(instance);
    if (have?.fingerprint === fingerprint) return have.server;
    void have?.server.close();
    const server = new PostgresServer(address, (err) => this.onError(instance, err));
    this.pools.set(instance, { fingerprint, server });
    return server;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.server.close()));
    this.pools.clear();
  }
}

/** The resource that holds the claim on a database or role name in an instance: the oldest one. */
export function claimant(all: PostgresDatabase[], db: PostgresDatabase): PostgresDatabase | undefined {
  const rivals = all.filter((o) => o.metadata.uid !== db.metadata.uid && !o.metadata.deletionTimestamp
    && o.spec.instance === db.spec.instance && (o.spec.name === db.spec.name || ownerRole(o) === ownerRole(db)));
  const older = (a: PostgresDatabase, b: PostgresDatabase) =>
    (a.metadata as { creationTimestamp?: string }).creationTimestamp! < (b.metadata as { creationTimestamp?: string }).creationTimestamp!
    || ((a.metadata as { creationTimestamp?: string }).creationTimestamp === (b.metadata as { creationTimestamp?: string }).creationTimestamp && a.metadata.name < b.metadata.name);
  return rivals.find((r) => older(r, db));
}

interface Outcome {
  kind: 'ready' | 'stalled' | 'reconciling';
  reason: string;
  message: string;
  applied: boolean;
}

async function writeStatus(ctx: AgentContext, db: PostgresDatabase, o: Outcome): Promise<boolean> {
  const gen = db.metadata.generation;
  return applyAgentStatus(ctx.client, db, {
    applied: o.applied,
    message: o.message,
    secretName: connectionSecretName(db),
    conditions: [...readyConditions(o, gen), condition(DATABASE_READY, o.kind === 'ready', o.reason, o.message, gen)],
  }, { ownsObservedGeneration: true });
}

export class DatabaseReconciler {
  /** uid -> generation whose extensions are in place (extensions are checked on change, not on every poll). */
  private readonly extensionsDone = new Map<string, number>();
  /** uid -> the password last written to the connection Secret. */
  private readonly written = new Map<string, string>();
  /** Instances the last dropped-database check could not reach. */
  private readonly unreachable = new Set<string>();

  constructor(private readonly ctx: AgentContext, readonly pools: ServerPools) {}

  async reconcile(namespace: string, name: string): Promise<ReconcileOutcome> {
    const { ctx } = this;
    const started = performance.now();
    const db = ctx.caches.get('PostgresDatabase', namespace, name) as PostgresDatabase | undefined;
    if (!db) return {};
    const secrets: string[] = [];
    try {
      // Validated again here: the CRD's pattern refuses bad names at admission, and nothing unvalidated reaches SQL.
      databaseName(db.spec.name, 'spec.name');
      roleName(ownerRole(db), db.spec.owner ? 'spec.owner' : 'spec.name (the default owner)');
      (db.spec.extensions ?? []).forEach((e, i) => extensionName(e, `spec.extensions[${i}]`));
    } catch (err) {
      if (!(err instanceof InvalidNameError)) throw err;
      if (db.metadata.deletionTimestamp) return this.finish(db);
      await writeStatus(ctx, db, { kind: 'stalled', reason: 'InvalidName', message: err.message, applied: false });
      return {};
    }
    if (db.metadata.deletionTimestamp) return this.delete(db, secrets);
    await this.setFinalizer(db, db.spec.reclaimPolicy === 'Delete');

    const holder = claimant(ctx.caches.list('PostgresDatabase', namespace) as PostgresDatabase[], db);
    if (holder) {
      const what = holder.spec.name === db.spec.name ? `database ${db.spec.name}` : `owner role ${ownerRole(db)}`;
      await writeStatus(ctx, db, { kind: 'stalled', reason: 'AlreadyClaimed', message: `spec.name: ${what} on instance ${db.spec.instance} is already managed by PostgresDatabase ${namespace}/${holder.metadata.name}`, applied: false });
      return {};
    }

    try {
      const server = this.server(db, secrets);
      const instance = ctx.caches.get('PostgresInstance', namespace, db.spec.instance) as PostgresInstance;
      const role = ownerRole(db);
      const marker: Marker = { resource: `${namespace}/${name}`, uid: db.metadata.uid!, created: true };
      const connName = connectionSecretName(db);
      const connLive = ctx.caches.get('Secret', namespace, connName) as SecretObject | undefined;
      if (connLive && !ownedBy(connLive, db)) throw new WaitFor('SecretConflict', `Secret ${connName} exists and kiln does not own it; rename or remove it`);
      // The cache may not show a Secret written a moment ago yet: the value written wins over a new one.
      const password = secretValue(connLive, 'password') ?? this.written.get(db.metadata.uid!) ?? generatePassword();
      secrets.push(password);

      const present = await server.database(db.spec.name);
      if (!present.exists && db.spec.recreateIfDropped === false && this.wasReady(db)) {
        await writeStatus(ctx, db, { kind: 'stalled', reason: 'DatabaseDropped', message: `database ${db.spec.name} was dropped and spec.recreateIfDropped is false`, applied: false });
        return { requeueAfterMs: ctx.databaseCheckMs };
      }
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
      await writeStatus(ctx, db, { kind: 'ready', reason: 'DatabaseReady', message: `database ${db.spec.name} on instance ${db.spec.instance} is ready, owned by ${role}`, applied: true });
      // Drops are caught by droppedDatabases() between full checks; the full check (role password,
      // owner, Secret) comes round on the slower interval, one interval after this one began.
      return { requeueAfterMs: Math.max(0, ctx.fullCheckMs - (performance.now() - started)) };
    } catch (err) {
      if (err instanceof WaitFor) {
        await writeStatus(ctx, db, { kind: 'reconciling', reason: err.reason, message: err.message, applied: false });
        return { requeueAfterMs: 5_000 };
      }
      const message = errorMessage(err, secrets);
      ctx.task('PostgresDatabase', 'database', 'error');
      await writeStatus(ctx, db, { kind: 'reconciling', reason: 'PostgresError', message: `instance ${db.spec.instance}: ${message}`, applied: false });
      throw new RetryLater(message);
    }
  }

  /**
   * Resources whose database was ready and is now missing from its instance:
   * one `SELECT datname FROM pg_database` per instance, however many
   * databases it holds. An instance that cannot be reached is skipped (its
   * resources' own reconciles report that).
   */
  async droppedDatabases(): Promise<PostgresDatabase[]> {
    const byInstance = new Map<string, PostgresDatabase[]>();
    for (const db of this.ctx.caches.list('PostgresDatabase') as PostgresDatabase[]) {
      if (db.metadata.deletionTimestamp || !this.wasReady(db)) continue;
      const key = `${db.metadata.namespace}/${db.spec.instance}`;
      byInstance.set(key, [...(byInstance.get(key) ?? []), db]);
    }
    const dropped: PostgresDatabase[] = [];
    await Promise.all([...byInstance.entries()].map(async ([instance, dbs]) => {
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
    }));
    return dropped;
  }

  private wasReady(db: PostgresDatabase): boolean {
    return db.status?.conditions?.find((c) => c.type === DATABASE_READY)?.status === 'True';
  }

  /** The pool for the resource's instance, or WaitFor when the instance or its superuser Secret is not there yet. */
  private server(db: PostgresDatabase, secrets: string[]): PostgresServer {
    const ns = db.metadata.namespace!;
    const instance = this.ctx.caches.get('PostgresInstance', ns, db.spec.instance) as PostgresInstance | undefined;
    if (!instance) throw new WaitFor('InstanceNotFound', `spec.instance: PostgresInstance ${ns}/${db.spec.instance} does not exist (yet)`);
    const ref = superuserSecretRef(instance);
    const secret = this.ctx.caches.get('Secret', ns, ref.name) as SecretObject | undefined;
    const password = secretValue(secret, ref.key);
    if (password === undefined) throw new WaitFor('SuperuserSecretMissing', `the superuser Secret ${ref.name} (key ${ref.key}) of instance ${db.spec.instance} does not exist (yet)`);
    secrets.push(password);
    const user = secretValue(secret, 'username') ?? 'postgres';
    const { host, port } = this.ctx.endpoints.postgres(ns, db.spec.instance, instance.spec.service?.port ?? 5432);
    return this.pools.get(`${ns}/${db.spec.instance}`, { host, port, user, password });
  }

  private async applyConnectionSecret(db: PostgresDatabase, c: { username: string; password: string; host: string; port: string; dbname: string }): Promise<void> {
    const uri = `postgresql://${encodeURIComponent(c.username)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${encodeURIComponent(c.dbname)}`;
    const stringData: Record<string, string> = { ...c, uri };
    const data = Object.fromEntries(Object.entries(stringData).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')]));
    const name = connectionSecretName(db);
    const live = this.ctx.caches.get('Secret', db.metadata.namespace!, name) as SecretObject | undefined;
    if (live && sameJson(live.data, data) && live.metadata.ownerReferences?.some((o) => o.uid === db.metadata.uid && o.controller)) return;
    this.written.set(db.metadata.uid!, c.password);
    await this.ctx.client.apply({
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
    } as never, FIELD_MANAGER);
  }

  /** Adds or removes the reclaim finalizer with the agent's field manager (finalizers merge as a set). */
  private async setFinalizer(db: PostgresDatabase, want: boolean): Promise<void> {
    const has = db.metadata.finalizers?.includes(RECLAIM_FINALIZER) ?? false;
    if (has === want) return;
    await this.ctx.client.apply({
      apiVersion: db.apiVersion!,
      kind: db.kind!,
      metadata: { name: db.metadata.name, namespace: db.metadata.namespace, ...(want ? { finalizers: [RECLAIM_FINALIZER] } : {}) },
    } as never, FIELD_MANAGER);
  }

  private async finish(db: PostgresDatabase): Promise<ReconcileOutcome> {
    try {
      await this.setFinalizer(db, false);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.extensionsDone.delete(db.metadata.uid!);
    this.written.delete(db.metadata.uid!);
    return {};
  }

  private async delete(db: PostgresDatabase, secrets: string[]): Promise<ReconcileOutcome> {
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
      await writeStatus(ctx, db, { kind: 'reconciling', reason: 'DeleteFailed', message: `reclaimPolicy Delete: ${message}`, applied: false }).catch(() => {});
      throw new RetryLater(message);
    }
    return this.finish(db);
  }
}

/** kiln's own connection Secret (a Secret of the same name that someone else made is never overwritten). */
function ownedBy(secret: SecretObject, db: PostgresDatabase): boolean {
  return !!secret.metadata.ownerReferences?.some((o) => o.uid === db.metadata.uid) || secret.metadata.labels?.['kiln.dev/postgres-database'] === db.metadata.name;
}

/** Something the resource depends on is not there yet: Reconciling, and a look again soon. */
class WaitFor extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}
