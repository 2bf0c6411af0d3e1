/**
 * List + watch for one kind (in all namespaces or one), with the behaviour
 * client-node's informer lacks (its watches are known to stop silently):
 * - a watch resumes from the last resourceVersion seen (bookmarks included);
 * - 410 Gone (expired resourceVersion) relists;
 * - any other failure restarts with exponential backoff (capped);
 * - a watchdog restarts a watch that has been silent for too long, and closes
 *   the client's idle connections (as dead as the watch's, most likely);
 * - a watch the server ends at once, without an event, is a failure (backoff),
 *   not a reason to ask again at once;
 * - a periodic resync hands every cached object to the handler again.
 * The cache is a map from namespace/name to the last object seen.
 */
import type { KubeApi, WatchEvent } from './client.js';
import { ApiError, isGone, isPermanent } from './errors.js';
import type { Packer } from './pack.js';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
    managedFields?: { manager?: string; operation?: string; subresource?: string }[];
    creationTimestamp?: string;
    deletionTimestamp?: string;
    finalizers?: string[];
  };
  [key: string]: unknown;
}

/** How a cache keeps its objects as text: `decode(encode(o))` equals `o` (apiVersion and kind come from the informer). */
export interface CacheCodec {
  encode(obj: KubeObject): string;
  decode(text: string, type: { apiVersion: string; kind: string }): KubeObject;
}

/** Deflated JSON (see pack.ts): for objects of any shape. */
export function packedJson(packer: Packer): CacheCodec {
  return {
    encode: (obj) => packer.pack(JSON.stringify(obj)),
    decode: (text) => JSON.parse(packer.unpack(text)) as KubeObject,
  };
}

export type InformerEvent = 'added' | 'updated' | 'deleted' | 'resync';

export interface InformerOptions {
  apiVersion: string;
  kind: string;
  /** Watch one namespace; all when absent. */
  namespace?: string;
  labelSelector?: string;
  resyncSeconds?: number;
  watchdogSeconds?: number;
  maxBackoffSeconds?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** What the cache keeps of each object (client-go's SetTransform); default `slim`. */
  transform?: (obj: KubeObject) => KubeObject;
  /** A label whose values are indexed, for `withLabel`. */
  indexLabel?: string;
  /**
   * Keep each object as text in this form (a tenth or less of the memory of
   * the parsed object); get() and list() decode a fresh copy. Default: the
   * (transformed) objects themselves.
   */
  codec?: CacheCodec;
  /**
   * Items per LIST page (default 500, as client-go). A page is parsed whole:
   * smaller pages keep the peak of a (re)list lower, at more requests.
   */
  pageSize?: number;
  /**
   * List and watch metadata only (client-go's metadata informer): the server
   * sends PartialObjectMetadata, so nothing but metadata crosses the wire or
   * reaches `transform`. The cached objects keep `apiVersion` and `kind`.
   */
  metadataOnly?: boolean;
}

/**
 * What the cache keeps of an object (client-go's SetTransform): managedFields
 * shrink to who manages it and how (their field sets are most of an object's
 * size and kiln reads only the names), and kubectl's last-applied annotation goes.
 */
export function slim<T extends KubeObject>(obj: T): T {
  const m = obj.metadata;
  if (!m?.managedFields && !m?.annotations?.['kubectl.kubernetes.io/last-applied-configuration']) return obj;
  const annotations = m.annotations ? { ...m.annotations } : undefined;
  if (annotations) delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
  return {
    ...obj,
    metadata: {
      ...m,
      annotations,
      managedFields: m.managedFields?.map((f) => ({ manager: f.manager, operation: f.operation, subresource: f.subresource })),
    },
  };
}

/** namespace/name, as one flat string (a template literal makes a rope that keeps its parts: one per cached object). */
export const objectKey = (o: { metadata: { namespace?: string; name: string } }) => [o.metadata.namespace ?? '', o.metadata.name].join('/');

/** A watch that ends cleanly sooner than this without an event counts as a failure. */
const SHORT_WATCH_MS = 1000;

export class Informer {
  private readonly cache = new Map<string, KubeObject | string>();
  /** indexLabel value -> keys of the objects carrying it (an array: most values have one to three) */
  private readonly index = new Map<string, string[]>();
  private readonly handlers: ((event: InformerEvent, obj: KubeObject, old?: KubeObject) => void)[] = [];
  private resourceVersion = '';
  private abort: AbortController | undefined;
  private stopped = false;
  private synced = false;
  private lastActivity = Date.now();
  private timers: NodeJS.Timeout[] = [];
  private failures = 0;
  /** Events the current watch has delivered. */
  private watchEvents = 0;
  /** How many times the informer listed (1 + relists); for tests and metrics. */
  lists = 0;

  constructor(
    private readonly client: KubeApi,
    readonly opts: InformerOptions,
  ) {}

  on(handler: (event: InformerEvent, obj: KubeObject, old?: KubeObject) => void): void {
    this.handlers.push(handler);
  }

  get(namespace: string | undefined, name: string): KubeObject | undefined {
    return this.at(objectKey({ metadata: { namespace, name } }));
  }

  /** Every object, or those of one namespace (only they are decoded). */
  list(namespace?: string): KubeObject[] {
    if (namespace === undefined) return [...this.cache.values()].map((v) => this.decode(v));
    const prefix = `${namespace}/`;
    const out: KubeObject[] = [];
    for (const [k, v] of this.cache) if (k.startsWith(prefix)) out.push(this.decode(v));
    return out;
  }

  private decode(v: KubeObject | string): KubeObject {
    return typeof v === 'string' ? this.opts.codec!.decode(v, this.opts) : v;
  }

  private at(key: string): KubeObject | undefined {
    const v = this.cache.get(key);
    return v === undefined ? undefined : this.decode(v);
  }

  /** Objects whose label `label` has this value (from the index when it is `indexLabel`). */
  withLabel(label: string, value: string): KubeObject[] {
    if (label !== this.opts.indexLabel) return this.list().filter((o) => o.metadata.labels?.[label] === value);
    return [...(this.index.get(value) ?? [])].map((k) => this.at(k)).filter((o): o is KubeObject => o !== undefined);
  }

  private put(key: string, obj: KubeObject, old: KubeObject | undefined): void {
    this.cache.set(key, this.opts.codec ? this.opts.codec.encode(obj) : obj);
    const label = this.opts.indexLabel;
    if (!label) return;
    const before = old?.metadata.labels?.[label];
    const after = obj.metadata.labels?.[label];
    if (before === after) return;
    if (before !== undefined) this.unindex(before, key);
    if (after !== undefined) {
      const keys = this.index.get(after);
      // New arrays of the exact length: push() would leave room for 16 more on each.
      if (!keys) this.index.set(after, [key]);
      else if (!keys.includes(key)) this.index.set(after, keys.concat(key));
    }
  }

  private remove(key: string, old: KubeObject): void {
    this.cache.delete(key);
    const value = this.opts.indexLabel ? old.metadata.labels?.[this.opts.indexLabel] : undefined;
    if (value !== undefined) this.unindex(value, key);
  }

  private unindex(value: string, key: string): void {
    const keys = this.index.get(value);
    if (!keys?.includes(key)) return;
    if (keys.length === 1) this.index.delete(value);
    else
      this.index.set(
        value,
        keys.filter((k) => k !== key),
      );
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /**
   * Starts; resolves after the first list has filled the cache. A first list
   * that fails transiently (429 while the server's cache (re)initialises, 5xx,
   * connection refused) is retried with backoff; one that retrying will not fix
   * (RBAC, a kind the server does not serve) rejects.
   */
  async start(): Promise<void> {
    await this.relistWithBackoff(isPermanent);
    if (this.stopped) return; // stopped while still listing: start no loop or timers
    void this.loop();
    const resync = this.opts.resyncSeconds ?? 300;
    if (resync > 0) this.timers.push(setInterval(() => this.resync(), resync * 1000));
    const watchdog = (this.opts.watchdogSeconds ?? 120) * 1000;
    // A watch that has said nothing (not even a bookmark) for this long is presumed dead.
    this.timers.push(
      setInterval(
        () => {
          const silentMs = Date.now() - this.lastActivity;
          if (silentMs > watchdog && this.abort) {
            this.opts.log?.('warn', 'watch silent, restarting', { kind: this.opts.kind, namespace: this.opts.namespace, silentSeconds: Math.round(silentMs / 1000) });
            this.abort.abort();
            // The server sends a bookmark at least every minute: this silence means a dead connection,
            // and the idle ones in the pool are likely dead too. The next watch must not reuse them.
            this.client.closeIdleConnections?.();
          }
        },
        Math.min(watchdog, 10_000),
      ),
    );
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    for (const t of this.timers) clearInterval(t);
  }

  private emit(event: InformerEvent, obj: KubeObject, old?: KubeObject): void {
    for (const h of this.handlers) {
      try {
        h(event, obj, old);
      } catch (err) {
        this.opts.log?.('error', 'informer handler failed', { kind: this.opts.kind, error: String(err) });
      }
    }
  }

  private resync(): void {
    for (const obj of this.cache.values()) this.emit('resync', this.decode(obj));
  }

  private async relist(): Promise<void> {
    let cont: string | undefined;
    let rv: string;
    const seen = new Set<string>();
    const transform = this.opts.transform ?? slim;
    do {
      const page = await this.client.list<KubeObject>(
        { apiVersion: this.opts.apiVersion, kind: this.opts.kind, namespace: this.opts.namespace },
        { labelSelector: this.opts.labelSelector, limit: this.opts.pageSize ?? 500, continue: cont },
        { metadataOnly: this.opts.metadataOnly },
      );
      // Each page goes into the cache as it comes (encoded there, for informers with a codec), so a
      // list of every object is never held beside the cache: at 10,000 resources that was the
      // largest allocation of a restart.
      // A metadata-only list of nothing has `"items": null` (PartialObjectMetadataList does not omit it).
      const items = page.items ?? [];
      for (const item of items) {
        const obj = transform({ ...item, apiVersion: this.opts.apiVersion, kind: this.opts.kind });
        const key = objectKey(obj);
        seen.add(key);
        const old = this.at(key);
        this.put(key, obj, old);
        if (!old) this.emit('added', obj);
        else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit('updated', obj, old);
      }
      items.length = 0; // the full objects can go while the next page loads
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);
    this.lists++;
    for (const [key, cached] of this.cache) {
      if (!seen.has(key)) {
        const old = this.decode(cached);
        this.remove(key, old);
        this.emit('deleted', old);
      }
    }
    this.resourceVersion = rv;
    this.synced = true;
    this.lastActivity = Date.now();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.abort = new AbortController();
      // A new watch starts its own silence clock; otherwise, once one watch has been presumed
      // dead, every following one would be restarted at the watchdog's next tick.
      this.lastActivity = Date.now();
      const began = Date.now();
      this.watchEvents = 0;
      try {
        await this.client.watch(
          { apiVersion: this.opts.apiVersion, kind: this.opts.kind, namespace: this.opts.namespace },
          { labelSelector: this.opts.labelSelector, resourceVersion: this.resourceVersion, timeoutSeconds: 300 },
          (e) => this.onEvent(e),
          this.abort.signal,
          { metadataOnly: this.opts.metadataOnly },
        );
        // A server (or a proxy in front of it) that ends every watch at once would otherwise be asked
        // again at once, for ever: treat it as a failure, with backoff (client-go's "very short watch").
        const lastedMs = Date.now() - began;
        if (lastedMs < SHORT_WATCH_MS && this.watchEvents === 0) throw new Error(`very short watch: the server ended it after ${lastedMs} ms without an event`);
        this.failures = 0;
      } catch (err) {
        if (this.stopped) return;
        if (isGone(err)) {
          this.opts.log?.('info', 'resourceVersion expired, relisting', { kind: this.opts.kind });
          await this.relistWithBackoff();
          continue;
        }
        if ((err as Error).name === 'AbortError') continue; // watchdog
        this.failures++;
        const delay = Math.min((this.opts.maxBackoffSeconds ?? 30) * 1000, 500 * 2 ** Math.min(this.failures, 10)) * (0.8 + Math.random() * 0.4);
        this.opts.log?.('warn', 'watch failed, retrying', { kind: this.opts.kind, error: String(err), retryInMs: Math.round(delay) });
        await new Promise((r) => setTimeout(r, delay));
        // After a failure the stream may have missed events: relist to be sure.
        await this.relistWithBackoff();
      }
    }
  }

  private async relistWithBackoff(fatal?: (err: unknown) => boolean): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.relist();
        return;
      } catch (err) {
        if (fatal?.(err)) throw err;
        const delay = Math.min((this.opts.maxBackoffSeconds ?? 30) * 1000, 500 * 2 ** Math.min(attempt, 10));
        this.opts.log?.('warn', 'list failed, retrying', { kind: this.opts.kind, error: String(err), retryInMs: delay });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private onEvent(e: WatchEvent): void {
    this.lastActivity = Date.now();
    this.watchEvents++;
    // The connection works end to end again: the next failure starts the backoff from the bottom
    // (only a cleanly ended watch used to reset it; the watchdog's restarts and failures never did,
    // so after a few outages every later one waited the full cap before relisting).
    this.failures = 0;
    const obj = e.object as unknown as KubeObject;
    if (e.type === 'ERROR') {
      // The server's Status, as an ApiError like any other answer: a 410 here is the same
      // "resourceVersion too old" as a 410 on the watch request itself.
      const status = e.object as { code?: number; reason?: string; message?: string };
      const code = status.code ?? 500;
      throw new ApiError(code, status.reason ?? String(code), `watch error ${status.code}: ${status.message}`, 'GET', `watch ${this.opts.apiVersion}/${this.opts.kind}`, status.message); // ends the watch; client.watch tears the stream down
    }
    if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
    if (e.type === 'BOOKMARK') return;
    const full = (this.opts.transform ?? slim)({ ...obj, apiVersion: this.opts.apiVersion, kind: this.opts.kind });
    const key = objectKey(full);
    const old = this.at(key);
    if (e.type === 'DELETED') {
      if (old) this.remove(key, old);
      this.emit('deleted', full);
    } else {
      this.put(key, full, old);
      this.emit(old ? 'updated' : 'added', full, old);
    }
  }
}

/** Several per-namespace informers of one kind behind the Informer lookup interface. */
export class MultiInformer {
  constructor(private readonly parts: Informer[]) {}
  add(i: Informer): void {
    this.parts.push(i);
  }
  get(namespace: string | undefined, name: string): KubeObject | undefined {
    for (const p of this.parts) {
      const o = p.get(namespace, name);
      if (o) return o;
    }
    return undefined;
  }
  list(namespace?: string): KubeObject[] {
    return this.parts.flatMap((p) => p.list(namespace));
  }
  withLabel(label: string, value: string): KubeObject[] {
    return this.parts.flatMap((p) => p.withLabel(label, value));
  }
  hasSynced(): boolean {
    return this.parts.every((p) => p.hasSynced());
  }
}
