/**
 * Informer recovery logic, driven by a scripted stand-in for the REST client
 * (the real API server is exercised by the integration tests; here the point
 * is the sequences that are hard to provoke there: 410 Gone, a dying watch, a
 * silent one).
 */
import { describe, expect, it } from 'vitest';
import { ApiError, type KubeClient, type WatchEvent } from '../../kube/client.js';
import { Informer, packedJson as packedCodec, type KubeObject } from '../../kube/informer.js';
import { packer } from '../../kube/pack.js';
import { packDictionary } from '../../controller/pack-dictionary.js';

const codec = packer(packDictionary);
const packedJson = packedCodec(codec);
import { SAMPLES } from '../../controller/pack-dictionary.js';
import { validate } from '../../validate/index.js';

const cm = (name: string, rv: string): KubeObject => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

class ScriptedClient {
  lists: string[][] = [];
  watches: string[] = [];
  /** The read options (metadataOnly) of each list and watch. */
  reads: string[] = [];
  listResult: KubeObject[] = [];
  rv = '10';
  script: ((emit: (e: WatchEvent) => void, signal: AbortSignal) => Promise<void>)[] = [];
  list(_ref: unknown, _query: unknown, opts: { metadataOnly?: boolean } = {}) {
    this.reads.push(`list:${opts.metadataOnly ?? false}`);
    this.lists.push(this.listResult.map((o) => o.metadata.name));
    return Promise.resolve({ metadata: { resourceVersion: this.rv }, items: this.listResult });
  }
  async watch(_ref: unknown, query: { resourceVersion?: string }, onEvent: (e: WatchEvent) => void, signal: AbortSignal, opts: { metadataOnly?: boolean } = {}) {
    this.reads.push(`watch:${opts.metadataOnly ?? false}`);
    this.watches.push(String(query.resourceVersion));
    const step = this.script.shift();
    if (!step) return new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
    return step(onEvent, signal);
  }
}

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
};

function informer(client: ScriptedClient, extra: Partial<ConstructorParameters<typeof Informer>[1]> = {}) {
  return new Informer(client as unknown as KubeClient, { apiVersion: 'v1', kind: 'ConfigMap', resyncSeconds: 0, maxBackoffSeconds: 0.05, ...extra });
}

describe('Informer', () => {
  it('codec: keeps deflated text, hands out fresh copies; indexes a label; old versions reach the handlers', async () => {
    const c = new ScriptedClient();
    const big = (name: string, rv: string, set: string): KubeObject => ({ metadata: { name, namespace: 'ns', resourceVersion: rv, labels: { set } }, data: { text: 'x'.repeat(2000) } });
    c.listResult = [big('a', '5', 's1'), big('b', '6', 's1')];
    c.script.push((emit) => {
      emit({ type: 'MODIFIED', object: big('b', '12', 's2') });
      return Promise.resolve();
    });
    const inf = informer(c, { codec: packedJson, indexLabel: 'set' });
    const olds: string[] = [];
    inf.on((e, o, old) => {
      if (e === 'updated') olds.push(`${old?.metadata.resourceVersion}->${o.metadata.resourceVersion}`);
    });
    await inf.start();
    await until(() => olds.length === 1);
    expect(olds).toEqual(['6->12']);
    const a1 = inf.get('ns', 'a')!;
    a1.metadata.name = 'changed';
    expect(inf.get('ns', 'a')!.metadata.name).toBe('a');
    expect((inf.get('ns', 'a') as unknown as { data: { text: string } }).data.text).toHaveLength(2000);
    expect(inf.withLabel('set', 's1').map((o) => o.metadata.name)).toEqual(['a']);
    expect(inf.withLabel('set', 's2').map((o) => o.metadata.name)).toEqual(['b']);
    inf.stop();
  });

  it('lists, then watches from the list resourceVersion and applies events to its cache', async () => {
    const c = new ScriptedClient();
    c.listResult = [cm('a', '5')];
    c.script.push((emit) => {
      emit({ type: 'ADDED', object: cm('b', '11') });
      emit({ type: 'MODIFIED', object: cm('a', '12') });
      emit({ type: 'DELETED', object: cm('b', '13') });
      emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '20' } } });
      return Promise.resolve();
    });
    const inf = informer(c);
    const seen: string[] = [];
    inf.on((e, o) => seen.push(`${e}:${o.metadata.name}`));
    await inf.start();
    await until(() => c.watches.length >= 2);
    expect(c.watches).toEqual(['10', '20']);
    expect(seen).toEqual(['added:a', 'added:b', 'updated:a', 'deleted:b']);
    expect(inf.list().map((o) => o.metadata.name)).toEqual(['a']);
    inf.stop();
  });

  it("metadataOnly: asks the list and every watch for metadata; the cache keeps the informer's kind, not PartialObjectMetadata", async () => {
    const partial = (name: string, rv: string) => ({ apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadata', ...cm(name, rv) });
    const c = new ScriptedClient();
    c.listResult = [partial('a', '5')];
    c.script.push((emit) => {
      emit({ type: 'ADDED', object: partial('b', '11') });
      return Promise.resolve();
    });
    const inf = informer(c, { metadataOnly: true });
    await inf.start();
    await until(() => c.watches.length >= 2);
    expect(c.reads.slice(0, 3)).toEqual(['list:true', 'watch:true', 'watch:true']);
    expect(
      inf
        .list()
        .map((o) => `${o.apiVersion}/${o.kind}/${o.metadata.name}`)
        .sort(),
    ).toEqual(['v1/ConfigMap/a', 'v1/ConfigMap/b']);
    inf.stop();
    const plain = new ScriptedClient();
    const inf2 = informer(plain);
    await inf2.start();
    await until(() => plain.watches.length >= 1);
    expect(plain.reads.slice(0, 2)).toEqual(['list:false', 'watch:false']);
    inf2.stop();
  });

  it('relists on 410 Gone and reports what changed meanwhile', async () => {
    const c = new ScriptedClient();
    c.listResult = [cm('a', '5'), cm('b', '6')];
    c.script.push(async (emit) => {
      await Promise.resolve(); // as from a real server, the 410 comes after start() has returned
      emit({ type: 'ERROR', object: { code: 410, message: 'too old resource version' } });
    });
    const inf = informer(c);
    const seen: string[] = [];
    inf.on((e, o) => seen.push(`${e}:${o.metadata.name}`));
    await inf.start();
    c.listResult = [cm('a', '7')];
    c.rv = '30';
    await until(() => c.lists.length === 2 && c.watches.length >= 2);
    expect(seen).toEqual(['added:a', 'added:b', 'updated:a', 'deleted:b']);
    expect(c.watches.at(-1)).toBe('30');
    inf.stop();
  });

  it('restarts a failed watch with backoff, relisting first', async () => {
    const c = new ScriptedClient();
    c.script.push(() => Promise.reject(new ApiError(500, 'InternalError', 'boom', 'GET', '/')));
    c.script.push(() => Promise.reject(new Error('connection reset')));
    const inf = informer(c);
    await inf.start();
    await until(() => c.watches.length >= 3);
    expect(c.lists.length).toBe(3);
    inf.stop();
  });

  it('a watch the server ends at once without an event is retried with backoff, not in a tight loop', async () => {
    const c = new ScriptedClient();
    // Each watch answers 200 and ends at once (one turn of the event loop, as real I/O would take).
    for (let i = 0; i < 100_000; i++) c.script.push(() => new Promise<void>((r) => setImmediate(r)));
    const logged: string[] = [];
    const inf = informer(c, { maxBackoffSeconds: 0.1, log: (_l, msg, f) => logged.push(`${msg} ${(f?.['error'] as string | undefined) ?? ''}`) });
    await inf.start();
    await new Promise((r) => setTimeout(r, 500));
    inf.stop();
    expect(c.watches.length).toBeLessThan(20);
    expect(logged.some((l) => /watch failed.*very short watch: the server ended it after \d+ ms without an event/.test(l))).toBe(true);
  });

  it('a watch that delivered an event resets the backoff: the next failure waits the base delay, not the grown one', async () => {
    const c = new ScriptedClient();
    c.script.push(() => Promise.reject(new Error('connection reset')));
    c.script.push(() => Promise.reject(new Error('connection reset')));
    c.script.push((emit) => {
      emit({ type: 'ADDED', object: cm('x', '11') });
      return Promise.reject(new Error('connection reset'));
    });
    const delays: number[] = [];
    const inf = informer(c, {
      maxBackoffSeconds: 30,
      log: (_l, msg, f) => {
        if (msg === 'watch failed, retrying') delays.push(f?.['retryInMs'] as number);
      },
    });
    await inf.start();
    await until(() => delays.length >= 3, 10_000);
    inf.stop();
    // 1 s and 2 s (each ±20%) for the first two; after the event, 1 s again instead of 4 s.
    expect(delays[1]).toBeGreaterThan(1500);
    expect(delays[2]).toBeLessThan(1300);
  });

  it('a watchdog restarts a watch that has gone silent', async () => {
    const c = new ScriptedClient();
    const inf = informer(c, { watchdogSeconds: 0.2 });
    await inf.start();
    await until(() => c.watches.length >= 2, 15_000);
    expect(c.watches.length).toBeGreaterThanOrEqual(2);
    inf.stop();
  });

  it('retries a first list that fails transiently (429 while the API server warms up), but not a permanent failure', async () => {
    const c = new ScriptedClient();
    let calls = 0;
    const realList = c.list.bind(c);
    c.list = async () => {
      if (++calls === 1) throw new ApiError(429, 'TooManyRequests', 'storage is (re)initializing', 'GET', '/');
      return realList(undefined, undefined);
    };
    const inf = informer(c);
    await inf.start();
    expect(calls).toBe(2);
    inf.stop();

    const denied = new ScriptedClient();
    denied.list = () => Promise.reject(new ApiError(403, 'Forbidden', 'no', 'GET', '/'));
    await expect(informer(denied).start()).rejects.toThrow(/no/);
  });

  it('resync hands every cached object to the handlers again', async () => {
    const c = new ScriptedClient();
    c.listResult = [cm('a', '1'), cm('b', '2')];
    const inf = informer(c, { resyncSeconds: 0.1 });
    const seen: string[] = [];
    inf.on((e, o) => e === 'resync' && seen.push(o.metadata.name));
    await inf.start();
    await until(() => seen.length >= 2);
    expect(seen.slice(0, 2).sort()).toEqual(['a', 'b']);
    inf.stop();
  });
});

describe('pack (compact cache text)', () => {
  const resource = (i: number) =>
    JSON.stringify({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'DirectoryService',
      metadata: { name: `ds-${i}`, namespace: 'identity', uid: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`, resourceVersion: String(1000 + i), generation: 1 },
      spec: {
        replicas: 3,
        image: 'registry.example.com/forgerock/ds:7.5.1',
        resources: { requests: { cpu: '1', memory: '3Gi' }, limits: { memory: '3Gi' } },
        storage: { size: '100Gi', storageClassName: 'fast' },
      },
      status: {
        observedGeneration: 1,
        conditions: ['Ready', 'Reconciling', 'Stalled'].map((type) => ({
          type,
          status: type === 'Ready' ? 'True' : 'False',
          reason: 'Applied',
          message: '4 objects applied and in sync',
          lastTransitionTime: '2026-11-24T05:00:00Z',
          observedGeneration: 1,
        })),
      },
    });

  it('round-trips short and long texts, unicode included', () => {
    for (const text of ['{}', '"é ü 漢字"', resource(1), `${resource(2)}${'x'.repeat(5000)}`, JSON.stringify({ s: 'ünïcödé '.repeat(200) })]) {
      expect(codec.unpack(codec.pack(text))).toBe(text);
    }
  });

  it('builds its dictionary from samples that validate', () => {
    for (const s of SAMPLES) expect(validate({ apiVersion: 'kiln.dev/v1alpha1', kind: s.kind, metadata: { name: 'sample', namespace: 'default' }, spec: s.spec }).ok, s.kind).toBe(true);
  });

  it('keeps a cached resource in a small fraction of its JSON (the preset dictionary)', () => {
    const text = resource(7);
    const packed = codec.pack(text);
    expect(packed.startsWith('y')).toBe(true);
    expect(packed.length).toBeLessThan(text.length / 4);
  });
});
