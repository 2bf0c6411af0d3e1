/**
 * A small Kubernetes REST client over the credentials of a client-node
 * KubeConfig. Every request kiln's controller makes passes here, so the
 * client-side rate limit (QPS and burst, like client-go's) and the per-verb
 * request counts (what "no write when nothing changed" is measured by) live in
 * one place. Subresources (status), server-side apply and watches are plain
 * requests: no generated API class per group.
 */
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { HttpMethod, RequestContext, type KubeConfig } from '@kubernetes/client-node';
import { fetch } from 'undici';
import { pathFor, type ObjectRef } from './resources.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const isNotFound = (e: unknown) => e instanceof ApiError && e.status === 404;
export const isConflict = (e: unknown) => e instanceof ApiError && e.status === 409;
export const isGone = (e: unknown) => e instanceof ApiError && e.status === 410;
export const isForbidden = (e: unknown) => e instanceof ApiError && (e.status === 403 || e.status === 401);
/** Errors that retrying will not fix: the request itself is wrong. */
export const isPermanent = (e: unknown) => e instanceof ApiError && [400, 403, 401, 404, 405, 409, 413, 415, 422].includes(e.status);

/** Token bucket: `qps` requests per second on average, bursts of up to `burst`. */
export class RateLimiter {
  private tokens: number;
  private last = performance.now();
  private queue: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly qps: number, private readonly burst: number) {
    this.tokens = burst;
  }

  take(): Promise<void> {
    if (this.qps <= 0) return Promise.resolve();
    this.refill();
    if (this.tokens >= 1 && this.queue.length === 0) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.queue.push(resolve);
      this.schedule();
    });
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(1, ((1 - this.tokens) / this.qps) * 1000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.tokens >= 1 && this.queue.length > 0) {
        this.tokens -= 1;
        this.queue.shift()!();
      }
      if (this.queue.length > 0) this.schedule();
    }, wait);
  }
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

export interface WatchEvent<T = Record<string, unknown>> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export type Verb = 'GET' | 'LIST' | 'WATCH' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export class KubeClient {
  readonly server: string;
  /** Requests sent, by verb. */
  readonly counts: Record<Verb, number> = { GET: 0, LIST: 0, WATCH: 0, POST: 0, PUT: 0, PATCH: 0, DELETE: 0 };
  private readonly limiter: RateLimiter;
  /**
   * client-node builds a new undici Agent (so a new TLS connection) for every
   * request; kiln keeps the first one, so requests share keep-alive connections.
   */
  private dispatcher: unknown;
  onRequest?: (verb: Verb, path: string, status: number) => void;

  constructor(readonly kc: KubeConfig, opts: { qps?: number; burst?: number } = {}) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/$/, '');
    this.limiter = new RateLimiter(opts.qps ?? 20, opts.burst ?? 30);
  }

  writes(): number {
    return this.counts.POST + this.counts.PUT + this.counts.PATCH + this.counts.DELETE;
  }

  private async prepare(method: string, path: string, query: RequestOptions['query']) {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const ctx = new RequestContext(url.toString(), method as HttpMethod);
    await this.kc.applySecurityAuthentication(ctx);
    this.dispatcher ??= ctx.getDispatcher();
    return { url, ctx, dispatcher: this.dispatcher as never };
  }

  async request<T = Record<string, unknown>>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, opts: RequestOptions = {}): Promise<T> {
    await this.limiter.take();
    const verb: Verb = method === 'GET' ? (isListPath(path) ? 'LIST' : 'GET') : method;
    const { url, ctx, dispatcher } = await this.prepare(method, path, opts.query);
    const headers: Record<string, string> = { ...ctx.getHeaders(), Accept: 'application/json' };
    if (opts.body !== undefined) headers['Content-Type'] = opts.contentType ?? 'application/json';
    const response = await fetch(url, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      dispatcher,
      signal: opts.signal ?? AbortSignal.timeout(60_000),
    });
    this.counts[verb]++;
    const text = await response.text();
    this.onRequest?.(verb, path, response.status);
    if (!response.ok) {
      let reason = response.statusText;
      let message = text.slice(0, 2000);
      try {
        const status = JSON.parse(text) as { reason?: string; message?: string };
        reason = status.reason ?? reason;
        message = status.message ?? message;
      } catch {
        // not a Status object
      }
      throw new ApiError(response.status, reason, `${method} ${path}: ${response.status} ${message}`, method, path);
    }
    return (text ? JSON.parse(text) : {}) as T;
  }

  get<T = Record<string, unknown>>(ref: ObjectRef): Promise<T> {
    return this.request<T>('GET', pathFor(ref));
  }

  list<T = Record<string, unknown>>(ref: Omit<ObjectRef, 'name'>, query: RequestOptions['query'] = {}): Promise<{ metadata: { resourceVersion: string; continue?: string }; items: T[] }> {
    return this.request('GET', pathFor({ ...ref, name: undefined }), { query });
  }

  /** Server-side apply (force: kiln owns what it renders). */
  apply<T = Record<string, unknown>>(obj: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }, fieldManager: string, subresource?: 'status'): Promise<T> {
    return this.request<T>('PATCH', pathFor({ apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name }, subresource), {
      query: { fieldManager, force: true },
      body: obj,
      contentType: 'application/apply-patch+yaml',
    });
  }

  mergePatch<T = Record<string, unknown>>(ref: ObjectRef, patch: unknown, subresource?: string): Promise<T> {
    return this.request<T>('PATCH', pathFor(ref, subresource), { body: patch, contentType: 'application/merge-patch+json' });
  }

  create<T = Record<string, unknown>>(obj: { apiVersion: string; kind: string; metadata: { namespace?: string } }, subresource?: { name: string; sub: string }): Promise<T> {
    const path = subresource
      ? pathFor({ apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.metadata.namespace, name: subresource.name }, subresource.sub)
      : pathFor({ apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.metadata.namespace });
    return this.request<T>('POST', path, { body: obj });
  }

  /** Delete with a UID precondition: never removes a same-named successor. */
  delete(ref: ObjectRef, uid?: string, propagationPolicy: 'Background' | 'Foreground' | 'Orphan' = 'Background'): Promise<unknown> {
    return this.request('DELETE', pathFor(ref), {
      body: { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy, ...(uid ? { preconditions: { uid } } : {}) },
    });
  }

  /**
   * Opens a watch and feeds events to `onEvent` until the stream ends (resolves)
   * or fails (rejects). `signal` stops it.
   */
  async watch(ref: Omit<ObjectRef, 'name'>, query: RequestOptions['query'], onEvent: (e: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    await this.limiter.take();
    const { url, ctx, dispatcher } = await this.prepare('GET', pathFor({ ...ref, name: undefined }), { ...query, watch: true, allowWatchBookmarks: true });
    this.counts.WATCH++;
    // Our own controller, so the stream can be torn down however the loop ends.
    const stop = new AbortController();
    const forward = () => stop.abort();
    signal.addEventListener('abort', forward, { once: true });
    try {
      const response = await fetch(url, { method: 'GET', headers: { ...ctx.getHeaders(), Accept: 'application/json' }, dispatcher, signal: stop.signal });
      if (!response.ok || !response.body) {
        const text = await response.text();
        throw new ApiError(response.status, response.statusText, `WATCH ${url.pathname}: ${response.status} ${text.slice(0, 500)}`, 'GET', url.pathname);
      }
      const body = Readable.fromWeb(response.body as never);
      // Errors reach us through the line iterator; once we stop reading, the
      // abort below makes the stream emit one more, which nobody needs.
      body.on('error', () => {});
      const lines = createInterface({ input: body, crlfDelay: Infinity });
      try {
        for await (const line of lines) {
          if (!line.trim()) continue;
          onEvent(JSON.parse(line) as WatchEvent);
        }
      } finally {
        lines.close();
      }
    } finally {
      signal.removeEventListener('abort', forward);
      stop.abort();
    }
  }
}

function isListPath(path: string): boolean {
  // /api/v1/namespaces/x/configmaps (list) vs /api/v1/namespaces/x/configmaps/name (get)
  const rest = path.replace(/^\/(api\/v1|apis\/[^/]+\/[^/]+)/, '').replace(/^\/namespaces\/[^/]+(?=\/)/, '');
  return rest.split('/').filter(Boolean).length === 1;
}
