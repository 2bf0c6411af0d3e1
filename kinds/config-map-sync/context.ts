/**
 * What one ConfigMapSync reconcile carries from step to step, and how it turns
 * an error into a message: the API server's own words, never a token.
 */
import { ApiError, type KubeClient } from '../../kube/client.js';
import type { ServiceAccountTokens } from '../../kube/service-account-clients.js';
import type { KilnResource } from '../types.js';
import type { ConfigMapSyncResource } from './chart.js';
import type { ConfigMapSyncDeps, LogFn } from './reconcile.js';

/** Parallel requests per reconcile (targets are independent). */
export const CONCURRENCY = 8;

/** What the controller identity does: patch the ConfigMapSync itself (its finalizer). */
export interface ControllerCtx {
  resource: KilnResource;
  namespace: string;
  /** The controller's own identity. */
  controller: KubeClient;
  log: LogFn;
}

export interface Ctx extends ControllerCtx {
  deps: ConfigMapSyncDeps;
  cms: ConfigMapSyncResource;
  serviceAccount: string;
  /** Labels every copy carries, and the selector that finds them. */
  owner: Record<string, string>;
  ownerSelector: string;
  tokens: ServiceAccountTokens;
  /** The ServiceAccount token's identity: every read and write in a tenant namespace. */
  core: KubeClient;
  /** A 401 was seen: the token is dropped after this reconcile. */
  sawUnauthorized: boolean;
}

export const who = (r: KilnResource) => `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;

/** The API server's status code, or undefined when it did not answer. */
export const statusOf = (err: unknown): number | undefined => (err instanceof ApiError ? err.status : undefined);

/** The API's own message (metav1.Status.message) rather than the client's `METHOD path: code ...`. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiError) return err.detail || (err.status === 401 ? 'Unauthorized' : `HTTP ${err.status}`);
  return err instanceof Error ? err.message : String(err);
}

/** The error's message, with every credential removed; a 401 is remembered so the token is dropped. */
export function note(ctx: Ctx, err: unknown): string {
  if (statusOf(err) === 401) ctx.sawUnauthorized = true;
  return ctx.tokens.redact(apiMessage(err));
}
