/**
 * Dynamic sharding's assigner, after timebertt/kubernetes-controller-sharding
 * (KubeCon EU 2025): the replicas of a controller form a ring, each holding a
 * membership Lease labelled with the ring's name; the live members form a
 * consistent-hash ring (./ring.ts); every object the controller reconciles is
 * labelled with the member that owns it, and each member watches only its own
 * label, so its caches hold only its share.
 *
 * One replica at a time assigns (the holder of the ring's sharder Lease); it
 * alone writes the shard label, except the acknowledgement below. Moves follow
 * a drain handshake so that no object is ever reconciled by two members:
 *
 * - unassigned (new, or released by a drain): labelled with the ring's owner;
 * - its owner is not a live member (its Lease expired or was released: the
 *   member stopped writing before that, see below): relabelled at once;
 * - its owner lives but the ring names another member (one joined or left):
 *   the drain label is added, and nothing more. The owner sees it on its watch,
 *   finishes any reconcile of that object (its queue runs a key on one worker
 *   at a time), and acknowledges by removing both labels in one patch whose
 *   tests require it still to be the owner. The object is then unassigned
 *   and, next pass, assigned to the new owner;
 * - a member that cannot renew its Lease within the renew deadline stops its
 *   workers (the Lease's holder fences itself, as a leader does), which is
 *   shorter than the lease duration after which the assigner counts it gone.
 *
 * Liveness is judged as client-go's leader election judges a Lease: by when
 * this replica last saw the Lease's renewTime change, on its own monotonic
 * clock, plus the Lease's duration; the members' clocks are never compared
 * with this one. A Lease first seen counts as just renewed, so a new assigner
 * waits a full duration before it declares a silent member gone.
 *
 * Every write is a JSON patch whose tests pin what the decision read (the
 * current owner, the drain label, or the resourceVersion of an unassigned
 * object): a decision made on a stale cache fails instead of overwriting.
 */
import { ApiError, isNotFound } from '../errors.js';
import type { KubeClient } from '../client.js';
import { Informer, type KubeObject } from '../informer.js';
import { pathFor } from '../resources.js';
import { HashRing } from './ring.js';

type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface ShardLabels {
  /** On each object: the member that owns it. */
  shard: string;
  /** On each object being moved: its owner is asked to let go. */
  drain: string;
  /** On each membership Lease: the ring's name. */
  ring: string;
}

/** Looks up another object the assigner watches (for a placement that follows another object). */
export type Lookup = (kind: string, namespace: string | undefined, name: string) => KubeObject | undefined;

export interface SharderOptions {
  client: KubeClient;
  /** The ring's name: the membership Leases carry it in `labels.ring`. */
  ring: string;
  /** Where the membership Leases live. */
  leaseNamespace: string;
  labels: ShardLabels;
  /** The kinds whose objects are assigned. */
  kinds: { apiVersion: string; kind: string }[];
  /** Namespaces watched; undefined: all. */
  namespaces: (string | undefined)[];
  /**
   * The ring key of an object: objects whose reconciles read each other get one key, so one member
   * holds them all. Default: Kind/namespace/name.
   */
  placement?: (obj: KubeObject, lookup: Lookup) => string;
  /** Kinds whose spec the placement reads (their cache keeps it); others keep metadata only. */
  placementReadsSpec?: ReadonlySet<string>;
  /** Label patches in flight at once (default 16). */
  concurrency?: number;
  /** How often liveness is looked at without an event (ms; default 1000). */
  tickMs?: number;
  log: Log;
}

interface Member {
  name: string;
  resourceVersion?: string;
  holder: string;
  renewTime: string;
  durationMs: number;
  /** performance.now() when this replica last saw renewTime or the holder change. */
  observedAt: number;
}

export interface SharderStats {
  members: string[];
  objects: number;
  unassigned: number;
  draining: number;
  /** Label patches written (assign, drain, reassign), since start. */
  writes: number;
}

/** A member Lease silent this long (and ten lease durations) is deleted. */
const GONE_AFTER_MS = 10 * 60_000;

const escapePointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

export class Sharder {
  private readonly objects = new Map<string, Informer>();
  private leases: Informer | undefined;
  private readonly members = new Map<string, Member>();
  private ring = new HashRing([]);
  private readonly owners = new Map<string, string>();
  private readonly inFlight = new Set<string>();
  private readonly pending: (() => Promise<void>)[] = [];
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private scheduled: NodeJS.Timeout | undefined;
  private stopped = true;
  private writes = 0;

  constructor(private readonly opts: SharderOptions) {}

  async start(): Promise<void> {
    this.stopped = false;
    const { labels, log } = this.opts;
    const keep = (o: KubeObject): KubeObject => {
      const l = o.metadata.labels ?? {};
      const kept: Record<string, string> = {};
      for (const k of [labels.shard, labels.drain]) if (l[k] !== undefined) kept[k] = l[k];
      const spec = this.opts.placementReadsSpec?.has(o.kind ?? '') ? { spec: o['spec'] } : {};
      return { apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, namespace: o.metadata.namespace, resourceVersion: o.metadata.resourceVersion, labels: kept }, ...spec };
    };
    for (const k of this.opts.kinds) {
      for (const ns of this.opts.namespaces) {
        const metadataOnly = !this.opts.placementReadsSpec?.has(k.kind);
        const inf = new Informer(this.opts.client, { ...k, namespace: ns, resyncSeconds: 0, log, metadataOnly, transform: keep, pageSize: 500 });
        inf.on(() => this.schedule());
        this.objects.set(`${k.kind}/${ns ?? ''}`, inf);
      }
    }
    this.leases = new Informer(this.opts.client, {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      namespace: this.opts.leaseNamespace,
      labelSelector: `${labels.ring}=${this.opts.ring}`,
      resyncSeconds: 0,
      log,
    });
    this.leases.on((event, obj) => {
      this.observeLease(event, obj);
      this.schedule();
    });
    await Promise.all([this.leases.start(), ...[...this.objects.values()].map((i) => i.start())]);
    if (this.stopped) return;
    this.timer = setInterval(() => this.pass(), this.opts.tickMs ?? 1000);
    this.timer.unref();
    log('info', 'sharder: assigning', { ring: this.opts.ring });
    this.pass();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.scheduled);
    this.scheduled = undefined;
    this.pending.length = 0;
    for (const i of this.objects.values()) i.stop();
    this.objects.clear();
    this.leases?.stop();
    this.leases = undefined;
    this.members.clear();
  }

  /** The live members now, sorted. */
  liveMembers(): string[] {
    const now = performance.now();
    return [...this.members.values()]
      .filter((m) => m.holder !== '' && now - m.observedAt < m.durationMs)
      .map((m) => m.holder)
      .sort();
  }

  stats(): SharderStats {
    let objects = 0;
    let unassigned = 0;
    let draining = 0;
    for (const inf of this.objects.values()) {
      for (const o of inf.list()) {
        objects++;
        if (o.metadata.labels?.[this.opts.labels.shard] === undefined) unassigned++;
        if (o.metadata.labels?.[this.opts.labels.drain] !== undefined) draining++;
      }
    }
    return { members: this.liveMembers(), objects, unassigned, draining, writes: this.writes };
  }

  private observeLease(event: string, lease: KubeObject): void {
    const name = lease.metadata.name;
    if (event === 'deleted') {
      this.members.delete(name);
      return;
    }
    const spec = (lease['spec'] ?? {}) as { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
    const holder = spec.holderIdentity ?? '';
    const renewTime = spec.renewTime ?? '';
    const had = this.members.get(name);
    if (had && had.holder === holder && had.renewTime === renewTime) {
      had.resourceVersion = lease.metadata.resourceVersion;
      return;
    }
    this.members.set(name, { name, resourceVersion: lease.metadata.resourceVersion, holder, renewTime, durationMs: (spec.leaseDurationSeconds ?? 15) * 1000, observedAt: performance.now() });
  }

  private schedule(): void {
    if (this.stopped || this.scheduled) return;
    // Events come in bursts (a list, a member's many objects): one pass after the burst.
    this.scheduled = setTimeout(() => {
      this.scheduled = undefined;
      this.pass();
    }, 50);
  }

  private lookup: Lookup = (kind, namespace, name) => {
    for (const ns of this.opts.namespaces) {
      const o = this.objects.get(`${kind}/${ns ?? ''}`)?.get(namespace, name);
      if (o) return o;
    }
    return undefined;
  };

  private placementOf(o: KubeObject): string {
    return this.opts.placement ? this.opts.placement(o, this.lookup) : `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  }

  /**
   * A replica that restarts joins under a new identity: the Lease of the one before stays behind.
   * Those silent for long (GONE_AFTER_MS, and ten lease durations) are deleted, pinned to the version
   * seen, so a member that came back meanwhile keeps its Lease.
   */
  private collectGone(now: number): void {
    for (const m of this.members.values()) {
      if (now - m.observedAt < Math.max(GONE_AFTER_MS, 10 * m.durationMs) || this.inFlight.has(`Lease/${m.name}`)) continue;
      this.inFlight.add(`Lease/${m.name}`);
      const ref = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: this.opts.leaseNamespace, name: m.name };
      this.pending.push(async () => {
        try {
          await this.opts.client.request('DELETE', pathFor(ref), { body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { resourceVersion: m.resourceVersion } } });
          this.opts.log('info', 'sharder: removed the Lease of a member gone', { lease: m.name, holder: m.holder });
        } catch (err) {
          this.failed(`Lease/${m.name}`, 'collect', err);
        } finally {
          this.inFlight.delete(`Lease/${m.name}`);
        }
      });
      this.pump();
    }
  }

  /** One look at every object: what each needs (assign, drain, reassign), written with bounded concurrency. */
  private pass(): void {
    if (this.stopped) return;
    this.collectGone(performance.now());
    const live = this.liveMembers();
    if (live.join(',') !== this.ring.members.join(',')) {
      this.ring = new HashRing(live);
      this.owners.clear();
      this.opts.log('info', 'sharder: members changed', { ring: this.opts.ring, members: live });
    }
    if (live.length === 0) return;
    const alive = new Set(live);
    const { shard, drain } = this.opts.labels;
    for (const inf of this.objects.values()) {
      for (const o of inf.list()) {
        const id = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
        if (this.inFlight.has(id)) continue;
        const placement = this.placementOf(o);
        let want = this.owners.get(placement);
        if (want === undefined) {
          want = this.ring.owner(placement)!;
          this.owners.set(placement, want);
        }
        const current = o.metadata.labels?.[shard];
        const draining = o.metadata.labels?.[drain] !== undefined;
        // A merge patch carrying the resourceVersion read: refused (409) if the object changed since,
        // and it creates the labels map when the object has none.
        if (current === undefined) this.write(id, o, 'assign', { merge: { metadata: { resourceVersion: o.metadata.resourceVersion, labels: { [shard]: want } } } });
        else if (!alive.has(current))
          this.write(id, o, 'reassign', [
            { op: 'test', path: this.labelPath(shard), value: current },
            { op: 'replace', path: this.labelPath(shard), value: want },
            ...(draining ? [{ op: 'remove', path: this.labelPath(drain) }] : []),
          ]);
        else if (current !== want && !draining)
          this.write(id, o, 'drain', [
            { op: 'test', path: this.labelPath(shard), value: current },
            { op: 'add', path: this.labelPath(drain), value: 'true' },
          ]);
        else if (current === want && draining)
          // The ring changed back before the owner let go: it keeps the object.
          this.write(id, o, 'undrain', [
            { op: 'test', path: this.labelPath(shard), value: current },
            { op: 'test', path: this.labelPath(drain), value: o.metadata.labels![drain] },
            { op: 'remove', path: this.labelPath(drain) },
          ]);
      }
    }
  }

  private labelPath(key: string): string {
    return `/metadata/labels/${escapePointer(key)}`;
  }

  private write(id: string, o: KubeObject, action: string, ops: object[] | { merge: object }): void {
    this.inFlight.add(id);
    this.pending.push(async () => {
      const ref = { apiVersion: o.apiVersion!, kind: o.kind!, namespace: o.metadata.namespace, name: o.metadata.name };
      try {
        if (Array.isArray(ops)) await this.opts.client.request('PATCH', pathFor(ref), { body: ops, contentType: 'application/json-patch+json' });
        else await this.opts.client.mergePatch(ref, ops.merge);
        this.writes++;
      } catch (err) {
        this.failed(id, action, err);
      } finally {
        this.inFlight.delete(id);
      }
    });
    this.pump();
  }

  private failed(id: string, action: string, err: unknown): void {
    // A failed test (the object changed since the cache saw it) or a deleted object: the next pass decides again.
    if (isNotFound(err) || (err instanceof ApiError && (err.status === 409 || err.status === 422))) return;
    this.opts.log('warn', 'sharder: label write failed', { object: id, action, error: (err as Error).message });
  }

  private pump(): void {
    const max = this.opts.concurrency ?? 16;
    while (this.running < max && this.pending.length > 0) {
      const next = this.pending.shift()!;
      this.running++;
      void next().finally(() => {
        this.running--;
        this.pump();
      });
    }
  }
}
