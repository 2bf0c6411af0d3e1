/**
 * Start-up: before the informers list anything, the API server has to answer
 * at all. Until it does, `waitForApiServer` retries quietly (no log line per
 * attempt, let alone one per informer per backoff round) and, once
 * `--startup-timeout` has passed, fails with one StartupTimeoutError that says
 * which server could not be reached and why; kiln's commands print it and exit 2.
 *
 * Any HTTP answer counts as reached, except 429 and 5xx (a server still
 * starting, or a proxy whose backend is down): a 401 or 403 is a problem of
 * credentials or rights that the informers then report as they always have.
 * Once started, an outage is not this module's business: informers and work
 * queue retry with backoff as before.
 */
import { ApiError, type KubeClient } from './client.js';

export class StartupTimeoutError extends Error {
  constructor(
    readonly server: string,
    readonly timeoutSeconds: number,
    /** What the last attempt failed with. */
    readonly lastError: string,
  ) {
    super(`cannot reach the API server at ${server} within ${timeoutSeconds} s: ${lastError}`);
    this.name = 'StartupTimeoutError';
  }
}

/** One attempt's longest wait, so a server that accepts but never answers cannot take the whole budget in one go. */
const ATTEMPT_TIMEOUT_MS = 5_000;

/**
 * Resolves once the API server answers `GET /version` (every account may read it, as
 * system:public-info-viewer grants); rejects with StartupTimeoutError after `timeoutSeconds`.
 */
export async function waitForApiServer(client: KubeClient, timeoutSeconds: number): Promise<void> {
  const deadline = performance.now() + timeoutSeconds * 1000;
  let delay = 200;
  /** Why the last attempt failed; an attempt cut short by the deadline does not hide a refusal seen before it. */
  let last = '';
  for (;;) {
    const remaining = deadline - performance.now();
    if (remaining < 10) throw new StartupTimeoutError(client.server, timeoutSeconds, last || 'no answer');
    try {
      await client.request('GET', '/version', { signal: AbortSignal.timeout(Math.ceil(Math.min(remaining, ATTEMPT_TIMEOUT_MS))) });
      return;
    } catch (err) {
      if (err instanceof ApiError && err.status !== 429 && err.status < 500) return;
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      if (!timedOut || !last || deadline - performance.now() > 10) last = describe(err);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(delay, deadline - performance.now()))));
    delay = Math.min(delay * 2, 2_000);
  }
}

function describe(err: unknown): string {
  if (err instanceof ApiError) return `HTTP ${err.status} ${err.detail ?? err.reason}`;
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'no answer (timed out)';
    const code = (err as NodeJS.ErrnoException).code;
    // AggregateError (every address of a name refused) carries the reasons in `errors`.
    const inner = (err as { errors?: Error[] }).errors?.[0];
    return err.message || inner?.message || code || err.name;
  }
  return String(err);
}
