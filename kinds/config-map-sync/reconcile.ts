/**
 * ConfigMapSync in apply mode: copies one ConfigMap into tenant namespaces with
 * the rights of the resource's own ServiceAccount.
 *
 * Identities:
 *  - deps.kc (the controller) only requests ServiceAccount tokens
 *    (`serviceaccounts/token` create) and patches the ConfigMapSync itself
 *    (its finalizer).
 *  - every read of the source, every namespace list and every read, write and
 *    delete in a target namespace is made with a bearer token for
 *    spec.serviceAccountName obtained through the TokenRequest API, so a tenant
 *    reaches only where its account may go.
 *
 * Copies carry owner labels (an ownerReference cannot cross namespaces), are
 * written with server-side apply only when they differ from the desired copy,
 * are pruned (UID precondition) when a namespace stops being a target, and a
 * same-named ConfigMap kiln does not own is never touched. Tokens are never
 * logged or returned: every message that leaves this module is scrubbed.
 */
import { ApiError, KubeClient } from '../../kube/client.js';
import type { ClusterConfig, ClusterConfigInput } from '../../kube/kubeconfig.js';
import { pathFor } from '../../kube/resources.js';
import { sourceOf, targetNamespaces, type ConfigMapSyncResource } from './chart.js';
import { render } from '../render.js';
import { ownerLabels } from '../shared/labels.js';
import type { K8sObject, KilnResource } from '../types.js';
import { matchesSelector, type LabelSelector } from '../../lib/context.js';
import { formatErrors, validate } from '../../validate/index.js';

export const CONFIGMAPSYNC_FINALIZER = 'kiln.dev/configmap-copies';

interface V1ConfigMap {
  metadata?: { name?: string; namespace?: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

interface V1Namespace {
  metadata?: { name?: string; labels?: Record<string, string> };
  status?: { phase?: string };
}

const CONFIG_MAP = { apiVersion: 'v1', kind: 'ConfigMap' };

const GROUP = 'kiln.dev';
const VERSION = 'v1alpha1';
const PLURAL = 'configmapsyncs';
/** Parallel requests per reconcile (targets are independent). */
const CONCURRENCY = 8;
/** The TokenRequest API's minimum. */
const MIN_TOKEN_SECONDS = 600;

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface ConfigMapSyncDeps {
  /** The controller's own identity (its cluster configuration or a client): used ONLY to request tokens and to patch the ConfigMapSync itself. */
  kc: ClusterConfigInput | KubeClient;
  /** 'kiln' */
  fieldManager: string;
  /** Shared token cache (one per deps.kc is created if absent). */
  tokens?: ServiceAccountTokens;
  log?: LogFn;
}

export interface ConfigMapSyncOutcome {
  /** Namespaces holding a current copy. */
  synced: string[];
  /** Targets that could not be written (or pruned), with the API's reason; never a token. */
  failed: { namespace: string; reason: string }[];
  /** Why the resource cannot make progress without a change from someone. */
  stalled?: { reason: string; message: string };
  /** Namespaces whose copy was removed. */
  pruned: string[];
}

// ---------------------------------------------------------------------------
// errors and scrubbing

interface ApiErrorInfo {
  code?: number;
  message: string;
  reason?: string;
}

const BEARER = /Bearer\s+[^\s"',;]+/gi;
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+/g;

/** Removes bearer credentials and anything that looks like a JWT, plus every token the cache holds. */
export function scrub(text: string, tokens?: ServiceAccountTokens): string {
  let out = text.replace(BEARER, 'Bearer [redacted]').replace(JWT, '[redacted-token]');
  if (tokens) out = tokens.redact(out);
  return out;
}

/** Status code and the API's own message (metav1.Status.message) from a client error. */
function apiError(err: unknown): ApiErrorInfo {
  if (err instanceof ApiError) {
    const message = err.detail || (err.status === 401 ? 'Unauthorized' : `HTTP ${err.status}`);
    return { code: err.status, message, reason: err.reason };
  }
  const e = err as { code?: unknown; body?: unknown; message?: unknown };
  const code = typeof e?.code === 'number' ? e.code : undefined;
  let status: { message?: unknown; reason?: unknown } | undefined;
  if (typeof e?.body === 'string') {
    try {
      status = JSON.parse(e.body) as typeof status;
    } catch {
      status = undefined;
    }
  } else if (e?.body && typeof e.body === 'object') {
    status = e.body as typeof status;
  }
  let message = typeof status?.message === 'string' && status.message ? status.message : undefined;
  if (!message) {
    if (code === 401) message = 'Unauthorized';
    else if (code !== undefined) message = `HTTP ${code}`;
    else message = err instanceof Error ? err.message : String(err);
  }
  return { code, message, reason: typeof status?.reason === 'string' ? status.reason : undefined };
}

const isCode = (err: unknown, code: number) => apiError(err).code === code;

// ---------------------------------------------------------------------------
// ServiceAccount tokens

interface CachedToken {
  token: string;
  refreshAt: number;
  expiresAt: number;
  config?: ClusterConfig;
  client?: KubeClient;
}

export interface ServiceAccountTokensOptions {
  /** Requested lifetime; at least 600 (the API's minimum). Default 600. */
  expirationSeconds?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/**
 * TokenRequest per (namespace, serviceAccount), cached until 80% of the
 * lifetime the API granted. Concurrent callers share one request. Tokens are
 * never logged; `redact()` removes any cached token from a string.
 */
export class ServiceAccountTokens {
  private readonly cache = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  private readonly controller: KubeClient;
  private readonly expirationSeconds: number;
  private readonly now: () => number;

  constructor(kc: ClusterConfigInput | KubeClient, options: ServiceAccountTokensOptions = {}) {
    this.controller = kc instanceof KubeClient ? kc : new KubeClient(kc, { qps: 0 });
    this.expirationSeconds = Math.max(MIN_TOKEN_SECONDS, Math.floor(options.expirationSeconds ?? MIN_TOKEN_SECONDS));
    this.now = options.now ?? Date.now;
  }

  private static key(namespace: string, serviceAccount: string): string {
    return `${namespace}/${serviceAccount}`;
  }

  private async entry(namespace: string, serviceAccount: string): Promise<CachedToken> {
    const key = ServiceAccountTokens.key(namespace, serviceAccount);
    const cached = this.cache.get(key);
    if (cached && this.now() < cached.refreshAt) return cached;
    const inflight = this.pending.get(key);
    if (inflight) return inflight;
    const p = this.request(namespace, serviceAccount).then(
      (fresh) => {
        this.cache.set(key, fresh);
        this.pending.delete(key);
        return fresh;
      },
      (err: unknown) => {
        this.pending.delete(key);
        throw err;
      },
    );
    this.pending.set(key, p);
    return p;
  }

  private async request(namespace: string, serviceAccount: string): Promise<CachedToken> {
    const issuedAt = this.now();
    const res = await this.controller.request<{ status?: { token?: string; expirationTimestamp?: string } }>(
      'POST',
      pathFor({ apiVersion: 'v1', kind: 'ServiceAccount', namespace, name: serviceAccount }, 'token'),
      { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: this.expirationSeconds, audiences: [] } } },
    );
    const token = res.status?.token;
    if (!token) throw new Error(`TokenRequest for ServiceAccount ${namespace}/${serviceAccount} returned no token`);
    const exp = res.status?.expirationTimestamp;
    const expMs = exp ? Date.parse(String(exp)) : NaN;
    const expiresAt = Number.isFinite(expMs) ? expMs : issuedAt + this.expirationSeconds * 1000;
    const lifetime = Math.max(0, expiresAt - issuedAt);
    return { token, expiresAt, refreshAt: issuedAt + lifetime * 0.8 };
  }

  /** A bearer token for the ServiceAccount (cached until 80% of its lifetime). */
  async get(namespace: string, serviceAccount: string): Promise<string> {
    return (await this.entry(namespace, serviceAccount)).token;
  }

  /**
   * The controller's server and CA with the ServiceAccount's bearer token (no
   * client certificate, no impersonation).
   */
  async kubeConfigFor(namespace: string, serviceAccount: string): Promise<ClusterConfig> {
    const e = await this.entry(namespace, serviceAccount);
    e.config ??= tokenConfig(this.controller.config, e.token);
    return e.config;
  }

  /** A client with the ServiceAccount's token; the same one while the token is current, so its connections are reused. */
  async clientFor(namespace: string, serviceAccount: string): Promise<KubeClient> {
    const e = await this.entry(namespace, serviceAccount);
    e.config ??= tokenConfig(this.controller.config, e.token);
    e.client ??= new KubeClient(e.config, { qps: 0 });
    return e.client;
  }

  /** The controller identity's client (TokenRequests and the ConfigMapSync's own finalizer). */
  controllerClient(): KubeClient {
    return this.controller;
  }

  /** Forget the token (e.g. after a 401: the ServiceAccount was recreated or the token revoked). */
  invalidate(namespace: string, serviceAccount: string): void {
    this.cache.delete(ServiceAccountTokens.key(namespace, serviceAccount));
  }

  /** Replaces every token this cache holds in `text`. */
  redact(text: string): string {
    let out = text;
    for (const e of this.cache.values()) if (e.token && out.includes(e.token)) out = out.split(e.token).join('[redacted-token]');
    return out;
  }
}

function tokenConfig(base: ClusterConfig, token: string): ClusterConfig {
  return { server: base.server, ca: base.ca, insecureSkipTLSVerify: base.insecureSkipTLSVerify, tlsServerName: base.tlsServerName, proxyUrl: base.proxyUrl, token };
}

const sharedTokens = new WeakMap<object, ServiceAccountTokens>();
function tokensFor(deps: ConfigMapSyncDeps): ServiceAccountTokens {
  if (deps.tokens) return deps.tokens;
  let t = sharedTokens.get(deps.kc);
  if (!t) {
    t = new ServiceAccountTokens(deps.kc);
    sharedTokens.set(deps.kc, t);
  }
  return t;
}

// ---------------------------------------------------------------------------
// helpers

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function sameMap(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const ka = Object.keys(a ?? {});
  const kb = Object.keys(b ?? {});
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b ?? {}, k) && (b ?? {})[k] === (a ?? {})[k]);
}

/** Every entry of `want` present in `have` (other managers may add their own labels). */
function containsMap(have: Record<string, string> | undefined, want: Record<string, string> | undefined): boolean {
  return Object.entries(want ?? {}).every(([k, v]) => (have ?? {})[k] === v);
}

function ownedBy(cm: V1ConfigMap, owner: Record<string, string>): boolean {
  return containsMap(cm.metadata?.labels, owner);
}

function selectorString(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

function extraKeys(live: Record<string, string> | undefined, desired: Record<string, unknown> | undefined): string[] {
  return Object.keys(live ?? {}).filter((k) => !Object.hasOwn(desired ?? {}, k));
}

function sortedUnique(xs: Iterable<string>): string[] {
  return [...new Set(xs)].sort();
}

// ---------------------------------------------------------------------------
// reconcile

/** What the controller identity needs (finalizer patches). */
interface ControllerCtx {
  resource: KilnResource;
  namespace: string;
  deps: ConfigMapSyncDeps;
  log: LogFn;
}

interface Ctx extends ControllerCtx {
  cms: ConfigMapSyncResource;
  serviceAccount: string;
  owner: Record<string, string>;
  ownerSelector: string;
  tokens: ServiceAccountTokens;
  core: KubeClient; // the ServiceAccount token's identity
  sawUnauthorized: boolean;
}

const who = (r: KilnResource) => `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;

function message(ctx: Pick<Ctx, 'tokens'>, err: unknown): string {
  return scrub(apiError(err).message, ctx.tokens);
}

function note(ctx: Ctx, err: unknown): string {
  if (isCode(err, 401)) ctx.sawUnauthorized = true;
  return message(ctx, err);
}

/** Owned ConfigMaps in `ns` (label selector), or the error. */
async function listOwned(ctx: Ctx, ns: string): Promise<V1ConfigMap[]> {
  const list = await ctx.core.list<V1ConfigMap>({ ...CONFIG_MAP, namespace: ns }, { labelSelector: ctx.ownerSelector });
  return list.items.filter((cm) => ownedBy(cm, ctx.owner));
}

/** Deletes `cm` with a UID precondition; false when it was already gone or replaced. */
async function deleteCopy(ctx: Ctx, cm: V1ConfigMap): Promise<boolean> {
  const name = cm.metadata!.name!;
  const ns = cm.metadata!.namespace!;
  try {
    await ctx.core.request('DELETE', pathFor({ ...CONFIG_MAP, namespace: ns, name }), {
      body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: cm.metadata!.uid! } },
    });
    ctx.log('info', 'deleted ConfigMap copy', { resource: who(ctx.resource), namespace: ns, name });
    return true;
  } catch (err) {
    // 404: already gone; 409: the UID changed, so it is someone else's object now.
    if (isCode(err, 404) || isCode(err, 409)) return false;
    throw err;
  }
}

/** Removes every owned copy in `ns` (or the given ones); true when something was deleted. */
async function removeCopies(ctx: Ctx, ns: string, copies?: V1ConfigMap[]): Promise<boolean> {
  let removed = false;
  for (const cm of copies ?? (await listOwned(ctx, ns))) {
    if (await deleteCopy(ctx, cm)) removed = true;
  }
  return removed;
}

/** Owned copies in every namespace, when the token may list ConfigMaps cluster-wide; undefined otherwise. */
async function listOwnedEverywhere(ctx: Ctx): Promise<Map<string, V1ConfigMap[]> | undefined> {
  try {
    const list = await ctx.core.list<V1ConfigMap>(CONFIG_MAP, { labelSelector: ctx.ownerSelector });
    const byNs = new Map<string, V1ConfigMap[]>();
    for (const cm of list.items) {
      if (!ownedBy(cm, ctx.owner) || !cm.metadata?.namespace) continue;
      byNs.set(cm.metadata.namespace, [...(byNs.get(cm.metadata.namespace) ?? []), cm]);
    }
    return byNs;
  } catch (err) {
    if (isCode(err, 403)) return undefined; // the usual case: a tenant account has namespaced rights only
    throw err;
  }
}

/** A JSON patch of the ConfigMapSync itself, with the controller's identity. */
async function jsonPatchSelf(ctx: ControllerCtx, body: unknown[]): Promise<void> {
  const controller = ctx.deps.kc instanceof KubeClient ? ctx.deps.kc : tokensFor(ctx.deps).controllerClient();
  await controller.request(
    'PATCH',
    `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(ctx.namespace)}/${PLURAL}/${encodeURIComponent(ctx.resource.metadata.name)}`,
    { body, contentType: 'application/json-patch+json' },
  );
}

async function addFinalizer(ctx: ControllerCtx): Promise<void> {
  const existing = ctx.resource.metadata['finalizers'] as string[] | undefined;
  const body = existing && existing.length > 0
    ? [
        { op: 'test', path: '/metadata/finalizers', value: existing },
        { op: 'add', path: '/metadata/finalizers/-', value: CONFIGMAPSYNC_FINALIZER },
      ]
    : [
        // A JSON patch test of a missing path against null passes: nobody added finalizers meanwhile.
        { op: 'test', path: '/metadata/finalizers', value: null },
        { op: 'add', path: '/metadata/finalizers', value: [CONFIGMAPSYNC_FINALIZER] },
      ];
  await jsonPatchSelf(ctx, body);
  ctx.log('info', 'added finalizer', { resource: who(ctx.resource), finalizer: CONFIGMAPSYNC_FINALIZER });
}

async function removeFinalizer(ctx: ControllerCtx): Promise<void> {
  const existing = (ctx.resource.metadata['finalizers'] as string[] | undefined) ?? [];
  const i = existing.indexOf(CONFIGMAPSYNC_FINALIZER);
  if (i < 0) return;
  try {
    await jsonPatchSelf(ctx, [
      { op: 'test', path: `/metadata/finalizers/${i}`, value: CONFIGMAPSYNC_FINALIZER },
      { op: 'remove', path: `/metadata/finalizers/${i}` },
    ]);
  } catch (err) {
    if (isCode(err, 404)) return; // already gone
    throw err;
  }
  ctx.log('info', 'removed finalizer', { resource: who(ctx.resource), finalizer: CONFIGMAPSYNC_FINALIZER });
}

/** Namespaces recorded in status: synced, and failed (a failed target may still hold a stale copy). */
function recordedNamespaces(resource: KilnResource): { synced: string[]; all: string[] } {
  const status = (resource.status ?? {}) as { synced?: unknown; failed?: unknown };
  const synced = Array.isArray(status.synced) ? status.synced.filter((s): s is string => typeof s === 'string') : [];
  const failed = Array.isArray(status.failed)
    ? status.failed.map((f) => (f as { namespace?: unknown })?.namespace).filter((s): s is string => typeof s === 'string')
    : [];
  return { synced: sortedUnique(synced), all: sortedUnique([...synced, ...failed]) };
}

async function finalize(ctx: Ctx): Promise<ConfigMapSyncOutcome> {
  const recorded = recordedNamespaces(ctx.resource);
  const outcome: ConfigMapSyncOutcome = { synced: [], failed: [], pruned: [] };
  let everywhere: Map<string, V1ConfigMap[]> | undefined;
  try {
    everywhere = await listOwnedEverywhere(ctx);
  } catch (err) {
    ctx.log('warn', 'cannot list ConfigMaps in all namespaces for cleanup', { resource: who(ctx.resource), error: note(ctx, err) });
  }
  // Candidates: every namespace holding a copy (one cluster-wide list, if allowed), else what status
  // recorded, the listed targets, and every namespace the token may list, one list each.
  const candidates = new Set<string>(everywhere?.keys() ?? []);
  if (!everywhere) {
    const listed = ctx.cms.spec?.targets?.namespaces;
    for (const n of [...recorded.all, ...(Array.isArray(listed) ? listed : [])]) if (typeof n === 'string') candidates.add(n);
    try {
      const nsList = await ctx.core.list<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace' });
      for (const n of nsList.items) if (n.metadata?.name) candidates.add(n.metadata.name);
    } catch (err) {
      if (!isCode(err, 403)) ctx.log('warn', 'cannot list namespaces for cleanup', { resource: who(ctx.resource), error: note(ctx, err) });
    }
  }
  const recordedSet = new Set(recorded.all);
  const results = await mapLimit([...candidates].sort(), CONCURRENCY, async (ns) => {
    try {
      return { ns, removed: await removeCopies(ctx, ns, everywhere?.get(ns)) };
    } catch (err) {
      // A namespace the token may not read and that never held a copy is simply not ours to clean.
      if (isCode(err, 403) && !recordedSet.has(ns)) return { ns, removed: false };
      return { ns, removed: false, err };
    }
  });
  let transient = false;
  for (const r of results) {
    if (r.removed) outcome.pruned.push(r.ns);
    if (r.err !== undefined) {
      const info = apiError(r.err);
      outcome.failed.push({ namespace: r.ns, reason: note(ctx, r.err) });
      if (info.code !== 403 && info.code !== 401) transient = true;
    }
  }
  if (transient) {
    // Keep the finalizer; the caller retries.
    outcome.synced = outcome.failed.map((f) => f.namespace).filter((ns) => recorded.synced.includes(ns));
    return outcome;
  }
  if (outcome.failed.length > 0) {
    ctx.log('warn', 'copies left in place: the ServiceAccount may not delete them', {
      resource: who(ctx.resource), namespaces: outcome.failed.map((f) => f.namespace),
    });
  }
  await removeFinalizer(ctx);
  return outcome;
}

type TargetResult =
  | { ns: string; kind: 'synced'; wrote: boolean }
  | { ns: string; kind: 'foreign'; name: string }
  | { ns: string; kind: 'failed'; reason: string };

async function syncTarget(ctx: Ctx, desired: K8sObject): Promise<TargetResult> {
  const ns = desired.metadata.namespace!;
  const name = desired.metadata.name;
  let live: V1ConfigMap | undefined;
  try {
    let owned: V1ConfigMap[] | undefined;
    try {
      owned = await listOwned(ctx, ns);
    } catch (err) {
      if (!isCode(err, 403)) throw err;
      owned = undefined; // may get but not list: fall back to a read by name
    }
    live = owned?.find((cm) => cm.metadata?.name === name);
    if (!live) {
      try {
        live = await ctx.core.get<V1ConfigMap>({ ...CONFIG_MAP, namespace: ns, name });
      } catch (err) {
        if (!isCode(err, 404)) throw err;
      }
      if (live && !ownedBy(live, ctx.owner)) return { ns, kind: 'foreign', name };
    }
    // Copies left under another name (the source was renamed).
    for (const stale of owned ?? []) if (stale.metadata?.name !== name) await deleteCopy(ctx, stale);

    const data = desired['data'] as Record<string, string> | undefined;
    const binaryData = desired['binaryData'] as Record<string, string> | undefined;
    const current = live !== undefined &&
      containsMap(live.metadata?.labels, desired.metadata.labels) &&
      containsMap(live.metadata?.annotations, desired.metadata.annotations) &&
      sameMap(live.data, data) &&
      sameMap(live.binaryData, binaryData);
    if (current) return { ns, kind: 'synced', wrote: false };

    const body: Record<string, unknown> = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name,
        namespace: ns,
        labels: desired.metadata.labels,
        annotations: desired.metadata.annotations,
        // An existing copy is only updated while it is still the object we read.
        ...(live?.metadata?.uid ? { uid: live.metadata.uid } : {}),
      },
      // An absent map releases every key kiln applied before, so nothing needs an explicit {}.
      ...(data ? { data } : {}),
      ...(binaryData ? { binaryData } : {}),
    };
    const applied = await ctx.core.apply<V1ConfigMap>(body as never, ctx.deps.fieldManager);
    // Keys another field manager added to the copy survive an apply: drop them, so the copy equals the source.
    const extraData = extraKeys(applied.data, data);
    const extraBinary = extraKeys(applied.binaryData, binaryData);
    if (extraData.length > 0 || extraBinary.length > 0) {
      const ops = [
        { op: 'test', path: '/metadata/uid', value: applied.metadata?.uid },
        ...extraData.map((k) => ({ op: 'remove', path: `/data/${k.replace(/~/g, '~0').replace(/\//g, '~1')}` })),
        ...extraBinary.map((k) => ({ op: 'remove', path: `/binaryData/${k.replace(/~/g, '~0').replace(/\//g, '~1')}` })),
      ];
      await ctx.core.request('PATCH', pathFor({ ...CONFIG_MAP, namespace: ns, name }), {
        body: ops, contentType: 'application/json-patch+json', query: { fieldManager: ctx.deps.fieldManager },
      });
    }
    ctx.log('info', live ? 'updated ConfigMap copy' : 'created ConfigMap copy', { resource: who(ctx.resource), namespace: ns, name });
    return { ns, kind: 'synced', wrote: true };
  } catch (err) {
    const code = apiError(err).code;
    const reason = live?.metadata?.uid && (code === 409 || code === 422)
      ? `ConfigMap ${ns}/${name} changed while it was being synced (UID precondition): ${note(ctx, err)}`
      : note(ctx, err);
    ctx.log('warn', 'cannot sync ConfigMap copy', { resource: who(ctx.resource), namespace: ns, name, code, error: reason });
    return { ns, kind: 'failed', reason };
  }
}

/**
 * Reconciles one ConfigMapSync (already fetched, possibly with
 * deletionTimestamp). status.synced (and status.failed) of the resource are
 * the namespaces that may hold a copy from an earlier reconcile.
 */
export async function reconcileConfigMapSync(resource: KilnResource, deps: ConfigMapSyncDeps): Promise<ConfigMapSyncOutcome> {
  const log: LogFn = deps.log ?? (() => undefined);
  const tokens = tokensFor(deps);
  const recorded = recordedNamespaces(resource);
  const untouched = (stalled: ConfigMapSyncOutcome['stalled']): ConfigMapSyncOutcome => ({
    // Nothing was checked or changed: keep what status recorded, so a later prune still knows it.
    synced: recorded.synced, failed: [], pruned: [], stalled,
  });

  const finalizers = (resource.metadata['finalizers'] as string[] | undefined) ?? [];
  const deleting = Boolean(resource.metadata['deletionTimestamp']);
  if (deleting && !finalizers.includes(CONFIGMAPSYNC_FINALIZER)) return { synced: [], failed: [], pruned: [] };

  const v = validate(resource);
  let cms: ConfigMapSyncResource;
  if (v.ok) {
    cms = v.resource as ConfigMapSyncResource;
  } else {
    const msg = scrub(formatErrors(v.errors), tokens);
    log('warn', 'invalid ConfigMapSync', { resource: who(resource), error: msg });
    // Cleanup needs only the ServiceAccount (and status): an invalid spec must not hold a deletion forever.
    const sa = (resource.spec as { serviceAccountName?: unknown } | undefined)?.serviceAccountName;
    if (!deleting || typeof sa !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(sa)) {
      return untouched({ reason: 'InvalidSpec', message: msg });
    }
    cms = resource as ConfigMapSyncResource;
  }
  const namespace = resource.metadata.namespace ?? 'default';
  const owner = ownerLabels({ ...cms, metadata: { ...cms.metadata, namespace } });
  const serviceAccount = cms.spec.serviceAccountName;

  const base = { resource, cms, namespace, serviceAccount, owner, ownerSelector: selectorString(owner), deps, tokens, log, sawUnauthorized: false };

  if (!deleting && !finalizers.includes(CONFIGMAPSYNC_FINALIZER)) {
    await addFinalizer(base);
  }

  let core: KubeClient;
  try {
    core = await tokens.clientFor(namespace, serviceAccount);
  } catch (err) {
    const info = apiError(err);
    // kiln may request tokens only where the platform admin bound its token ClusterRole: say how to grant it.
    const hint = info.code === 403 && !/being terminated/.test(info.message)
      ? ` (kiln may request ServiceAccount tokens only in namespaces where the platform admin bound its ClusterRole <install name>-controller-serviceaccount-tokens with a RoleBinding, e.g. kiln install --token-namespace ${namespace})`
      : '';
    const msg = `TokenRequest for ServiceAccount ${namespace}/${serviceAccount}: ${scrub(info.message, tokens)}${hint}`;
    log('warn', 'cannot obtain a ServiceAccount token', { resource: who(resource), code: info.code, error: msg });
    if (deleting && (info.code === 404 || (info.code === 403 && /being terminated/.test(info.message)))) {
      // The ServiceAccount is gone, or its namespace is being deleted (no TokenRequest there any more).
      // kiln never uses its own rights in tenant namespaces, so the copies stay: say so, and do not
      // hold the deletion forever.
      await removeFinalizer(base);
      return { synced: [], pruned: [], failed: recorded.all.map((ns) => ({ namespace: ns, reason: `copy left in place: ${msg}` })) };
    }
    return untouched({ reason: 'TokenRequestFailed', message: msg });
  }
  const ctx: Ctx = { ...base, core };
  try {
    if (deleting) return await finalize(ctx);
    return await sync(ctx, recorded);
  } finally {
    if (ctx.sawUnauthorized) tokens.invalidate(namespace, serviceAccount);
  }
}

async function sync(ctx: Ctx, recorded: { synced: string[]; all: string[] }): Promise<ConfigMapSyncOutcome> {
  const { cms, resource, log } = ctx;
  const source = sourceOf(cms);
  let src: V1ConfigMap;
  try {
    src = await ctx.core.get<V1ConfigMap>({ ...CONFIG_MAP, namespace: source.namespace, name: source.name });
  } catch (err) {
    const msg = `ConfigMap ${source.namespace}/${source.name}: ${note(ctx, err)}`;
    log('warn', 'cannot read the source ConfigMap', { resource: who(resource), error: msg });
    return { synced: recorded.synced, failed: [], pruned: [], stalled: { reason: 'SourceUnreadable', message: msg } };
  }

  const stalls: { reason: string; message: string }[] = [];
  let selected: string[] = [];
  let targetsKnown = true;
  const selector = cms.spec.targets.namespaceSelector as LabelSelector | undefined;
  if (selector) {
    try {
      const list = await ctx.core.list<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace' });
      selected = list.items
        .filter((n: V1Namespace) => n.status?.phase !== 'Terminating' && matchesSelector(n.metadata?.labels, selector))
        .map((n) => n.metadata!.name!);
    } catch (err) {
      targetsKnown = false;
      stalls.push({ reason: 'NamespacesUnreadable', message: `spec.targets.namespaceSelector: cannot list namespaces: ${note(ctx, err)}` });
    }
  }

  const desired = render(cms, {
    configMapSync: { source: { data: src.data, binaryData: src.binaryData }, selectedNamespaces: selected },
  }).filter((o) => o.kind === 'ConfigMap' && o.metadata.namespace);
  const targets = new Set(targetNamespaces(cms, selected));

  const results = await mapLimit(desired, CONCURRENCY, (d) => syncTarget(ctx, d));
  const outcome: ConfigMapSyncOutcome = { synced: [], failed: [], pruned: [] };
  const foreign: string[] = [];
  for (const r of results) {
    if (r.kind === 'synced') outcome.synced.push(r.ns);
    else if (r.kind === 'failed') outcome.failed.push({ namespace: r.ns, reason: r.reason });
    else {
      const m = `${r.ns}/${r.name} exists and is not owned by kiln`;
      foreign.push(m);
      outcome.failed.push({ namespace: r.ns, reason: `ConfigMap ${m}` });
    }
  }
  if (foreign.length > 0) {
    log('warn', 'ConfigMap exists and is not owned by kiln; left untouched', { resource: who(resource), configMaps: foreign });
    stalls.unshift({ reason: 'ForeignConfigMap', message: `ConfigMap ${foreign.join(', ')}` });
  }

  // Prune namespaces that held a copy (or failed to) and are no longer targets.
  if (targetsKnown) {
    const gone = recorded.all.filter((ns) => !targets.has(ns));
    const pruneResults = await mapLimit(gone, CONCURRENCY, async (ns) => {
      try {
        return { ns, removed: await removeCopies(ctx, ns) };
      } catch (err) {
        return { ns, removed: false, reason: `prune: ${note(ctx, err)}` };
      }
    });
    for (const p of pruneResults) {
      if (p.removed) outcome.pruned.push(p.ns);
      if (p.reason !== undefined) outcome.failed.push({ namespace: p.ns, reason: p.reason });
    }
  } else {
    // Unknown targets: keep the recorded namespaces that were not re-synced, so nothing is forgotten.
    for (const ns of recorded.synced) if (!targets.has(ns) && !outcome.synced.includes(ns)) outcome.synced.push(ns);
  }

  outcome.synced.sort();
  outcome.failed.sort((a, b) => a.namespace.localeCompare(b.namespace));
  outcome.pruned.sort();
  if (stalls.length > 0) {
    outcome.stalled = { reason: stalls[0]!.reason, message: stalls.map((s) => s.message).join('; ') };
  }
  return outcome;
}
