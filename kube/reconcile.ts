/**
 * The one reconciler contract (controller-runtime's reconcile.Reconciler):
 * a key in, a Result out. The work queue (./queue.ts) drives it; a thrown
 * error is retried with backoff, a TerminalError (./errors.ts) is not, and
 * `requeueAfterMs` asks for another look even when nothing changes.
 */

export interface Result {
  /** Look again after this long (0: at once), whatever happens meanwhile. */
  requeueAfterMs?: number;
}

/** A namespaced object's name: what the agent's reconcilers take (controller-runtime's reconcile.Request). */
export interface NamespacedName {
  namespace: string;
  name: string;
}

export interface Reconciler<K = string, R extends Result = Result> {
  reconcile(key: K): Promise<R>;
}

/** Nothing more to do until the object changes. */
export const done = (): Result => ({});

/** Look again after `ms`, even if nothing changes (a deadline, an outside system polled). */
export const requeueAfter = (ms: number): Result => ({ requeueAfterMs: ms });

/** The queue's key of an object: `Kind/namespace/name`. */
export const keyOf = (kind: string, ref: NamespacedName): string => `${kind}/${ref.namespace}/${ref.name}`;

/** The parts of a queue key (`Kind/namespace/name`). */
export function parseKey(key: string): { kind: string; namespace: string; name: string } {
  const [kind, namespace, name] = key.split('/');
  return { kind: kind!, namespace: namespace!, name: name! };
}
