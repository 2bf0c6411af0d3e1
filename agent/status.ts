/**
 * The agent's part of a resource's status, written with its own field manager
 * (`kiln-agent`) so server-side apply merges it with the controller's: the
 * conditions list is keyed by type, so the agent's PasswordsSynced and the
 * controller's Ready live side by side. Written only when it changed, by the
 * one status writer (kube/status.ts), one per Agent.
 */
import type { KubeApi } from '../kube/client.js';
import { StatusWriter, type Condition } from '../kube/status.js';

export const FIELD_MANAGER = 'kiln-agent';

export function condition(type: string, ok: boolean, reason: string, message: string, generation: number | undefined): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message: message.slice(0, 32_000), observedGeneration: generation };
}

/**
 * The agent's status writer. observedGeneration is left to the controller,
 * except for kinds whose whole status the agent owns (the caller says so per
 * write: PostgresDatabase).
 */
export const agentStatusWriter = (client: KubeApi): StatusWriter => new StatusWriter(client, FIELD_MANAGER, { ownsObservedGeneration: false });
