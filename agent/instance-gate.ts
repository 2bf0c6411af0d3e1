/**
 * At most one operation per PostgreSQL instance at a time. A reconcile that
 * finds its instance busy gives its worker back and comes again shortly, so a
 * server that hangs holds one worker (until its timeouts fire), never all of
 * them: every other instance's work goes on.
 */
export class InstanceGate {
  private readonly busy = new Set<string>();

  /** Runs `fn` when `key` is free; `undefined` (without running it) when another operation holds it. */
  async tryRun<T>(key: string, fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    if (this.busy.has(key)) return undefined;
    this.busy.add(key);
    try {
      return { value: await fn() };
    } finally {
      this.busy.delete(key);
    }
  }

  isBusy(key: string): boolean {
    return this.busy.has(key);
  }
}
