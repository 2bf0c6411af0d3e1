/**
 * At most one operation per PostgreSQL instance at a time. A reconcile that
 * finds its instance busy gives its worker back and comes again shortly, so a
 * server that hangs holds one worker (until its timeouts fire), never all of
 * them: every other instance's work goes on. The keys turned away are handed to
 * `onFree` the moment the operation ends, so they need not wait out their
 * retry delay: with a fixed 1 s retry alone, a burst of 100 databases on one
 * instance took 84 s (bench/agent), one database a second.
 */
export class InstanceGate {
  private readonly busy = new Set<string>();
  /** Instance -> the keys turned away while it was busy. */
  private readonly waiting = new Map<string, Set<string>>();

  constructor(private readonly onFree?: (waiters: string[]) => void) {}

  /**
   * Runs `fn` when `key` is free; `undefined` (without running it) when another operation holds it,
   * and then `waiter` is handed to `onFree` when that operation ends.
   */
  async tryRun<T>(key: string, fn: () => Promise<T>, waiter?: string): Promise<{ value: T } | undefined> {
    if (this.busy.has(key)) {
      if (waiter !== undefined) this.waiting.set(key, (this.waiting.get(key) ?? new Set()).add(waiter));
      return undefined;
    }
    this.busy.add(key);
    try {
      return { value: await fn() };
    } finally {
      this.busy.delete(key);
      const waiters = this.waiting.get(key);
      this.waiting.delete(key);
      if (waiters?.size) this.onFree?.([...waiters]);
    }
  }

  isBusy(key: string): boolean {
    return this.busy.has(key);
  }
}
