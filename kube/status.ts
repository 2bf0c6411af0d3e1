/**
 * kstatus conditions and the status patch helper: status is computed from
 * scratch on every reconcile and written only when it differs from what the
 * resource already says (a condition's lastTransitionTime moves only when its
 * status does).
 */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

export type Status = Record<string, unknown> & { observedGeneration?: number; conditions?: Condition[] };

import type { KubeApi } from './client.js';

export const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export function readyConditions(
  outcome: { kind: 'ready'; reason: string; message: string } | { kind: 'stalled'; reason: string; message: string } | { kind: 'reconciling'; reason: string; message: string },
  generation: number | undefined,
): Condition[] {
  const c = (type: string, status: boolean, reason: string, message: string): Condition => ({
    type,
    status: status ? 'True' : 'False',
    reason,
    message,
    observedGeneration: generation,
  });
  switch (outcome.kind) {
    case 'ready':
      return [c('Ready', true, outcome.reason, outcome.message), c('Reconciling', false, outcome.reason, ''), c('Stalled', false, outcome.reason, '')];
    case 'stalled':
      return [c('Ready', false, outcome.reason, outcome.message), c('Reconciling', false, outcome.reason, ''), c('Stalled', true, outcome.reason, outcome.message)];
    case 'reconciling':
      return [c('Ready', false, outcome.reason, outcome.message), c('Reconciling', true, outcome.reason, outcome.message), c('Stalled', false, outcome.reason, '')];
  }
}

/**
 * `Synced`: every rendered object applied and equal to the render (Crossplane's
 * and Flux's sense), whatever the members are doing. `Ready` adds "and running".
 */
export function syncedCondition(synced: boolean, reason: string, message: string, generation: number | undefined): Condition {
  return { type: 'Synced', status: synced ? 'True' : 'False', reason, message, observedGeneration: generation };
}

/** Carries lastTransitionTime over from the live conditions when the status did not flip. */
export function withTransitionTimes(next: Condition[], live: Condition[] | undefined): Condition[] {
  return next.map((c) => {
    const old = live?.find((l) => l.type === c.type);
    return { ...c, lastTransitionTime: old && old.status === c.status && old.lastTransitionTime ? old.lastTransitionTime : now() };
  });
}

function sameCondition(a: Condition, b: Condition | undefined): boolean {
  return !!b && a.status === b.status && a.reason === b.reason && a.message === b.message && a.observedGeneration === b.observedGeneration;
}

/** Does `live` already say everything `next` says? (Fields other managers own are ignored.) */
export function statusUpToDate(live: Status | undefined, next: Status): boolean {
  if (!live) return false;
  for (const [k, v] of Object.entries(next)) {
    if (k === 'conditions') {
      const liveConds = live.conditions ?? [];
      if (
        !(v as Condition[]).every((c) =>
          sameCondition(
            c,
            liveConds.find((l) => l.type === c.type),
          ),
        )
      )
        return false;
    } else if (!sameJson(live[k], v)) {
      return false;
    }
  }
  return true;
}

/** Deep equality of JSON values, whatever the key order. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => sameJson(x, (b as unknown[])[i]));
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** What a status write needs of the object: its identity, versions and current status. */
export interface StatusTarget {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; generation?: number };
  status?: unknown;
}

/** What write() did: whether it wrote, and the object's version and generation the server answered with. */
export interface StatusWrite {
  written: boolean;
  resourceVersion?: string;
  generation?: number;
}

export interface StatusWriterOptions {
  /** Cuts the status to the resource's schema bounds (the CRD's maxLength/maxItems); default: as it is. */
  fit?: (kind: string, status: Status) => Status;
  /** Whether this writer sets observedGeneration (it owns the whole status); default true. */
  ownsObservedGeneration?: boolean;
  /** Objects remembered at most; past it the memo starts afresh (a spare write each, nothing worse). */
  max?: number;
}

/**
 * The one status writer (Flux's patch helper, in small), one per manager or
 * agent and field manager: `next` gets observedGeneration and the
 * lastTransitionTimes carried over, and is server-side applied to the status
 * subresource only when the resource does not already say it.
 *
 * It also remembers, per object (kind, namespace, name and uid), what it last
 * wrote and over which resourceVersion. An informer cache still holding that version has not seen
 * the write yet (the watch event of our own write comes later): the written
 * status stands in for the cached one, so a second reconcile right after the
 * first does not write the same status again.
 */
export class StatusWriter {
  /** Per object: its last write, and the versions it was written over (the cache is behind while it holds one of them). */
  private readonly written = new Map<string, { uid: string | undefined; over: string[]; status: Status }>();
  private readonly max: number;

  constructor(
    private readonly client: KubeApi,
    readonly fieldManager: string,
    private readonly opts: StatusWriterOptions = {},
  ) {
    this.max = opts.max ?? 50_000;
  }

  /** Is the cached copy `live` older than this writer's last write to it (the watch has not brought that write yet)? */
  behind(live: StatusTarget): boolean {
    const mine = this.written.get(identity(live));
    return !!mine && mine.uid === live.metadata.uid && mine.over.includes(live.metadata.resourceVersion ?? '');
  }

  /** The status as this writer knows it: its own last write while the cache is behind it, else the cached one. */
  current(live: StatusTarget): Status | undefined {
    return this.behind(live) ? this.written.get(identity(live))!.status : (live.status as Status | undefined);
  }

  /**
   * `opts.supersedes`: versions of the object the caller wrote itself before this status (a metadata
   * patch) and that hold an older status: a cache that holds one of them is behind this write too.
   */
  async write(live: StatusTarget, next: Status, opts: { ownsObservedGeneration?: boolean; supersedes?: (string | undefined)[] } = {}): Promise<StatusWrite> {
    const liveStatus = this.current(live);
    const ownsGeneration = opts.ownsObservedGeneration ?? this.opts.ownsObservedGeneration ?? true;
    // Cut to the CRD's bounds first: an over-long message would make the server refuse the whole
    // write (and the queue retry it forever), and the comparison must see what the server keeps.
    const fit = this.opts.fit ?? ((_kind: string, st: Status) => st);
    const status: Status = fit(live.kind ?? '', {
      ...next,
      ...(ownsGeneration ? { observedGeneration: live.metadata.generation } : {}),
      conditions: withTransitionTimes(next.conditions ?? [], liveStatus?.conditions),
    });
    if (statusUpToDate(liveStatus, status)) return { written: false };
    const body = { apiVersion: live.apiVersion!, kind: live.kind!, metadata: { name: live.metadata.name, namespace: live.metadata.namespace }, status };
    const answer = await this.client.apply<{ metadata?: { resourceVersion?: string; generation?: number } }>(body, this.fieldManager, 'status');
    if (this.written.size >= this.max) this.written.clear();
    const over = [live.metadata.resourceVersion ?? '', ...(opts.supersedes ?? []).filter((v): v is string => !!v)];
    this.written.set(identity(live), { uid: live.metadata.uid, over, status: { ...liveStatus, ...status } });
    return { written: true, resourceVersion: answer.metadata?.resourceVersion, generation: answer.metadata?.generation };
  }

  /** Whether anything is remembered of the object (tests: nothing, once it is gone). */
  remembers(ref: { kind?: string; metadata: { namespace?: string; name: string } }): boolean {
    return this.written.has(identity(ref));
  }

  /** The object is gone: nothing to remember of it. */
  forget(ref: { kind?: string; metadata: { namespace?: string; name: string } }): void {
    this.written.delete(identity(ref));
  }

  /** Objects remembered (tests: none once they are gone). */
  get size(): number {
    return this.written.size;
  }
}

const identity = (o: { kind?: string; metadata: { namespace?: string; name: string } }) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
