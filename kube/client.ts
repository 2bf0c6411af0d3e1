/**
 * A small Kubernetes REST client over kiln's own cluster configuration
 * (kube/kubeconfig.ts). Every request kiln's controller makes passes
 * here, so the client-side rate limit (QPS and burst, like client-go's) and
 * the per-verb request counts (what "no write when nothing changed" is
 * measured by) live in one place. Subresources (status), server-side apply and
 * watches are plain requests: no generated API class per group. One keep-alive
 * agent per client keeps its TLS connections open between requests (node:https:
 * the HTTP library measured ~10 MiB more resident memory for no gain kiln needs).
 *
 * Authentication and transport follow client-go's: credentials from
 * ./kubeconfig.ts (an exec plugin's are obtained before the request that needs
 * them, and again after a 401); a client certificate an exec plugin returns is
 * put on a fresh agent and the old agent's connections, watches included, are
 * closed (client-go closes them on rotation too); impersonation headers; the
 * cluster's proxy-url or the proxy environment (./proxy.ts).
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import { Credentials, toClusterConfig, type Auth, type ClusterConfig, type ClusterConfigInput } from './kubeconfig.js';
import { HttpProxyAgent, HttpsProxyAgent, proxyFor } from './proxy.js';
import { pathFor, type ObjectRef } from './resources.js';
import { ApiError, RequestTimeoutError } from './errors.js';

// The errors live in ./errors.ts (kube/ code that never makes a request needs them too); re-exported for callers of the client.
export { ApiError, RequestTimeoutError, isConflict, isForbidden, isGone, isNotFound, isPermanent } from './errors.js';

/** Token bucket: `qps` requests per second on average, bursts of up to `burst`. */
export class RateLimiter {
  private tokens: number;
  private last = performance.now();
  private queue: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly qps: number,
    private readonly burst: number,
  ) {
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
  /** The Accept header; default application/json. */
  accept?: string;
  /** The token bucket this request waits on; default the client's. */
  limiter?: RateLimiter;
}

/**
 * Media types that make the API server answer with metadata only
 * (PartialObjectMetadata, as client-go's metadata client asks): the objects'
 * other fields (a Secret's data, a ConfigMap's contents) never cross the wire.
 * Every built-in kind and CRD serves them; an aggregated API server that does
 * not answers 406 rather than full objects, as there is no fallback here.
 */
const METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
const METADATA_WATCH = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';

/** For list and watch: `metadataOnly` asks for metadata and nothing else (see METADATA_LIST). */
export interface ReadOptions {
  metadataOnly?: boolean;
}

export interface WatchEvent<T = Record<string, unknown>> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export type Verb = 'GET' | 'LIST' | 'WATCH' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * What code holding a client calls: the KubeClient below against an API
 * server, or an in-memory fake (kube/fake-client.ts) in a unit test, as
 * controller-runtime's client.Client is to its pkg/client/fake.
 */
export interface KubeApi {
  request<T = Record<string, unknown>>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, opts?: RequestOptions): Promise<T>;
  get<T = Record<string, unknown>>(ref: ObjectRef): Promise<T>;
  list<T = Record<string, unknown>>(
    ref: Omit<ObjectRef, 'name'>,
    query?: RequestOptions['query'],
    opts?: ReadOptions,
  ): Promise<{ metadata: { resourceVersion: string; continue?: string }; items: T[] }>;
  apply<T = Record<string, unknown>>(
    obj: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } },
    fieldManager: string,
    subresource?: 'status',
    opts?: { dryRun?: boolean },
  ): Promise<T>;
  mergePatch<T = Record<string, unknown>>(ref: ObjectRef, patch: unknown, subresource?: string): Promise<T>;
  create<T = Record<string, unknown>>(obj: { apiVersion: string; kind: string; metadata: { namespace?: string } }, subresource?: { name: string; sub: string }): Promise<T>;
  delete(ref: ObjectRef, uid?: string, propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'): Promise<unknown>;
  watch(ref: Omit<ObjectRef, 'name'>, query: RequestOptions['query'], onEvent: (e: WatchEvent) => void, signal: AbortSignal, opts?: ReadOptions): Promise<void>;
  /** Drops pooled connections after a silent watch; a client without a pool has none. */
  closeIdleConnections?(): void;
}

export class KubeClient implements KubeApi {
  readonly server: string;
  /** The cluster configuration this client authenticates with (credentials included: never log it). */
  readonly config: ClusterConfig;
  /** Requests sent, by verb. */
  readonly counts: Record<Verb, number> = { GET: 0, LIST: 0, WATCH: 0, POST: 0, PUT: 0, PATCH: 0, DELETE: 0 };
  private readonly limiter: RateLimiter;
  private readonly rate: { qps: number; burst: number };
  private readonly credentials: Credentials;
  private agent: http.Agent;
  /** The exec plugin's client certificate the current agent presents, if any. */
  private agentCert: string | undefined;
  private readonly transport: typeof https | typeof http;
  private readonly proxy: URL | undefined;
  onRequest?: (verb: Verb, path: string, status: number) => void;
  /** Response body bytes, as they are read: a list's or get's whole body, a watch's one line per event. */
  onReceived?: (verb: Verb, path: string, bytes: number) => void;

  /** How long a request (not a watch) may take, answer included, before it is abandoned and its connection closed. */
  readonly requestTimeoutMs: number;

  /** Sent as User-Agent (client-go sends `<binary>/<version> (<os>/<arch>) kubernetes/<commit>`): who sent a request, in the audit log. */
  private readonly userAgent: string | undefined;

  constructor(config: ClusterConfigInput, opts: { qps?: number; burst?: number; requestTimeoutMs?: number; userAgent?: string } = {}) {
    this.config = toClusterConfig(config);
    this.userAgent = opts.userAgent;
    // The API server's own --request-timeout is 60 s: an answer later than that is not coming.
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
    this.server = this.config.server.replace(/\/$/, '');
    this.rate = { qps: opts.qps ?? 20, burst: opts.burst ?? 30 };
    this.limiter = new RateLimiter(this.rate.qps, this.rate.burst);
    this.credentials = new Credentials(this.config);
    this.transport = this.server.startsWith('https:') ? https : http;
    this.proxy = proxyFor(this.server, this.config.proxyUrl);
    this.agent = this.newAgent();
  }

  /** HTTP/1.1 with a pool of keep-alive connections (a watch holds one each), through the proxy if there is one. */
  private newAgent(exec?: { cert: string; key: string }): http.Agent {
    const c = this.config;
    if (this.transport === http) return this.proxy ? new HttpProxyAgent(this.proxy, { keepAlive: true, timeout: 30_000 }) : new http.Agent({ keepAlive: true, timeout: 30_000 });
    const cert = exec ?? (c.cert && c.key ? { cert: c.cert, key: c.key } : undefined);
    const options: https.AgentOptions = {
      keepAlive: true,
      timeout: 30_000,
      ...(c.ca ? { ca: c.ca } : {}),
      ...(cert ? { cert: cert.cert, key: cert.key } : {}),
      rejectUnauthorized: !c.insecureSkipTLSVerify,
      ...(c.tlsServerName ? { servername: c.tlsServerName } : {}),
    };
    return this.proxy ? new HttpsProxyAgent(this.proxy, options) : new https.Agent(options);
  }

  /** The agent for `auth`: a new one when an exec plugin's client certificate changed, closing the old one's connections. */
  private agentFor(auth: Auth): http.Agent {
    if (auth.cert && auth.key && auth.cert !== this.agentCert) {
      const old = this.agent;
      this.agent = this.newAgent({ cert: auth.cert, key: auth.key });
      this.agentCert = auth.cert;
      old.destroy();
    }
    return this.agent;
  }

  /**
   * Closes the pooled connections no request is using. After a request or a watch went silent
   * (a partition, a NAT or load-balancer entry dropped, a server that stopped answering), every
   * idle connection is as suspect: reused, each would be found dead only by timing out one more
   * request on it, one timeout after another (HTTP/2 clients find them by ping; this one is HTTP/1.1).
   */
  closeIdleConnections(): void {
    for (const sockets of Object.values(this.agent.freeSockets)) for (const s of sockets ?? []) s.destroy();
  }

  /** Closes the client's connections (watches included). */
  close(): Promise<void> {
    this.agent.destroy();
    return Promise.resolve();
  }

  /** Sends one request; resolves with the response (its body still to be read). */
  private send(method: string, url: string, headers: Record<string, string | string[]>, body: string | undefined, signal: AbortSignal, agent: http.Agent): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = this.transport.request(url, { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent, signal }, resolve);
      req.on('error', reject);
      req.end(body);
    });
  }

  writes(): number {
    return this.counts.POST + this.counts.PUT + this.counts.PATCH + this.counts.DELETE;
  }

  private url(path: string, query: RequestOptions['query']): string {
    let qs = '';
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) qs += `${qs ? '&' : '?'}${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`;
    return this.server + path + qs;
  }

  /** Headers for one request, with the credentials it uses (to hand back after a 401). */
  private async prepare(contentType?: string, accept = 'application/json'): Promise<{ headers: Record<string, string | string[]>; auth: Auth; agent: http.Agent }> {
    const headers: Record<string, string | string[]> = { accept, ...(this.userAgent ? { 'user-agent': this.userAgent } : {}) };
    const auth = await this.credentials.get();
    if (auth.authorization) headers['authorization'] = auth.authorization;
    const imp = this.config.impersonate;
    if (imp) {
      headers['impersonate-user'] = imp.user;
      if (imp.groups?.length) headers['impersonate-group'] = imp.groups;
      if (imp.uid) headers['impersonate-uid'] = imp.uid;
      for (const [k, v] of Object.entries(imp.extra ?? {})) headers[`impersonate-extra-${encodeURIComponent(k)}`] = v;
    }
    if (contentType) headers['content-type'] = contentType;
    return { headers, auth, agent: this.agentFor(auth) };
  }

  async request<T = Record<string, unknown>>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, opts: RequestOptions = {}): Promise<T> {
    await (opts.limiter ?? this.limiter).take();
    const verb: Verb = method === 'GET' ? (isListPath(path) ? 'LIST' : 'GET') : method;
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const { headers, auth, agent } = await this.prepare(body === undefined ? undefined : (opts.contentType ?? 'application/json'), opts.accept);
    const timeout = AbortSignal.timeout(this.requestTimeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let response: IncomingMessage;
    let text: string;
    try {
      response = await this.send(method, this.url(path, opts.query), headers, body, signal, agent);
      this.counts[verb]++;
      text = await readText(response);
    } catch (err) {
      // A server that accepted the connection and went silent: say which request and how long it waited.
      if (timeout.aborted && !opts.signal?.aborted) {
        this.closeIdleConnections();
        throw new RequestTimeoutError(method, path, this.requestTimeoutMs);
      }
      throw err;
    }
    const status = response.statusCode ?? 0;
    this.onRequest?.(verb, path, status);
    this.onReceived?.(verb, path, Buffer.byteLength(text));
    if (status === 401) await this.credentials.unauthorized(auth);
    if (status < 200 || status >= 300) {
      let reason = String(status);
      let message = text.slice(0, 2000);
      let detail: string | undefined;
      try {
        const st = JSON.parse(text) as { reason?: string; message?: string };
        reason = st.reason ?? reason;
        detail = st.message;
        message = st.message ?? message;
      } catch {
        // not a Status object
      }
      const error = new ApiError(status, reason, `${method} ${path}: ${status} ${message}`, method, path, detail);
      if (status === 401) error.renewableCredentials = this.credentials.renewable;
      throw error;
    }
    return (text ? JSON.parse(text) : {}) as T;
  }

  get<T = Record<string, unknown>>(ref: ObjectRef): Promise<T> {
    return this.request<T>('GET', pathFor(ref));
  }

  list<T = Record<string, unknown>>(
    ref: Omit<ObjectRef, 'name'>,
    query: RequestOptions['query'] = {},
    opts: ReadOptions = {},
  ): Promise<{ metadata: { resourceVersion: string; continue?: string }; items: T[] }> {
    return this.request('GET', pathFor({ ...ref, name: undefined }), { query, ...(opts.metadataOnly ? { accept: METADATA_LIST } : {}) });
  }

  /**
   * Server-side apply (force: kiln owns what it renders). fieldValidation=Ignore:
   * what kiln applies is built from types generated from the API's own schema
   * (imports/), and the server's default (Warn) would only add a response header
   * nobody reads, at ~20% more API-server CPU per StatefulSet apply (measured).
   * `dryRun`: the server runs the whole apply (defaulting, admission, field
   * ownership) and answers with the object it would store, storing nothing
   * (`dryRun=All`; `kiln diff`).
   */
  apply<T = Record<string, unknown>>(
    obj: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } },
    fieldManager: string,
    subresource?: 'status',
    opts: { dryRun?: boolean } = {},
  ): Promise<T> {
    return this.request<T>('PATCH', pathFor({ apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name }, subresource), {
      query: { fieldManager, force: true, fieldValidation: 'Ignore', ...(opts.dryRun ? { dryRun: 'All' } : {}) },
      body: obj,
      contentType: 'application/apply-patch+yaml',
    });
  }

  mergePatch<T = Record<string, unknown>>(ref: ObjectRef, patch: unknown, subresource?: string): Promise<T> {
    return this.request<T>('PATCH', pathFor(ref, subresource), { body: patch, contentType: 'application/merge-patch+json' });
  }

  create<T = Record<string, unknown>>(obj: { apiVersion: string; kind: string; metadata: { namespace?: string } }, subresource?: { name: string; sub: string }, limiter?: RateLimiter): Promise<T> {
    const path = subresource
      ? pathFor({ apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.metadata.namespace, name: subresource.name }, subresource.sub)
      : pathFor({ apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.metadata.namespace });
    return this.request<T>('POST', path, { body: obj, ...(limiter ? { limiter } : {}) });
  }

  /**
   * Creates on the same connections and credentials, waiting on a token bucket of their own (the
   * same QPS and burst): what an event recorder gets in client-go and controller-runtime, whose
   * broadcaster builds its own clientset from the manager's rest.Config. An Event then never takes
   * the token the next reconcile's write was waiting for (bench/apply: one Event per resource was
   * a seventh of the writes queued behind the QPS limit).
   */
  withOwnRateLimit(): Pick<KubeApi, 'create'> {
    const limiter = new RateLimiter(this.rate.qps, this.rate.burst);
    return { create: (obj, subresource) => this.create(obj, subresource, limiter) };
  }

  /** Delete with a UID precondition: never removes a same-named successor. */
  delete(ref: ObjectRef, uid?: string, propagationPolicy: 'Background' | 'Foreground' | 'Orphan' = 'Background'): Promise<unknown> {
    return this.request('DELETE', pathFor(ref), {
      body: { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy, ...(uid ? { preconditions: { uid } } : {}) },
    });
  }

  /**
   * Opens a watch and feeds events to `onEvent` until the stream ends (resolves)
   * or fails (rejects). `signal` stops it. With `metadataOnly`, each event's
   * object is a PartialObjectMetadata (ERROR events stay a Status).
   */
  async watch(ref: Omit<ObjectRef, 'name'>, query: RequestOptions['query'], onEvent: (e: WatchEvent) => void, signal: AbortSignal, opts: ReadOptions = {}): Promise<void> {
    await this.limiter.take();
    const path = pathFor({ ...ref, name: undefined });
    this.counts.WATCH++;
    // Our own controller, so the stream can be torn down however the loop ends.
    const stop = new AbortController();
    const forward = () => stop.abort();
    if (signal.aborted) stop.abort();
    signal.addEventListener('abort', forward, { once: true });
    try {
      const { headers, auth, agent } = await this.prepare(undefined, opts.metadataOnly ? METADATA_WATCH : undefined);
      const response = await this.send('GET', this.url(path, { ...query, watch: true, allowWatchBookmarks: true }), headers, undefined, stop.signal, agent);
      const code = response.statusCode ?? 0;
      this.onRequest?.('WATCH', path, code);
      if (code !== 200) {
        const text = await readText(response);
        if (code === 401) await this.credentials.unauthorized(auth);
        const error = new ApiError(code, String(code), `WATCH ${path}: ${code} ${text.slice(0, 500)}`, 'GET', path);
        if (code === 401) error.renewableCredentials = this.credentials.renewable;
        throw error;
      }
      const body = response;
      // Errors reach us through the line iterator; once we stop reading, the
      // abort below makes the stream emit one more, which nobody needs.
      body.on('error', () => {});
      const lines = createInterface({ input: body, crlfDelay: Infinity });
      try {
        for await (const line of lines) {
          this.onReceived?.('WATCH', path, Buffer.byteLength(line) + 1);
          if (!line.trim()) continue;
          onEvent(JSON.parse(line) as WatchEvent);
        }
      } finally {
        lines.close();
      }
    } catch (err) {
      // A stream torn down because the caller aborted fails with "aborted" (ECONNRESET): say
      // AbortError, so the caller knows it asked for this and does not count a failure.
      if (signal.aborted) throw Object.assign(new Error(`WATCH ${path}: aborted by the caller`), { name: 'AbortError' });
      throw err;
    } finally {
      signal.removeEventListener('abort', forward);
      stop.abort();
    }
  }
}

async function readText(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function isListPath(path: string): boolean {
  // /api/v1/namespaces/x/configmaps (list) vs /api/v1/namespaces/x/configmaps/name (get)
  const rest = path.replace(/^\/(api\/v1|apis\/[^/]+\/[^/]+)/, '').replace(/^\/namespaces\/[^/]+(?=\/)/, '');
  return rest.split('/').filter(Boolean).length === 1;
}
