/**
 * The agent's part of a resource's status, written with its own field manager
 * (`kiln-agent`) so server-side apply merges it with the controller's: the
 * conditions list is keyed by type, so the agent's PasswordsSynced and the
 * controller's Ready live side by side. Written only when it changed.
 */
import type { KubeApi } from '../kube/client.js';
import type { KubeObject } from '../kube/informer.js';
import { statusUpToDate, withTransitionTimes, type Condition, type Status } from '../kube/status.js';

export const FIELD_MANAGER = 'kiln-agent';

export function condition(type: string, ok: boolean, reason: string, message: string, generation: number | undefined): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message: message.slice(0, 32_000), observedGeneration: generation };
}

/**
 * Applies `fields` (and `conditions`) to the status subresource unless the
 * live status already says it. `observedGeneration` is included only for
 * kinds whose whole status the agent owns.
 */
/**
 * uid -> what the agent last wrote, and the resourceVersion it wrote over. An
 * informer cache still holding that resourceVersion has not seen the write
 * yet: the written status stands in for it, so a second reconcile right after
 * the first does not write the same status again.
 */
const lastWrite = new Map<string, { over: string; status: Status }>();

export async function applyAgentStatus(client: KubeApi, live: KubeObject, next: Status, opts: { ownsObservedGeneration?: boolean } = {}): Promise<boolean> {
  const uid = live.metadata.uid ?? '';
  const mine = lastWrite.get(uid);
  const liveStatus = mine && mine.over === live.metadata.resourceVersion ? mine.status : (live.status as Status | undefined);
  const status: Status = {
    ...next,
    ...(opts.ownsObservedGeneration ? { observedGeneration: live.metadata.generation } : {}),
    conditions: withTransitionTimes(next.conditions ?? [], liveStatus?.conditions),
  };
  if (statusUpToDate(liveStatus, status)) return false;
  await client.apply({ apiVersion: live.apiVersion!, kind: live.kind!, metadata: { name: live.metadata.name, namespace: live.metadata.namespace }, status } as never, FIELD_MANAGER, 'status');
  if (lastWrite.size > 50_000) lastWrite.clear();
  lastWrite.set(uid, { over: live.metadata.resourceVersion ?? '', status: { ...liveStatus, ...status } });
  return true;
}

/** Forgets what was written for a resource that is gone. */
export function forgetStatus(uid: string): void {
  lastWrite.delete(uid);
}
