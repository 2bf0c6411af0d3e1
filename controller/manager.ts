/**
 * The manager (controller-runtime's split): it owns the client, the informers
 * for kiln's kinds and for the objects kiln renders, the work queue and the
 * reconciler, and runs the workers only while this replica leads.
 *
 * Two sinks: apply mode (default) applies into the cluster; git mode commits
 * to a repository (controller/git/sink.ts, controller/git/reconciler.ts) and
 * watches no rendered objects, since it applies none, but those of the kinds a
 * rendered object waits for (a restore's Job, as Flux applied it).
 */
import type { ClusterConfigInput } from '../kube/kubeconfig.js';
import type { KubeClient } from '../kube/client.js';
import { Host, type Lifecycle } from '../kube/host.js';
import { EventRecorder } from '../kube/events.js';
import { MultiInformer, type Informer, type InformerOptions, packedJson, slim, type KubeObject } from '../kube/informer.js';
import { packer } from '../kube/pack.js';
import { packDictionary } from './pack-dictionary.js';
import { WorkQueue } from '../kube/queue.js';
import { Reconciler, type ReconcileResult } from './apply/reconciler.js';
import { GitReconciler } from './git/reconciler.js';
import { GitSink, type GitSinkOptions } from './git/sink.js';
import { FluxFollower } from './git/flux.js';
import type { FlushReport } from '../gitops/batcher.js';
import { CHILD_KINDS, GROUP, KILN_KINDS } from '../kinds/api.js';
import { carriedOutBy, childKindsWaitedFor, childKindsWrittenAcrossNamespaces, podApps, readersOf } from '../kinds/registry.js';
import { conditionsOnly } from './apply-after.js';
import { childCodec, FIELD_MANAGER, Interner, OwnWrites, PART_OF, projectChild } from './apply/applyset.js';
import { fitStatus } from './status-bounds.js';
import { StatusWriter } from '../kube/status.js';
import type { Reconciler as ReconcilerContract } from '../kube/reconcile.js';
import { APP_LABEL, INSTANCE_LABEL, OWNER_KIND_LABEL, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL } from '../kinds/shared/labels.js';
import { logFieldsOf, reconcileFields, withLogFields } from '../lib/log.js';
import { controllerOf, inputsChanged } from '../kube/predicates.js';
import { andSelectors, selectorKeys } from '../kube/label-selector.js';
import { hostname } from 'node:os';
import { replicaIdentity } from '../kube/host.js';
import { acknowledgeDrain, memberLease, SharderRole, SHARD_LABELS, type RingSettings } from '../kube/sharding/membership.js';
import { pathFor } from '../kube/resources.js';
import { shardKeyOf, SHARD_KEY_READS_SPEC } from '../kinds/registry.js';
import { shardDirectorySuffix } from '../lib/shard.js';

/** Both after-push steps, in order. */
function chainPushed(a: GitSinkOptions['onPushed'], b: GitSinkOptions['onPushed']): GitSinkOptions['onPushed'] {
  if (!a || !b) return a ?? b;
  return async (report: FlushReport) => {
    await a(report);
    await b(report);
  };
}

export type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface ManagerOptions {
  /** The cluster (what loadKubeConfig returns). */
  kc: ClusterConfigInput;
  /** Namespaces to watch; all when empty. */
  namespaces: string[];
  concurrency: number;
  qps: number;
  burst: number;
  resyncSeconds: number;
  leaderElection?: { namespace: string; name: string; leaseDurationSeconds: number; renewDeadlineSeconds: number; retryPeriodSeconds: number };
  /** start() first waits this long for the API server to answer, then rejects with StartupTimeoutError. Default: no wait. */
  startupTimeoutSeconds?: number;
  version: string;
  log: Log;
  /** What to do when leadership is lost; the command exits so a fresh start re-campaigns. Default: log only. */
  onLostLeadership?: () => void;
  /**
   * Client-side limits: how long one API request may take (default 60 s) and how long a watch may
   * stay silent, not even a bookmark, before it is presumed dead and reopened (default 120 s).
   */
  timeouts?: { requestMs?: number; watchSilentSeconds?: number };
  /** apply (default): server-side apply into the cluster; git: commit to a repository (`git` says where). */
  sink?: 'apply' | 'git';
  git?: GitSinkOptions;
  /**
   * Static sharding (Flux's --watch-label-selector): only kiln resources this selects are watched and
   * reconciled. The labels it names are copied onto every object rendered for a resource, and the
   * caches of those objects are selected by it too, so each shard holds its own resources and members.
   */
  watchLabelSelector?: string;
  /**
   * Dynamic sharding (apply mode): every replica works, each on the resources the ring's assigner
   * labels with its identity (kube/sharding/). Replaces leader election.
   */
  sharding?: RingSettings;
}

/** The resource caches' codec: deflate with a dictionary of what kiln's charts render. */
const CACHE_CODEC = packedJson(packer(packDictionary));
/** Kinds the agent carries out are not the controller's to watch. */
const RECONCILED_KINDS = KILN_KINDS.filter((k) => carriedOutBy(k.kind).by !== 'agent');
/** Child kinds some kind writes in other namespaces than its own (with -n, watched only in those given). */
const WRITTEN_ACROSS_NAMESPACES = childKindsWrittenAcrossNamespaces();
const MANAGED_BY_KILN = 'app.kubernetes.io/managed-by=kiln';
/** Pods' app label -> the kind whose status lists them. */
const POD_APPS = podApps();
/** Every other object: `!=` also selects objects without the label. */
const NOT_MANAGED_BY_KILN = 'app.kubernetes.io/managed-by!=kiln';

/**
 * Children are listed 100 to a page: a restart lists every child before the first
 * reconcile, and each page is parsed whole (a 500-item page of StatefulSets is
 * megabytes of parsed objects at once).
 */
const LIST_PAGE_SIZE = 100;

export class Manager {
  readonly client: KubeClient;
  readonly queue: WorkQueue;
  readonly resources = new Map<string, Informer>();
  readonly children = new Map<string, Informer>();
  /** Git mode: kiln's objects of the kinds a rendered object waits for, as Flux applied them (by `apiVersion/Kind`). */
  readonly waited = new Map<string, Informer>();
  /** Names held by objects of the kinds kiln renders that are not labelled as kiln's (see foreignNames). */
  readonly foreign = new Map<string, Informer>();
  /** The pod cache (one informer, or one per watched namespace), under 'Pod'. */
  private readonly podCaches = new Map<string, Informer>();
  private readonly reconciler: ReconcilerContract<string, ReconcileResult>;
  /** Git mode's writer and batcher. */
  readonly git: GitSink | undefined;
  private readonly host: Host;
  private readonly lifecycle: Lifecycle;
  readonly identity: string;
  /** Reconciles finished, for metrics and tests. */
  reconciles = 0;
  /** What kiln's own applies wrote, until the watch brings it: this Manager's, gone with it. */
  readonly ownWrites = new OwnWrites();
  /** The child caches' shared strings: this Manager's, not the process's. */
  private readonly names = new Interner();
  /** Status writes to kiln's resources, and what was written until the caches see it. */
  readonly status: StatusWriter;

  /** Dynamic sharding: this member's campaign for the assigner's role. */
  readonly sharder: SharderRole | undefined;

  constructor(private readonly opts: ManagerOptions) {
    const ring = opts.sharding;
    if (ring && opts.sink === 'git') throw new Error('dynamic sharding is for apply mode: git mode has one writer per branch (shard it with --watch-label-selector, one directory per shard)');
    if (ring && opts.leaderElection) throw new Error('dynamic sharding replaces leader election: every replica works (give one, not both)');
    const identity = replicaIdentity(hostname());
    this.host = new Host({
      identity,
      userAgent: `kiln-controller/${opts.version} (${identity})`,
      kc: opts.kc,
      qps: opts.qps,
      burst: opts.burst,
      requestTimeoutMs: opts.timeouts?.requestMs,
      startupTimeoutSeconds: opts.startupTimeoutSeconds,
      // A member holds a Lease of its own; losing it (no renewal within the deadline) stops it as losing leadership does.
      leaderElection: ring ? memberLease(ring, identity) : opts.leaderElection,
      onLostLeadership: opts.onLostLeadership,
      log: opts.log,
    });
    this.client = this.host.client;
    this.identity = this.host.identity;
    this.status = new StatusWriter(this.client, FIELD_MANAGER, { fit: fitStatus });
    const watchdogSeconds = opts.timeouts?.watchSilentSeconds;
    const namespaces = opts.namespaces.length > 0 ? opts.namespaces : [undefined];
    // Checked here too (the command checks first): a wrong selector fails at construction, naming itself.
    const shardKeys = [...(opts.watchLabelSelector ? selectorKeys(opts.watchLabelSelector) : []), ...(ring ? [SHARD_LABELS.shard] : [])];
    const shard = andSelectors(opts.watchLabelSelector, ring ? `${SHARD_LABELS.shard}=${identity}` : undefined);
    const childSelector = andSelectors(MANAGED_BY_KILN, shard)!;
    for (const k of RECONCILED_KINDS) {
      for (const ns of namespaces) {
        const inf = this.host.informer({ ...k, namespace: ns, labelSelector: shard, resyncSeconds: opts.resyncSeconds, watchdogSeconds, log: opts.log, codec: CACHE_CODEC, transform: slimResource });
        inf.on((event, obj, old) => this.onResource(event, obj, old));
        this.shared(this.resources, k.kind, inf);
      }
    }
    if (opts.sink === 'git' && !opts.git) throw new Error('git mode needs the repository options (git)');
    // Git mode applies nothing, so it watches none of the objects kiln renders.
    for (const k of opts.sink === 'git' ? [] : CHILD_KINDS) {
      // Only the watched namespaces, even for a kind some kind writes elsewhere: with -n the controller
      // makes no request outside them, so Roles there are all it needs (a namespace-scoped install).
      for (const ns of namespaces) {
        const inf = this.host.informer({
          ...k,
          namespace: ns,
          labelSelector: childSelector,
          resyncSeconds: 0,
          watchdogSeconds,
          log: opts.log,
          transform: (o) => projectChild(o, this.ownWrites, this.names),
          codec: childCodec,
          indexLabel: PART_OF,
          pageSize: LIST_PAGE_SIZE,
        });
        inf.on((event, obj) => this.onChild(event, obj));
        this.shared(this.children, `${k.apiVersion}/${k.kind}`, inf);
        this.shared(this.foreign, `${k.apiVersion}/${k.kind}`, this.host.informer(foreignNames({ ...k, namespace: ns, watchdogSeconds, log: opts.log })));
      }
    }
    // Pods of the kinds whose status lists them (names, labels, annotations: metadata only on the wire).
    if (opts.sink !== 'git' && POD_APPS.size > 0) {
      for (const ns of namespaces) {
        const inf = this.host.informer({
          apiVersion: 'v1',
          kind: 'Pod',
          namespace: ns,
          labelSelector: `${MANAGED_BY_KILN},${APP_LABEL} in (${[...POD_APPS.keys()].sort().join(',')})`,
          metadataOnly: true,
          resyncSeconds: 0,
          watchdogSeconds,
          log: opts.log,
          transform: podMetadata,
          pageSize: LIST_PAGE_SIZE,
        });
        inf.on((event, obj, old) => this.onPod(event, obj, old));
        this.shared(this.podCaches, 'Pod', inf);
      }
    }
    if (opts.sink !== 'git' && opts.namespaces.length > 0 && WRITTEN_ACROSS_NAMESPACES.size > 0) {
      opts.log('info', 'watching only the given namespaces: objects written outside them are not watched, so a change there is repaired at the next resync', {
        namespaces: opts.namespaces,
        kinds: [...WRITTEN_ACROSS_NAMESPACES].sort(),
        resyncSeconds: opts.resyncSeconds,
      });
    }
    // Git mode: an object that waits for another's condition (a restore's VolumeSnapshot, its Job) is
    // committed once the other, applied by Flux, reaches it in the cluster: those kinds are watched,
    // kiln's only, and only their conditions kept.
    for (const k of opts.sink === 'git' ? childKindsWaitedFor() : []) {
      for (const ns of namespaces) {
        const inf = this.host.informer({ ...k, namespace: ns, labelSelector: childSelector, resyncSeconds: 0, watchdogSeconds, log: opts.log, transform: conditionsOnly, pageSize: LIST_PAGE_SIZE });
        inf.on((_event, obj) => {
          if (this.reconciler instanceof GitReconciler) this.reconciler.waitedChanged(obj);
        });
        this.shared(this.waited, `${k.apiVersion}/${k.kind}`, inf);
      }
    }
    const events = new EventRecorder(this.client.withOwnRateLimit(), 'kiln-controller', this.identity, opts.log);
    // --flux: after a push to the branch Flux reads, ask it to fetch; its verdict feeds each resource's Ready.
    const fluxRef = opts.sink === 'git' ? opts.git?.flux : undefined;
    const flux = fluxRef ? new FluxFollower(this.client, fluxRef, opts.log, () => this.requeueAll()) : undefined;
    const onPushed = flux && !opts.git!.reviewBranch ? async () => flux.requestFetch() : undefined;
    this.git =
      opts.sink === 'git'
        ? new GitSink({ ...opts.git!, shard: opts.git!.shard ?? (shard ? shardDirectorySuffix(shard) : undefined), onPushed: chainPushed(opts.git!.onPushed, onPushed) }, opts.log)
        : undefined;
    this.reconciler = this.git
      ? new GitReconciler({
          client: this.client,
          resources: this.resources,
          sink: this.git,
          events,
          requeue: (key, afterMs) => (afterMs ? this.queue.addAfter(key, afterMs) : this.queue.add(key)),
          log: opts.log,
          render: opts.git!.render,
          failureBackoffMs: opts.git!.failureBackoffMs,
          status: this.status,
          flux,
          waited: this.waited,
          copyLabels: shardKeys,
        })
      : new Reconciler({
          client: this.client,
          resources: this.resources,
          children: this.children,
          foreign: this.foreign,
          pods: this.podCaches.get('Pod'),
          events,
          custom: { kc: opts.kc, fieldManager: FIELD_MANAGER, log: opts.log, requeue: (key) => this.queue.add(key), copyLabels: shardKeys },
          ownWrites: this.ownWrites,
          status: this.status,
          copyLabels: shardKeys,
          sharded: shard !== undefined,
          version: opts.version,
          log: opts.log,
        });
    // Every line logged during a reconcile carries its kind, namespace, name and a reconcileID.
    this.queue = new WorkQueue(
      (key) =>
        withLogFields(reconcileFields(key), async () => {
          const started = performance.now();
          // Asked to let go (dynamic sharding): this worker is the key's only one, so nothing of this
          // replica touches it once the acknowledgement is written.
          if (ring && (await this.drained(key))) return undefined;
          const r = await this.reconciler.reconcile(key);
          this.reconciles++;
          if (r.applied || r.pruned || r.statusWritten) {
            opts.log('info', 'reconciled', { key, applied: r.applied, pruned: r.pruned, statusWritten: r.statusWritten, ms: Math.round(performance.now() - started) });
          }
          return r.requeueAfterMs === undefined ? undefined : { requeueAfterMs: r.requeueAfterMs };
        }),
      { concurrency: opts.concurrency },
    );
    this.queue.onError = (key, err, retryInMs) => opts.log('warn', 'reconcile failed', { ...logFieldsOf(err), key, error: err instanceof Error ? err.message : String(err), retryInMs });
    this.queue.onTerminal = (key, err) =>
      opts.log('error', 'reconcile failed; not retried until the resource changes', { ...logFieldsOf(err), key, error: err instanceof Error ? err.message : String(err) });
    const git = this.git;
    this.sharder = ring
      ? new SharderRole(opts.kc, ring, identity, {
          kinds: RECONCILED_KINDS,
          namespaces,
          placement: (o, lookup) => shardKeyOf(o as never, (kind, name) => lookup(kind, o.metadata.namespace, name)),
          placementReadsSpec: SHARD_KEY_READS_SPEC,
          log: opts.log,
        })
      : undefined;
    this.lifecycle = {
      // Git mode: the clone is synced, and what the repository holds for deleted resources found, before the first reconcile.
      leading: git
        ? async () => {
            const present = [...this.resources.values()].flatMap((i) => i.list()).map((o) => ({ kind: o.kind!, namespace: o.metadata.namespace!, name: o.metadata.name }));
            await git.start(present, opts.namespaces);
            opts.log('info', 'git mode: clone synced', git.describe());
            flux?.start();
          }
        : // A member that works may also assign: it campaigns for the ring's sharder Lease.
          () => this.sharder?.start(),
      lost: () => {
        // A member that could not renew fences itself: its writes in flight end with their connections,
        // before its Lease expires and its resources go to others.
        if (ring) void this.client.close();
        void this.sharder?.stop(false);
        flux?.stop();
        git?.abandon();
        this.stopCustom();
      },
      // Pending changes are pushed while this replica still leads; a replica that lost the lease leaves them.
      stopping: async (release) => {
        await this.sharder?.stop(release);
        flux?.stop();
        this.stopCustom();
        if (!git) return;
        if (release) await git.close().catch((err: unknown) => opts.log('error', 'git mode: final flush failed', { error: git.scrub(err) }));
        else git.abandon();
      },
    };
  }

  /** Acknowledges a drain of `key`'s resource, if one is asked; true when it was (nothing more to do). */
  private async drained(key: string): Promise<boolean> {
    const [kind, namespace, name] = key.split('/') as [string, string, string];
    const live = this.resources.get(kind)?.get(namespace, name);
    const drain = live?.metadata.labels?.[SHARD_LABELS.drain];
    if (!live || drain === undefined) return false;
    const acknowledged = await acknowledgeDrain(this.client, { path: pathFor({ apiVersion: live.apiVersion!, kind, namespace, name }) }, SHARD_LABELS, this.identity, drain);
    this.opts.log('info', acknowledged ? 'shard: released' : 'shard: release not needed (moved or withdrawn)', { key });
    return true;
  }

  /** Custom reconcilers' own watches (ConfigMapSync's) end with leadership or the process. */
  private stopCustom(): void {
    if (this.reconciler instanceof Reconciler) this.reconciler.stopCustom();
  }

  /** Every resource again (what Flux says about them changed). */
  private requeueAll(): void {
    for (const inf of this.resources.values()) for (const o of inf.list()) this.queue.add(`${o.kind}/${o.metadata.namespace}/${o.metadata.name}`);
  }

  /** One informer per namespace: a lookup by kind goes to the right one. */
  private shared(map: Map<string, Informer>, key: string, inf: Informer): void {
    const existing = map.get(key);
    if (!existing) {
      map.set(key, inf);
      return;
    }
    const group = existing instanceof MultiInformer ? existing : new MultiInformer([existing]);
    group.add(inf);
    map.set(key, group as unknown as Informer);
  }

  private onResource(event: string, obj: KubeObject, old?: KubeObject): void {
    // Apply mode: an update of a rendered kind that changed neither spec (generation) nor metadata kiln
    // reads is a status write (most often kiln's own): nothing to render (controller-runtime's
    // GenerationChangedPredicate). A custom reconciler sees every update.
    if (event === 'updated' && old && this.opts.sink !== 'git' && carriedOutBy(obj.kind!).by === 'render' && !inputsChanged(old, obj)) return;
    this.queue.add(`${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`);
    // Kinds whose render reads this one's resources in the namespace render again (those it does not
    // concern find their inputs unchanged and stop there).
    for (const reader of readersOf(obj.kind!)) {
      for (const r of this.resources.get(reader)?.list(obj.metadata.namespace) ?? []) this.queue.add(`${reader}/${r.metadata.namespace}/${r.metadata.name}`);
    }
  }

  /** A pod came, went or changed its labels or annotations: its resource's status may list it. */
  private onPod(event: string, obj: KubeObject, old?: KubeObject): void {
    if (event === 'updated' && old && sameLabelsAndAnnotations(old, obj) && !old.metadata.deletionTimestamp === !obj.metadata.deletionTimestamp) return;
    const labels = obj.metadata.labels ?? {};
    const kind = POD_APPS.get(labels[APP_LABEL] ?? '');
    const instance = labels[INSTANCE_LABEL];
    if (kind && instance) this.queue.add(`${kind}/${obj.metadata.namespace}/${instance}`);
  }

  private onChild(event: string, obj: KubeObject): void {
    if (event === 'deleted') this.ownWrites.forget(obj);
    const owner = controllerOf(obj, GROUP);
    if (owner) {
      this.queue.add(`${owner.kind}/${obj.metadata.namespace}/${owner.name}`);
      return;
    }
    const labels = obj.metadata.labels ?? {};
    if (labels[OWNER_KIND_LABEL] && labels[OWNER_NAME_LABEL] && labels[OWNER_NAMESPACE_LABEL]) {
      this.queue.add(`${labels[OWNER_KIND_LABEL]}/${labels[OWNER_NAMESPACE_LABEL]}/${labels[OWNER_NAME_LABEL]}`);
    }
  }

  /** Whether the reconciler keeps anything for `key` (Kind/namespace/name). */
  remembers(key: string): boolean {
    return this.reconciler instanceof Reconciler && this.reconciler.remembers(key);
  }

  isLeader(): boolean {
    return this.host.isLeader();
  }

  hasSynced(): boolean {
    return this.host.hasSynced();
  }

  /**
   * Waits for the API server (startupTimeoutSeconds), fills the caches, then (once leading) starts
   * the workers. Resolves when workers run; rejects with StartupTimeoutError, or LeaseUnavailableError
   * when the Lease's namespace is missing or the Lease forbidden.
   */
  async start(): Promise<void> {
    await this.host.start(this.queue, this.lifecycle);
  }

  /** Stops everything; `release: false` leaves the Lease to expire, as a crashed replica would. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    await this.host.stop(this.queue, this.lifecycle, opts);
  }
}

/** What the pod cache keeps: names, labels, annotations and whether it is going. */
function podMetadata(obj: KubeObject): KubeObject {
  const { name, namespace, resourceVersion, labels, annotations, deletionTimestamp } = obj.metadata;
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, resourceVersion, labels, annotations, deletionTimestamp } };
}

const sameLabelsAndAnnotations = (a: KubeObject, b: KubeObject) =>
  JSON.stringify([a.metadata.labels ?? {}, a.metadata.annotations ?? {}]) === JSON.stringify([b.metadata.labels ?? {}, b.metadata.annotations ?? {}]);

/** What the cache keeps of a kiln resource: all but its managedFields (who wrote what; kiln reads none of it). */
function slimResource(obj: KubeObject): KubeObject {
  const s = slim(obj);
  const { managedFields: _m, ...metadata } = s.metadata;
  return { ...s, metadata };
}

/**
 * The names every other object of a child kind holds: with kiln's own (the label-filtered
 * caches), a name in neither cache is free, so creating a new resource's members needs no
 * GET per member to prove that nothing foreign is there (bench/apply, 1,000 DirectoryServices:
 * 4,000 GETs answered 404 were a third of kiln's requests). Metadata only and names only: what
 * crosses the wire is a Secret's or ConfigMap's metadata, never its data, and the cache keeps a
 * name, a namespace and a resourceVersion per object.
 */
function foreignNames(opts: { apiVersion: string; kind: string; namespace?: string; watchdogSeconds?: number; log: Log }): InformerOptions {
  return {
    ...opts,
    labelSelector: NOT_MANAGED_BY_KILN,
    metadataOnly: true,
    resyncSeconds: 0,
    pageSize: LIST_PAGE_SIZE,
    transform: (o) => ({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, namespace: o.metadata.namespace, resourceVersion: o.metadata.resourceVersion } }),
  };
}
