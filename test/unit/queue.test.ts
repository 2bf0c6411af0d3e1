import { describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeClient, RateLimiter } from '../../kube/client.js';
import { WorkQueue } from '../../kube/queue.js';
import { TerminalError } from '../../kube/errors.js';
import { requeueAfter, type Reconciler } from '../../kube/reconcile.js';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('WorkQueue', () => {
  it('de-duplicates waiting keys and never runs one key twice at once', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const runs: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const q = new WorkQueue(
      async (key) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        runs.push(key);
        if (runs.length === 1) await gate;
        inFlight--;
      },
      { concurrency: 1 },
    );
    q.start();
    q.add('a');
    await tick();
    q.add('a'); // while running: runs once more afterwards
    q.add('a');
    q.add('b');
    q.add('b');
    release();
    await q.idle();
    await tick();
    await q.idle();
    // b waited (added twice, ran once); a was re-added while running, so it ran once more, after b.
    expect(runs).toEqual(['a', 'b', 'a']);
    expect(maxInFlight).toBe(1);
  });

  it('bounds concurrency', async () => {
    let inFlight = 0;
    let max = 0;
    const q = new WorkQueue(
      async () => {
        inFlight++;
        max = Math.max(max, inFlight);
        await tick(10);
        inFlight--;
      },
      { concurrency: 3 },
    );
    q.start();
    for (let i = 0; i < 20; i++) q.add(`k${i}`);
    await q.idle();
    expect(max).toBe(3);
  });

  it('retries failures with per-key exponential backoff, capped', async () => {
    const at: number[] = [];
    const q = new WorkQueue(
      () => {
        at.push(performance.now());
        return at.length < 5 ? Promise.reject(new Error('transient')) : Promise.resolve();
      },
      { concurrency: 1, baseDelayMs: 20, maxDelayMs: 60 },
    );
    const delays: number[] = [];
    q.onError = (_k, _e, ms) => delays.push(ms);
    q.start();
    q.add('x');
    while (at.length < 5) await tick(10);
    expect(delays).toEqual([20, 40, 60, 60]);
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(delays[i - 1]! - 2);
    q.stop();
  });

  it('requeues after the delay a reconcile asks for', async () => {
    let n = 0;
    const q = new WorkQueue(() => Promise.resolve(++n === 1 ? { requeueAfterMs: 30 } : undefined), { concurrency: 1 });
    q.start();
    q.add('x');
    await tick(80);
    expect(n).toBe(2);
    q.stop();
  });

  it('drives a Reconciler object, requeue-after included', async () => {
    const keys: string[] = [];
    const reconciler: Reconciler = {
      reconcile(key) {
        keys.push(key);
        return Promise.resolve(keys.length === 1 ? requeueAfter(20) : {});
      },
    };
    const q = new WorkQueue(reconciler, { concurrency: 1 });
    q.start();
    q.add('Kind/ns/a');
    await tick(70);
    expect(keys).toEqual(['Kind/ns/a', 'Kind/ns/a']);
    q.stop();
  });

  it('does not retry a TerminalError until the key is added again', async () => {
    let n = 0;
    const terminal: string[] = [];
    const retried: string[] = [];
    const q = new WorkQueue(
      () => {
        n++;
        return Promise.reject(new TerminalError('spec can never work'));
      },
      { concurrency: 1, baseDelayMs: 5 },
    );
    q.onTerminal = (key) => terminal.push(key);
    q.onError = (key) => retried.push(key);
    q.start();
    q.add('x');
    await tick(60);
    expect(n).toBe(1);
    expect(terminal).toEqual(['x']);
    expect(retried).toEqual([]);
    q.add('x');
    await tick(20);
    expect(n).toBe(2);
    q.stop();
  });
});

describe('RateLimiter', () => {
  it('lets a burst through, then paces at qps', async () => {
    const rl = new RateLimiter(50, 5);
    const started = performance.now();
    for (let i = 0; i < 15; i++) await rl.take();
    const elapsed = performance.now() - started;
    // 5 at once, then 10 more at 50/s = 200 ms.
    expect(elapsed).toBeGreaterThanOrEqual(180);
    expect(elapsed).toBeLessThan(600);
  });
});

describe('KubeClient.withOwnRateLimit', () => {
  it("creates Events on a token bucket of their own: they neither wait behind the client's requests nor use their tokens", async () => {
    const server = http.createServer((_req, res) => res.end('{}'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new KubeClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }, { qps: 2, burst: 1 });
    try {
      await client.request('GET', '/version'); // the client's one token
      const events = client.withOwnRateLimit();
      let started = performance.now();
      await events.create({ apiVersion: 'v1', kind: 'Event', metadata: { namespace: 'a' } });
      expect(performance.now() - started).toBeLessThan(300);
      // The client's own bucket is still empty: its next request waits for the next token (500 ms at 2/s).
      started = performance.now();
      await client.request('GET', '/version');
      expect(performance.now() - started).toBeGreaterThanOrEqual(350);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
