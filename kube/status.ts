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
    type, status: status ? 'True' : 'False', reason, message, observedGeneration: generation,
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
      if (!(v as Condition[]).every((c) => sameCondition(c, liveConds.find((l) => l.type === c.type)))) return false;
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

/**
 * The status patch helper (Flux's, in small): `next` gets observedGeneration
 * and lastTransitionTimes carried over, and is server-side applied to the
 * status subresource only when the resource does not already say it.
 * Returns whether it wrote.
 */
export async function applyStatus(
  client: KubeApi,
  fieldManager: string,
  live: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; generation?: number }; status?: Status },
  next: Status,
  opts: {
    onResponse?: (written: { metadata?: { resourceVersion?: string; generation?: number } }) => void;
    /** Cuts the status to the resource's schema bounds (the CRD's maxLength/maxItems); default: as it is. */
    fit?: (kind: string, status: Status) => Status;
  } = {},
): Promise<boolean> {
  // Cut to the CRD's bounds first: an over-long message would make the server refuse the whole
  // write (and the queue retry it forever), and the comparison must see what the server keeps.
  const fit = opts.fit ?? ((_kind: string, s: Status) => s);
  const status: Status = fit(live.kind, {
    ...next,
    observedGeneration: live.metadata.generation,
    conditions: withTransitionTimes(next.conditions ?? [], live.status?.conditions),
  });
  if (statusUpToDate(live.status, status)) return false;
  const written = await client.apply<{ metadata?: { resourceVersion?: string; generation?: number } }>(
    { apiVersion: live.apiVersion, kind: live.kind, metadata: { name: live.metadata.name, namespace: live.metadata.namespace }, status } as never,
    fieldManager,
    'status',
  );
  opts.onResponse?.(written);
  return true;
}
