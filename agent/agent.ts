/**
 * The runtime agent's manager: informers for DirectoryService,
 * PostgresInstance, PostgresDatabase and Secrets (metadata only on the wire,
 * names and resourceVersions in memory: the contents of the Secrets resources
 * name are read by name, see
 * secret-cache.ts), one work queue keyed by
 * Kind/namespace/name, and the three reconcilers. A Secret change wakes the
 * resources that reference it at once; otherwise each resource is checked
 * again on its interval (5 min by default), and every instance's catalog is
 * read twice per --database-check-interval (10 s) so a dropped database is
 * back within that interval.
 */
import type { ClusterConfigInput } from '../kube/kubeconfig.js';
import type { KubeClient } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { Host, type Lifecycle } from '../kube/host.js';
import { MultiInformer, type KubeObject } from '../kube/informer.js';
import { WorkQueue } from '../kube/queue.js';
import { KILN_API_VERSION } from '../kinds/api.js';
import type { Log } from '../lib/log.js';
import { Endpoints, type AgentContext, type Caches, type WatchedKind } from './context.js';
import { DatabaseReconciler, ServerPools, connectionSecretName, type PostgresDatabase } from './database-reconciler.js';
import { DEFAULT_POLICY, type PostgresPolicy } from './policy.js';
import { DirectoryReconciler } from './directory-reconciler.js';
import { InstanceReconciler, superuserSecretRef, type PostgresInstance } from './instance-reconciler.js';
import { agentStatusWriter } from './status.js';
import { DEFAULT_ETCD_OPTIONS, EtcdReconciler, type EtcdCluster, type EtcdOptions } from './etcd-reconciler.js';
import { parseKey, type NamespacedName, type Reconciler } from '../kube/reconcile.js';
import type { StatusWriter } from '../kube/status.js';
import { redact } from './redact.js';
import { ReferencedSecrets, secretMetadata } from './secret-cache.js';
import { generationChanged, lifecycleChanged } from '../kube/predicates.js';

export interface AgentOptions {
  kc: ClusterConfigInput;
  /** Namespaces to watch; all when empty. */
  namespaces: string[];
  concurrency: number;
  qps: number;
  burst: number;
  passwordIntervalSeconds: number;
  databaseCheckSeconds: number;
  /** `Kind/namespace/name` -> address, for servers outside the cluster's DNS. */
  endpoints?: Record<string, string>;
  leaderElection?: { namespace: string; name: string; leaseDurationSeconds: number; renewDeadlineSeconds: number; retryPeriodSeconds: number };
  /**
   * Static sharding (--watch-label-selector): only the kiln resources this selects are watched and
   * worked on. A resource and those it names (a database's instance) must be in one shard.
   */
  watchLabelSelector?: string;
  /** start() first waits this long for the API server to answer, then rejects with StartupTimeoutError. Default: no wait. */
  startupTimeoutSeconds?: number;
  log: Log;
  onLostLeadership?: () => void;
  /** Outcome counter for metrics. */
  onTask?: (kind: string, task: string, outcome: 'success' | 'error') => void;
  /** Extension allowlist, where insecure password auth is honoured, server timeouts. */
  postgres?: PostgresPolicy;
  /** EtcdCluster membership: when an unreachable member is replaced, how often clusters are looked at. */
  etcd?: Partial<EtcdOptions>;
}

const KINDS: { kind: WatchedKind; apiVersion: string }[] = [
  { kind: 'DirectoryService', apiVersion: KILN_API_VERSION },
  { kind: 'PostgresInstance', apiVersion: KILN_API_VERSION },
  { kind: 'PostgresDatabase', apiVersion: KILN_API_VERSION },
  { kind: 'EtcdCluster', apiVersion: KILN_API_VERSION },
  { kind: 'Secret', apiVersion: 'v1' },
];

/** The Secrets an instance names: its superuser password, and the CA of spec.tls (the agent connects with verify-full). */
function instanceSecrets(pi: PostgresInstance): string[] {
  const tls = (pi.spec as { tls?: { secretName?: string } }).tls?.secretName;
  return [superuserSecretRef(pi).name, ...(tls ? [tls] : [])];
}

/** The client Secret of an EtcdCluster: the agent connects with its certificate. */
const etcdSecrets = (ec: EtcdCluster): string[] => (ec.spec.tls?.clientSecret ? [ec.spec.tls.clientSecret] : []);

type DirectoryRefs = KubeObject & { spec: { passwords?: Record<string, { secretName: string }>; secrets?: { truststore?: string } } };

export class Agent {
  readonly client: KubeClient;
  readonly queue: WorkQueue;
  private readonly informers = new Map<WatchedKind, MultiInformer>();
  private readonly databases: DatabaseReconciler;
  /** The reconciler of each kind the agent carries out (Secrets only wake them). */
  private readonly reconcilers: Record<Exclude<WatchedKind, 'Secret'>, Reconciler<NamespacedName>>;
  /** The agent's status writes, and what it last wrote until the caches see it. */
  readonly status: StatusWriter;
  private readonly ctx: AgentContext;
  /** The only Secrets whose contents the agent holds: those kiln resources name. */
  readonly secrets: ReferencedSecrets;
  private readonly host: Host;
  private readonly lifecycle: Lifecycle;
  readonly identity: string;
  /** Reconciles finished, for tests and metrics. */
  reconciles = 0;
  /** Dropped-database checks finished (one catalog query per instance each). */
  dropChecks = 0;
  private dropTimer: NodeJS.Timeout | undefined;
  private dropCheckRunning = false;

  constructor(private readonly opts: AgentOptions) {
    this.host = new Host({
      kc: opts.kc,
      qps: opts.qps,
      burst: opts.burst,
      startupTimeoutSeconds: opts.startupTimeoutSeconds,
      leaderElection: opts.leaderElection,
      onLostLeadership: opts.onLostLeadership,
      log: opts.log,
    });
    this.client = this.host.client;
    this.identity = this.host.identity;
    const namespaces = opts.namespaces.length > 0 ? opts.namespaces : [undefined];
    for (const k of KINDS) {
      // Secrets: metadata only on the wire, names and resourceVersions only in the cache (see ReferencedSecrets);
      // contents are read by name when a resource names them.
      const secret = k.kind === 'Secret';
      // The shard's selector picks kiln resources only. Secrets stay unfiltered: those a resource names
      // are mostly the user's (brought, not labelled by shard), and the ones the agent makes are found
      // by name, never by label; the cache keeps names and resourceVersions only.
      const labelSelector = secret ? undefined : opts.watchLabelSelector;
      const list = namespaces.map((ns) =>
        this.host.informer({ ...k, namespace: ns, labelSelector, resyncSeconds: 0, log: opts.log, transform: secret ? secretMetadata : undefined, metadataOnly: secret }),
      );
      for (const inf of list) inf.on((event, obj, old) => this.onEvent(k.kind, event, obj, old));
      this.informers.set(k.kind, new MultiInformer(list));
    }
    this.secrets = new ReferencedSecrets(this.client, (ns, name) => this.informers.get('Secret')!.get(ns, name));
    const caches: Caches = {
      get: (kind, ns, name) => (kind === 'Secret' ? this.secrets.get(ns, name) : this.informers.get(kind)!.get(ns, name)),
      list: (kind, ns) =>
        this.informers
          .get(kind)!
          .list()
          .filter((o) => ns === undefined || o.metadata.namespace === ns),
    };
    this.ctx = {
      client: this.client,
      caches,
      events: new EventRecorder(this.client.withOwnRateLimit(), 'kiln-agent', this.identity, opts.log),
      endpoints: new Endpoints(opts.endpoints),
      log: opts.log,
      passwordIntervalMs: opts.passwordIntervalSeconds * 1000,
      databaseCheckMs: opts.databaseCheckSeconds * 1000,
      fullCheckMs: opts.passwordIntervalSeconds * 1000,
      task: (kind, task, outcome) => opts.onTask?.(kind, task, outcome),
    };
    const policy = opts.postgres ?? DEFAULT_POLICY;
    const pools = new ServerPools((instance, err) => opts.log('warn', 'postgres connection dropped', { instance, error: redact(err.message) }), policy.timeouts);
    this.status = agentStatusWriter(this.client);
    this.databases = new DatabaseReconciler(this.ctx, pools, this.status, policy, (ns, name) => this.queue.add(`PostgresDatabase/${ns}/${name}`));
    this.reconcilers = {
      DirectoryService: new DirectoryReconciler(this.ctx, this.status),
      PostgresInstance: new InstanceReconciler(this.ctx, this.status),
      PostgresDatabase: this.databases,
      EtcdCluster: new EtcdReconciler(this.ctx, this.status, { ...DEFAULT_ETCD_OPTIONS, ...opts.etcd }),
    };
    this.queue = new WorkQueue(
      async (key) => {
        const { kind, namespace, name } = parseKey(key) as { kind: Exclude<WatchedKind, 'Secret'>; namespace: string; name: string };
        await this.secrets.load(namespace, this.secretsNamedBy(kind, namespace, name));
        const r = await this.reconcilers[kind].reconcile({ namespace, name });
        this.reconciles++;
        return r.requeueAfterMs === undefined ? undefined : { requeueAfterMs: r.requeueAfterMs };
      },
      { concurrency: opts.concurrency, maxDelayMs: 30_000 },
    );
    // Messages were scrubbed where they were made; this is the last line of defence.
    this.queue.onError = (key, err, retryInMs) => opts.log('warn', 'agent task failed', { key, error: redact(err instanceof Error ? err.message : String(err)), retryInMs });
    this.lifecycle = {
      leading: () => {
        for (const kind of ['PostgresInstance', 'PostgresDatabase', 'DirectoryService', 'EtcdCluster'] as const) {
          for (const o of this.ctx.caches.list(kind)) this.enqueue(kind, o);
        }
        this.dropTimer = setInterval(() => void this.checkDropped(), Math.max(250, this.ctx.databaseCheckMs / 2));
        this.dropTimer.unref();
      },
      lost: () => this.stopDropChecks(),
      stopping: () => this.databases.pools.close(),
    };
  }

  private enqueue(kind: WatchedKind, o: KubeObject): void {
    this.queue.add(`${kind}/${o.metadata.namespace}/${o.metadata.name}`);
  }

  private onEvent(kind: WatchedKind, event: string, obj: KubeObject, old?: KubeObject): void {
    const ns = obj.metadata.namespace!;
    switch (kind) {
      case 'Secret':
        if (event === 'deleted') this.secrets.forget(ns, obj.metadata.name);
        return this.onSecret(ns, obj.metadata.name);
      case 'PostgresInstance':
        this.enqueue(kind, obj);
        for (const db of this.ctx.caches.list('PostgresDatabase', ns)) if ((db as PostgresDatabase).spec.instance === obj.metadata.name) this.enqueue('PostgresDatabase', db);
        return;
      case 'PostgresDatabase': {
        // The agent's own status writes come back as updates: only spec and lifecycle changes matter.
        if (event === 'updated' && old && !generationChanged(old, obj) && !lifecycleChanged(old, obj)) return;
        this.enqueue(kind, obj);
        // A deleted or changed claim may free a name another resource waits for.
        if (event === 'deleted' || obj.metadata.deletionTimestamp) {
          for (const db of this.ctx.caches.list('PostgresDatabase', ns)) if ((db as PostgresDatabase).spec.instance === (obj as PostgresDatabase).spec.instance) this.enqueue(kind, db);
        }
        return;
      }
      case 'DirectoryService':
      case 'EtcdCluster':
        if (event === 'updated' && old && !generationChanged(old, obj)) return;
        return this.enqueue(kind, obj);
    }
  }

  /** The Secrets a resource's reconcile reads (its own, and for a database its instance's superuser Secret). */
  private secretsNamedBy(kind: WatchedKind, ns: string, name: string): string[] {
    const o = this.informers.get(kind)?.get(ns, name);
    if (!o) return [];
    if (kind === 'DirectoryService') {
      const ds = o as DirectoryRefs;
      return [...Object.values(ds.spec.passwords ?? {}).map((p) => p.secretName), ...(ds.spec.secrets?.truststore ? [ds.spec.secrets.truststore] : [])];
    }
    if (kind === 'PostgresInstance') return instanceSecrets(o as PostgresInstance);
    if (kind === 'EtcdCluster') return etcdSecrets(o as EtcdCluster);
    if (kind === 'PostgresDatabase') {
      const db = o as PostgresDatabase;
      const pi = this.informers.get('PostgresInstance')!.get(ns, db.spec.instance) as PostgresInstance | undefined;
      return [connectionSecretName(db), ...(pi ? instanceSecrets(pi) : [])];
    }
    return [];
  }

  /** Every Secret some resource names (namespace/name): what the Secret cache may keep. */
  private referencedSecrets(): Set<string> {
    const out = new Set<string>();
    for (const kind of ['DirectoryService', 'PostgresInstance', 'PostgresDatabase', 'EtcdCluster'] as const) {
      for (const o of this.ctx.caches.list(kind)) for (const n of this.secretsNamedBy(kind, o.metadata.namespace!, o.metadata.name)) out.add(`${o.metadata.namespace}/${n}`);
    }
    return out;
  }

  /** A Secret changed: wake every resource that reads it. */
  private onSecret(ns: string, name: string): void {
    for (const ds of this.ctx.caches.list('DirectoryService', ns) as DirectoryRefs[]) {
      const refs = Object.values(ds.spec.passwords ?? {}).map((p) => p.secretName);
      if (refs.includes(name) || ds.spec.secrets?.truststore === name) this.enqueue('DirectoryService', ds);
    }
    for (const pi of this.ctx.caches.list('PostgresInstance', ns) as PostgresInstance[]) {
      if (superuserSecretRef(pi).name !== name) continue;
      this.enqueue('PostgresInstance', pi);
      for (const db of this.ctx.caches.list('PostgresDatabase', ns)) if ((db as PostgresDatabase).spec.instance === pi.metadata.name) this.enqueue('PostgresDatabase', db);
    }
    for (const db of this.ctx.caches.list('PostgresDatabase', ns)) if (connectionSecretName(db) === name) this.enqueue('PostgresDatabase', db);
    for (const ec of this.ctx.caches.list('EtcdCluster', ns)) if (etcdSecrets(ec as EtcdCluster).includes(name)) this.enqueue('EtcdCluster', ec);
  }

  isLeader(): boolean {
    return this.host.isLeader();
  }

  hasSynced(): boolean {
    return this.host.hasSynced();
  }

  /**
   * Waits for the API server (startupTimeoutSeconds), fills the caches, then (once leading) starts
   * the workers. Rejects with StartupTimeoutError, or LeaseUnavailableError (see kube/host.ts).
   */
  async start(): Promise<void> {
    await this.host.start(this.queue, this.lifecycle);
  }

  /** Wakes the resources whose database is gone; a check still running is not started twice. */
  private async checkDropped(): Promise<void> {
    if (this.dropCheckRunning || !this.host.isLeader()) return;
    this.dropCheckRunning = true;
    try {
      this.secrets.retain(this.referencedSecrets());
      // The catalog check connects with each instance's superuser Secret: bring those up to date first.
      await Promise.all(this.ctx.caches.list('PostgresInstance').map((pi) => this.secrets.load(pi.metadata.namespace!, instanceSecrets(pi as PostgresInstance))));
      for (const db of await this.databases.droppedDatabases()) this.enqueue('PostgresDatabase', db);
      this.dropChecks++;
    } catch (err) {
      this.opts.log('warn', 'dropped-database check failed', { error: redact(err instanceof Error ? err.message : String(err)) });
    } finally {
      this.dropCheckRunning = false;
    }
  }

  private stopDropChecks(): void {
    clearInterval(this.dropTimer);
    this.dropTimer = undefined;
  }

  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopDropChecks();
    await this.host.stop(this.queue, this.lifecycle, opts);
  }
}
