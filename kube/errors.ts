/**
 * The errors a controller tells apart, as controller-runtime and client-go
 * do: what the API server answered (ApiError, with the predicates callers ask
 * instead of reading `.status` themselves), a request that got no answer, and
 * an error that retrying will not fix (TerminalError: the queue records it
 * and does not requeue, like controller-runtime's reconcile.TerminalError).
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
    /** The server's own message (metav1.Status.message), when it sent one. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** Set on a 401 when the client's credentials renew (exec plugin, oidc, token file): retrying is worth it. */
  renewableCredentials?: boolean;
}

/** No complete answer within the client's request timeout; the connection was closed. Worth retrying. */
export class RequestTimeoutError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly timeoutMs: number,
  ) {
    super(`${method} ${path}: no answer within ${timeoutMs / 1000} s (request timeout; connection closed)`);
    this.name = 'RequestTimeoutError';
  }
}

/** The API server's status code for `e`, or undefined when `e` is not its answer. */
export const statusOf = (e: unknown): number | undefined => (e instanceof ApiError ? e.status : undefined);

export const isNotFound = (e: unknown) => statusOf(e) === 404;
export const isConflict = (e: unknown) => statusOf(e) === 409;
export const isGone = (e: unknown) => statusOf(e) === 410;
export const isForbidden = (e: unknown) => statusOf(e) === 403 || statusOf(e) === 401;
/**
 * Errors that retrying will not fix: the request itself is wrong. A 401 is one
 * only for a fixed credential: one that renews (exec plugin, oidc, token file)
 * has been re-obtained after the 401, so the retry may well succeed.
 */
export const isPermanent = (e: unknown) => e instanceof ApiError && [400, 403, 401, 404, 405, 409, 413, 415, 422].includes(e.status) && !(e.status === 401 && e.renewableCredentials);

/**
 * A reconcile failed in a way only a change of its inputs can fix: the queue
 * does not retry it (a change of the object queues it again anyway).
 */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

export const isTerminal = (e: unknown): e is TerminalError => e instanceof TerminalError;
