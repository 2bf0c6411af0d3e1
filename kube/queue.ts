/**
 * A work queue keyed by resource (controller-runtime's workqueue, in small):
 * a key waiting is queued once however often it is added; a key being worked
 * on is never handed to a second worker, and if it is added meanwhile it runs
 * again afterwards; failures come back after a per-key exponential backoff,
 * except a TerminalError, which only a change of the object (a new add) retries.
 */
import { controllerMetrics, type ControllerMetrics, type ReconcileResult } from '../lib/metrics.js';
import { isTerminal } from './errors.js';
import type { Reconciler, Result } from './reconcile.js';

export interface QueueOptions {
  concurrency: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

/** A reconciler, or just its reconcile function. */
export type Worker = Reconciler<string, Result> | ((key: string) => Promise<Result | void>);

export class WorkQueue {
  private readonly waiting: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, NodeJS.Timeout>();
  private running = 0;
  private stopped = true;
  private idleWaiters: (() => void)[] = [];
  onError?: (key: string, err: unknown, retryInMs: number) => void;
  /** A TerminalError: not retried. */
  onTerminal?: (key: string, err: unknown) => void;
  /** Set by instrument(): the metrics of the controller a key belongs to, and when each waiting key was added. */
  private metrics?: (key: string) => ControllerMetrics;
  private readonly addedAt = new Map<string, number>();

  private readonly work: (key: string) => Promise<Result | void>;

  constructor(
    worker: Worker,
    private readonly opts: QueueOptions,
  ) {
    this.work = typeof worker === 'function' ? worker : (key) => worker.reconcile(key);
  }

  /** Workers that run at once. */
  get concurrency(): number {
    return this.opts.concurrency;
  }

  /**
   * Records this queue in lib/metrics.ts as controller-runtime records its
   * controllers: each key belongs to the controller `controllerOf(kind)`
   * (default: the kind in lower case, controller-runtime's default name), the
   * kind being the key's first `/`-separated part (`Kind/namespace/name`).
   * `kinds`: the controllers whose series exist from the start, at zero.
   */
  instrument(controllerOf: (kind: string) => string = (kind) => kind.toLowerCase(), kinds: string[] = []): this {
    this.metrics = (key) => controllerMetrics(controllerOf(key.slice(0, Math.max(0, key.indexOf('/')))));
    for (const kind of kinds) controllerMetrics(controllerOf(kind)).init(this.opts.concurrency);
    return this;
  }

  /** A key became ready to be worked on: counted once until a worker takes it. */
  private added(key: string): void {
    if (!this.metrics) return;
    const m = this.metrics(key);
    m.added();
    if (!this.addedAt.has(key)) this.addedAt.set(key, performance.now());
  }

  add(key: string): void {
    if (this.active.has(key)) {
      // Runs again when the worker finishes: waiting, as client-go counts it.
      if (!this.dirty.has(key)) {
        this.dirty.add(key);
        this.added(key);
      }
      return;
    }
    if (this.queued.has(key)) return;
    this.enqueue(key);
    this.added(key);
    this.pump();
  }

  /** Into the waiting line now, cancelling a delayed add of the same key. */
  private enqueue(key: string): void {
    const timer = this.delayed.get(key);
    if (timer) {
      clearTimeout(timer);
      this.delayed.delete(key);
    }
    this.queued.add(key);
    this.waiting.push(key);
  }

  addAfter(key: string, ms: number): void {
    if (ms > 0) this.metrics?.(key).retried();
    if (this.delayed.has(key) || this.queued.has(key)) return;
    const t = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, t);
  }

  /** Keys waiting or in progress. */
  depth(): number {
    return this.waiting.length + this.running;
  }

  start(): void {
    this.stopped = false;
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.delayed.values()) clearTimeout(t);
    this.delayed.clear();
  }

  /** Whether the running work finished within `timeoutMs` (after stop(), nothing new starts). */
  async settled(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.running > 0) {
      if (performance.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  /** Resolves when nothing is waiting or running (delayed retries do not count). */
  idle(): Promise<void> {
    if (this.waiting.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private pump(): void {
    while (!this.stopped && this.running < this.opts.concurrency && this.waiting.length > 0) {
      const key = this.waiting.shift()!;
      this.queued.delete(key);
      this.active.add(key);
      this.running++;
      if (this.metrics) {
        const at = this.addedAt.get(key);
        this.addedAt.delete(key);
        this.metrics(key).started(key, at === undefined ? undefined : (performance.now() - at) / 1000);
      }
      void this.run(key);
    }
    if (this.waiting.length === 0 && this.running === 0) {
      for (const r of this.idleWaiters.splice(0)) r();
    }
  }

  private backoff(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const base = this.opts.baseDelayMs ?? 200;
    return Math.min(this.opts.maxDelayMs ?? 60_000, base * 2 ** (n - 1));
  }

  private async run(key: string): Promise<void> {
    let result: ReconcileResult = 'success';
    try {
      const r = await this.work(key);
      this.failures.delete(key);
      if (r?.requeueAfterMs !== undefined) {
        result = r.requeueAfterMs > 0 ? 'requeue_after' : 'requeue';
        this.addAfter(key, r.requeueAfterMs);
      }
    } catch (err) {
      result = 'error';
      if (isTerminal(err)) {
        this.failures.delete(key);
        this.onTerminal?.(key, err);
        return;
      }
      const delay = this.backoff(key);
      this.onError?.(key, err, delay);
      this.addAfter(key, delay);
    } finally {
      this.metrics?.(key).finished(key, result);
      this.active.delete(key);
      this.running--;
      if (this.dirty.delete(key)) {
        // Added while it ran (and counted then): back in the queue.
        if (!this.queued.has(key)) this.enqueue(key);
      }
      this.pump();
    }
  }
}
