/**
 * A work queue keyed by resource (controller-runtime's workqueue, in small):
 * a key waiting is queued once however often it is added; a key being worked
 * on is never handed to a second worker, and if it is added meanwhile it runs
 * again afterwards; failures come back after a per-key exponential backoff.
 */
import { recordQueueAdd, recordQueueRetry, recordReconcile, setQueueDepth } from '../lib/metrics.js';

export interface QueueOptions {
  concurrency: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export type Worker = (key: string) => Promise<{ requeueAfterMs?: number } | void>;

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
  /** Set by instrument(): the queue's name in metrics and how a key maps to a kind. */
  private metrics?: { name: string; kindOf: (key: string) => string };

  constructor(private readonly work: Worker, private readonly opts: QueueOptions) {}

  /**
   * Records this queue in lib/metrics.ts: kiln_workqueue_depth/adds/retries
   * under `name`, and every run of the worker as a reconcile of `kindOf(key)`
   * (default: the key's first `/`-separated part, the kind of `Kind/namespace/name`).
   */
  instrument(name: string, kindOf: (key: string) => string = (key) => key.slice(0, Math.max(0, key.indexOf('/')))): this {
    this.metrics = { name, kindOf };
    setQueueDepth(name, this.depth());
    return this;
  }

  private observeDepth(): void {
    if (this.metrics) setQueueDepth(this.metrics.name, this.depth());
  }

  add(key: string): void {
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    const timer = this.delayed.get(key);
    if (timer) {
      clearTimeout(timer);
      this.delayed.delete(key);
    }
    this.queued.add(key);
    this.waiting.push(key);
    if (this.metrics) recordQueueAdd(this.metrics.name);
    this.pump();
  }

  addAfter(key: string, ms: number): void {
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
      void this.run(key);
    }
    this.observeDepth();
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
    const started = performance.now();
    try {
      const result = await this.work(key);
      if (this.metrics) recordReconcile(this.metrics.kindOf(key), (performance.now() - started) / 1000, 'success');
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      if (this.metrics) {
        recordReconcile(this.metrics.kindOf(key), (performance.now() - started) / 1000, 'error');
        recordQueueRetry(this.metrics.name);
      }
      const delay = this.backoff(key);
      this.onError?.(key, err, delay);
      this.addAfter(key, delay);
    } finally {
      this.active.delete(key);
      this.running--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
    }
  }
}
