/**
 * The agent's part of a resource's status, written with its own field manager
 * (`kiln-agent`) so server-side apply merges it with the controller's: the
 * conditions list is keyed by type, so the agent's PasswordsSynced and the
 * controller's Ready live side by side. Written only when it changed.
 */
import type { KubeClient } from '../controller/client.js';
import type { KubeObject } from '../controller/informer.js';
import { statusUpToDate, withTransitionTimes, type Condition, type Status } from '../controller/status.js';

export const FIELD_MANAGER = 'kiln-agent';

export function condition(type: string, ok: boolean, reason: string, message: string, generation: number | undefined): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message: message.slice(0, 32_000), observedGeneration: generation };
}

/**
 * Applies `fields` (and `conditions`) to the status subresource unless the
 * live status already says it. `observedGeneration` is included only for
 * kinds whose whole status the agent owns.
 */
export async function applyAgentStatus(client: KubeClient, live: KubeObject, next: Status, opts: { ownsObservedGeneration?: boolean } = {}): Promise<boolean> {
  const liveStatus = live.status as Status | undefined;
  const status: Status = {
    ...next,
    ...(opts.ownsObservedGeneration ? { observedGeneration: live.metadata.generation } : {}),
    conditions: withTransitionTimes(next.conditions ?? [], liveStatus?.conditions),
  };
  if (statusUpToDate(liveStatus, status)) return false;
  await client.apply({ apiVersion: live.apiVersion!, kind: live.kind!, metadata: { name: live.metadata.name, namespace: live.metadata.namespace }, status } as never, FIELD_MANAGER, 'status');
  return true;
}
