/**
 * An in-memory API server behind the KubeApi interface, for unit tests of
 * code that holds a client (reconcilers, and the informers that feed them),
 * as controller-runtime's pkg/client/fake is for Go controllers. Integration
 * tests keep the real kube-apiserver; this is for deciding-logic tests that
 * need to run in milliseconds and fail with a readable diff.
 *
 * What it does as the API server does:
 * - objects keyed by apiVersion, kind (its REST plural), namespace and name;
 *   uid, creationTimestamp, a resourceVersion from one counter that moves on
 *   every change (and not on a write that changes nothing), a generation that
 *   moves only when something outside metadata and status changes (a CRD with
 *   a status subresource), the status written only through `status`;
 * - server-side apply (always forced, as KubeClient.apply sends it), with
 *   managedFields kept simply: each (manager, operation, subresource) owns the
 *   leaf paths it last set, lists are atomic except `conditions` (a map keyed
 *   by `type`); a field an applier stops sending goes when no one else owns
 *   it; another manager's write takes the fields it sets. managedFields come
 *   back as FieldsV1, so code reading field sets reads real-looking ones;
 * - merge patch, create (generateName too), update, delete with a UID
 *   precondition, finalizers (deletionTimestamp, gone when the last one is
 *   removed), preconditions on resourceVersion and uid; 404, 409 and 422 as
 *   ApiError with the reason and message the real server gives;
 * - list with label selectors (=, ==, !=, exists, !exists, in, notin),
 *   pagination (limit/continue) and metadata-only answers; watch from a
 *   resourceVersion (history replayed), label-selector transitions as
 *   ADDED/DELETED, events delivered asynchronously and in order.
 *
 * What it does not: admission, defaulting, schema validation, field
 * validation, garbage collection of dependents (delete them in the test),
 * namespace existence, strategic-merge or JSON patches (415), apply
 * conflicts without force, bookmarks, watch expiry (410).
 *
 * Tests drive it, see what was sent (`actions`, `counts`) and inject failures
 * (`reactor`). It imports nothing but kube/.
 */
import { randomUUID } from 'node:crypto';
import type { KubeApi, ReadOptions, RequestOptions, Verb, WatchEvent } from './client.js';
import { ApiError } from './errors.js';
import { kindInfo, type ObjectRef } from './resources.js';

type Json = Record<string, unknown>;

export interface FakeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** One call the code under test made, as client-go's fake records its Actions. */
export interface FakeAction {
  verb: Verb;
  apiVersion: string;
  /** The REST plural (the kind is not known for a request by path to an absent object). */
  resource: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  /** apply, merge (merge patch), update (PUT), create, delete, get, list, watch. */
  op: 'apply' | 'merge' | 'update' | 'create' | 'delete' | 'get' | 'list' | 'watch';
  fieldManager?: string;
  body?: unknown;
}

interface Entry {
  manager: string;
  operation: 'Apply' | 'Update';
  subresource?: string;
  apiVersion: string;
  time: string;
  /** Leaf paths, each a JSON array of FieldsV1 segments (`f:name`, `k:{"type":"Ready"}`). */
  paths: Set<string>;
}

interface Stored {
  obj: FakeObject;
  owners: Map<string, Entry>;
}

interface Target {
  apiVersion: string;
  resource: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

interface HistoryEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  typeKey: string;
  old?: FakeObject;
  obj: FakeObject;
}

interface Watcher {
  typeKey: string;
  namespace?: string;
  selector: (labels: Record<string, string> | undefined) => boolean;
  metadataOnly: boolean;
  queue: WatchEvent[];
  deliver: (e: WatchEvent) => void;
  scheduled: boolean;
}

const MERGE_PATCH = 'application/merge-patch+json';
const APPLY_PATCH = 'application/apply-patch+yaml';
/** Fields of metadata the server sets or that name the object: in no field set. */
const SERVER_METADATA = new Set([
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'managedFields',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'generateName',
  'selfLink',
]);
/** Lists merged by key in server-side apply (the rest are atomic): the kstatus conditions, by type. */
const LIST_MAP_KEYS: Record<string, string> = { conditions: 'type' };

const clone = <T>(v: T): T => (v === undefined ? v : structuredClone(v));
const isMap = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);
const timestamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => sameJson(x, (b as unknown[])[i]));
  const ka = Object.keys(a).filter((k) => (a as Json)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Json)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Json)[k], (b as Json)[k]));
}

/** The merge key of `field`'s list when its items are maps that all carry it. */
function listKey(field: string | undefined, value: unknown): string | undefined {
  const key = field === undefined ? undefined : LIST_MAP_KEYS[field];
  return key && Array.isArray(value) && value.every((i) => isMap(i) && i[key] !== undefined) ? key : undefined;
}

/** The leaf paths `value` sets (what a manager comes to own by sending it). */
function leafPaths(value: unknown, prefix: string[] = [], field?: string): string[][] {
  const key = listKey(field, value);
  if (key) return (value as Json[]).flatMap((item) => leafPaths(item, [...prefix, `k:${JSON.stringify({ [key]: item[key] })}`]));
  if (!isMap(value) || Object.keys(value).length === 0) return prefix.length ? [prefix] : [];
  return Object.entries(value).flatMap(([k, v]) => (v === undefined ? [] : leafPaths(v, [...prefix, `f:${k}`], k)));
}

/** The paths of an object a write of `part` (status or the rest) may set. */
function ownablePaths(obj: Json, subresource: string | undefined): string[][] {
  if (subresource === 'status') return obj['status'] === undefined ? [] : leafPaths(obj['status'], ['f:status'], 'status');
  const { apiVersion: _a, kind: _k, status: _s, metadata, ...rest } = obj;
  const meta = Object.fromEntries(Object.entries(isMap(metadata) ? metadata : {}).filter(([k]) => !SERVER_METADATA.has(k)));
  return [...(Object.keys(meta).length ? leafPaths(meta, ['f:metadata'], 'metadata') : []), ...leafPaths(rest)];
}

/** Merges an applied configuration into the live object: maps field by field, keyed lists item by item, other values replaced. */
function mergeApplied(live: unknown, applied: unknown, field?: string): unknown {
  const key = listKey(field, applied);
  if (key && Array.isArray(live)) {
    const out = clone(live) as Json[];
    for (const item of applied as Json[]) {
      const at = out.findIndex((l) => isMap(l) && String(l[key]) === String(item[key]));
      if (at >= 0) out[at] = mergeApplied(out[at], item) as Json;
      else out.push(clone(item));
    }
    return out;
  }
  if (!isMap(applied) || !isMap(live)) return clone(applied);
  const out: Json = { ...clone(live) };
  for (const [k, v] of Object.entries(applied)) if (v !== undefined) out[k] = mergeApplied(live[k], v, k);
  return out;
}

/** RFC 7386. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isMap(patch)) return clone(patch);
  const out: Json = isMap(target) ? { ...clone(target) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Removes the field at `path` (and the maps and keyed items it leaves empty). */
function removePath(obj: Json, path: string[]): void {
  const parents: { container: Json | Json[]; at: string | number }[] = [];
  let node: unknown = obj;
  for (const seg of path) {
    if (seg.startsWith('f:') && isMap(node)) {
      parents.push({ container: node, at: seg.slice(2) });
      node = node[seg.slice(2)];
    } else if (seg.startsWith('k:') && Array.isArray(node)) {
      const key = JSON.parse(seg.slice(2)) as Json;
      const at = node.findIndex((i) => isMap(i) && Object.entries(key).every(([k, v]) => String(i[k]) === String(v)));
      if (at < 0) return;
      parents.push({ container: node as Json[], at });
      node = node[at];
    } else {
      return;
    }
  }
  for (let i = parents.length - 1; i >= 0; i--) {
    const { container, at } = parents[i]!;
    const value = Array.isArray(container) ? container[at as number] : container[at as string];
    const empty = i === parents.length - 1 || (isMap(value) && Object.keys(value).length === 0) || (Array.isArray(value) && value.length === 0);
    if (!empty) return;
    if (Array.isArray(container)) container.splice(at as number, 1);
    else delete container[at as string];
  }
}

/** FieldsV1, as managedFields carry it. */
function fieldsV1(paths: Iterable<string>): Json {
  const root: Json = {};
  for (const p of paths) {
    let node = root;
    for (const seg of JSON.parse(p) as string[]) node = (node[seg] ??= {}) as Json;
  }
  return root;
}

/** Is `path` the key field of a keyed list item (`...k:{"type":"Ready"}, f:type`)? */
function isItemKey(path: string[]): boolean {
  const item = path[path.length - 2];
  return !!item?.startsWith('k:') && Object.keys(JSON.parse(item.slice(2)) as object).some((k) => path[path.length - 1] === `f:${k}`);
}

/** A server's answer never comes in the same tick as the call. */
const roundTrip = () => Promise.resolve();

const isPrefix = (a: string[], b: string[]) => a.length <= b.length && a.every((s, i) => s === b[i]);

/** `labelSelector` as a predicate (the equality- and set-based forms). */
export function labelMatcher(selector: string | undefined): (labels: Record<string, string> | undefined) => boolean {
  if (!selector) return () => true;
  const terms = selector
    .match(/([^,(]+(\([^)]*\))?)/g)!
    .map((t) => t.trim())
    .filter(Boolean);
  const tests = terms.map((term): ((l: Record<string, string>) => boolean) => {
    let m = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    if (m) {
      const [, key, op, list] = m as unknown as [string, string, string, string];
      const values = list.split(',').map((v) => v.trim());
      return op === 'in' ? (l) => key in l && values.includes(l[key]!) : (l) => !(key in l) || !values.includes(l[key]!);
    }
    m = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (m) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      return op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value;
    }
    if (term.startsWith('!')) return (l) => !(term.slice(1) in l);
    return (l) => term in l;
  });
  return (labels) => tests.every((t) => t(labels ?? {}));
}

/** `/api/v1/namespaces/ns/secrets/name/status` -> its parts. */
function parsePath(path: string): Target {
  const m = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))\/(.*)$/.exec(path.split('?')[0]!);
  if (!m) throw new Error(`fake client: not an API path: ${path}`);
  // exactly one of the two alternatives matched
  const apiVersion = (m[1] ?? m[2])!;
  let segs = m[3]!.split('/').filter(Boolean).map(decodeURIComponent);
  let namespace: string | undefined;
  if (segs[0] === 'namespaces' && segs.length >= 3) {
    namespace = segs[1];
    segs = segs.slice(2);
  }
  const [resource, name, subresource] = segs;
  if (!resource) throw new Error(`fake client: not an API path: ${path}`);
  return { apiVersion, resource, namespace, name, subresource };
}

const typeKeyOf = (t: { apiVersion: string; resource: string }) => `${t.apiVersion}/${t.resource}`;
const objectKeyOf = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;

export class FakeKubeClient implements KubeApi {
  /** Every call, in order (reads included). */
  readonly actions: FakeAction[] = [];
  readonly counts: Record<Verb, number> = { GET: 0, LIST: 0, WATCH: 0, POST: 0, PUT: 0, PATCH: 0, DELETE: 0 };
  /**
   * Called before every call is carried out: throw (an ApiError, say) to make
   * the call fail as the server would, e.g. `fake.reactor = (a) => { if (a.op === 'apply') throw ... }`.
   */
  reactor: ((action: FakeAction) => void) | undefined;

  private readonly store = new Map<string, Map<string, Stored>>();
  /** The kind of each REST type seen (a request by path names only the plural). */
  private readonly kinds = new Map<string, string>();
  private readonly history: HistoryEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private rv = 1000;

  constructor(objects: FakeObject[] = []) {
    for (const o of objects) this.seed(o);
  }

  /** Puts an object in place as it is (status included), owned by manager `seed`: a test's starting state. */
  seed(obj: FakeObject): FakeObject {
    const t = this.targetOf(obj);
    this.ensureAbsent(t, 'POST');
    const stored: Stored = { obj: clone(obj), owners: new Map() };
    const m = stored.obj.metadata;
    m.uid ??= randomUUID();
    m.generation ??= 1;
    m['creationTimestamp'] ??= timestamp();
    this.own(stored, 'seed', 'Update', undefined, ownablePaths(stored.obj, undefined));
    if (stored.obj['status'] !== undefined) this.own(stored, 'seed', 'Update', 'status', ownablePaths(stored.obj, 'status'));
    this.commit(t, undefined, stored);
    return clone(stored.obj);
  }

  /** The object as stored now (no call recorded), or undefined. */
  peek<T = FakeObject>(ref: ObjectRef & { name: string }): T | undefined {
    const t = this.targetOfRef(ref);
    return clone(this.find(t)?.obj) as T | undefined;
  }

  /** Every object of a kind as stored now (no call recorded). */
  objects<T = FakeObject>(ref: Omit<ObjectRef, 'name'>): T[] {
    const t = this.targetOfRef({ ...ref, name: undefined });
    return [...(this.store.get(typeKeyOf(t))?.values() ?? [])].filter((s) => !t.namespace || s.obj.metadata.namespace === t.namespace).map((s) => clone(s.obj) as T);
  }

  /** Writes (POST, PUT, PATCH, DELETE) so far, as KubeClient counts them. */
  writes(): number {
    return this.counts.POST + this.counts.PUT + this.counts.PATCH + this.counts.DELETE;
  }

  /** Resolves once every watch event so far has been handed to its watcher. */
  async settled(): Promise<void> {
    for (let i = 0; i < 100 && [...this.watchers].some((w) => w.queue.length > 0 || w.scheduled); i++) await new Promise((r) => setImmediate(r));
  }

  // ---------------------------------------------------------------------------
  // KubeApi

  async request<T = Json>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, opts: RequestOptions = {}): Promise<T> {
    await roundTrip();
    const t = parsePath(path);
    const fieldManager = opts.query?.['fieldManager'] === undefined ? undefined : String(opts.query['fieldManager']);
    const metadataOnly = opts.accept?.includes('as=PartialObjectMetadata') ?? false;
    switch (method) {
      case 'GET':
        return (t.name === undefined ? this.doList(t, opts.query ?? {}, metadataOnly) : this.doGet(t)) as T;
      case 'POST':
        return this.doCreate(t, opts.body as FakeObject, fieldManager) as T;
      case 'PUT':
        return this.doUpdate(t, opts.body as FakeObject, fieldManager) as T;
      case 'DELETE': {
        const body = (opts.body ?? {}) as { preconditions?: { uid?: string } };
        return this.doDelete(t, body.preconditions?.uid) as T;
      }
      case 'PATCH':
        if (opts.contentType === APPLY_PATCH) return this.doApply(t, opts.body as FakeObject, fieldManager ?? '', opts.query?.['dryRun'] !== undefined) as T;
        if (opts.contentType === MERGE_PATCH) return this.doMerge(t, opts.body, fieldManager) as T;
        throw this.error(415, 'UnsupportedMediaType', `the fake client takes apply and merge patches, not ${opts.contentType}`, 'PATCH', t);
    }
  }

  async get<T = Json>(ref: ObjectRef): Promise<T> {
    await roundTrip();
    return this.doGet(this.targetOfRef(ref)) as T;
  }

  async list<T = Json>(ref: Omit<ObjectRef, 'name'>, query: RequestOptions['query'] = {}, opts: ReadOptions = {}): Promise<{ metadata: { resourceVersion: string; continue?: string }; items: T[] }> {
    await roundTrip();
    return this.doList(this.targetOfRef({ ...ref, name: undefined }), query, opts.metadataOnly ?? false) as { metadata: { resourceVersion: string; continue?: string }; items: T[] };
  }

  async apply<T = Json>(
    obj: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [key: string]: unknown }; [key: string]: unknown },
    fieldManager: string,
    subresource?: 'status',
    opts: { dryRun?: boolean } = {},
  ): Promise<T> {
    await roundTrip();
    return this.doApply({ ...this.targetOf(obj), subresource }, obj, fieldManager, opts.dryRun ?? false) as T;
  }

  async mergePatch<T = Json>(ref: ObjectRef, patch: unknown, subresource?: string): Promise<T> {
    await roundTrip();
    return this.doMerge({ ...this.targetOfRef(ref), subresource }, patch, undefined) as T;
  }

  async create<T = Json>(
    obj: { apiVersion: string; kind: string; metadata: { namespace?: string; [key: string]: unknown }; [key: string]: unknown },
    subresource?: { name: string; sub: string },
  ): Promise<T> {
    await roundTrip();
    if (subresource)
      throw this.error(
        405,
        'MethodNotAllowed',
        `the fake client does not create subresources (${subresource.sub})`,
        'POST',
        this.targetOf({ ...obj, metadata: { ...obj.metadata, name: subresource.name } }),
      );
    return this.doCreate({ ...this.targetOf({ ...obj, metadata: { name: '', ...obj.metadata } }), name: undefined }, obj as FakeObject, undefined) as T;
  }

  async delete(ref: ObjectRef, uid?: string): Promise<unknown> {
    await roundTrip();
    return this.doDelete(this.targetOfRef(ref), uid);
  }

  watch(ref: Omit<ObjectRef, 'name'>, query: RequestOptions['query'], onEvent: (e: WatchEvent) => void, signal: AbortSignal, opts: ReadOptions = {}): Promise<void> {
    const t = this.targetOfRef({ ...ref, name: undefined });
    this.record({ verb: 'WATCH', op: 'watch', ...t });
    const watcher: Watcher = {
      typeKey: typeKeyOf(t),
      namespace: t.namespace,
      selector: labelMatcher(query?.['labelSelector'] === undefined ? undefined : String(query['labelSelector'])),
      metadataOnly: opts.metadataOnly ?? false,
      queue: [],
      deliver: onEvent,
      scheduled: false,
    };
    return new Promise<void>((resolve, reject) => {
      const stop = (err?: Error) => {
        this.watchers.delete(watcher);
        watcher.queue.length = 0;
        signal.removeEventListener('abort', aborted);
        if (err) reject(err);
        else resolve();
      };
      // As KubeClient.watch says it: the caller asked for this.
      const aborted = () => stop(Object.assign(new Error(`WATCH ${typeKeyOf(t)}: aborted by the caller`), { name: 'AbortError' }));
      if (signal.aborted) return aborted();
      signal.addEventListener('abort', aborted, { once: true });
      const from = Number(query?.['resourceVersion'] || 0);
      if (from > 0) {
        for (const e of this.history) if (e.rv > from) this.enqueue(watcher, e);
      } else {
        // No version: the current objects first, as ADDED (the API server's "0").
        for (const s of this.store.get(watcher.typeKey)?.values() ?? []) this.enqueue(watcher, { rv: 0, type: 'ADDED', typeKey: watcher.typeKey, obj: this.output(s) });
      }
      this.watchers.add(watcher);
      // A handler that throws ends the watch with that error, as a failed stream does.
      watcher.deliver = (e) => {
        try {
          onEvent(e);
        } catch (err) {
          stop(err as Error);
        }
      };
    });
  }

  // ---------------------------------------------------------------------------
  // The server

  private targetOf(obj: { apiVersion: string; kind: string; metadata: { name?: string; namespace?: string } }): Target {
    return this.targetOfRef({ apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name });
  }

  private targetOfRef(ref: ObjectRef): Target {
    const info = kindInfo(ref.apiVersion, ref.kind);
    const t: Target = { apiVersion: ref.apiVersion, resource: info.plural, namespace: info.namespaced ? ref.namespace : undefined, name: ref.name };
    this.kinds.set(typeKeyOf(t), ref.kind);
    return t;
  }

  private record(a: FakeAction): void {
    this.actions.push(a);
    this.counts[a.verb]++;
    this.reactor?.(a);
  }

  private path(t: Target): string {
    const base = t.apiVersion.includes('/') ? `/apis/${t.apiVersion}` : `/api/${t.apiVersion}`;
    return `${base}${t.namespace ? `/namespaces/${t.namespace}` : ''}/${t.resource}${t.name ? `/${t.name}` : ''}${t.subresource ? `/${t.subresource}` : ''}`;
  }

  /** An ApiError as KubeClient makes it from the server's Status. */
  private error(status: number, reason: string, message: string, method: string, t: Target): ApiError {
    const path = this.path(t);
    return new ApiError(status, reason, `${method} ${path}: ${status} ${message}`, method, path, message);
  }

  private qualified(t: Target): string {
    const group = t.apiVersion.includes('/') ? t.apiVersion.split('/')[0] : '';
    return group ? `${t.resource}.${group}` : t.resource;
  }

  private notFound(t: Target, method: string): ApiError {
    return this.error(404, 'NotFound', `${this.qualified(t)} "${t.name}" not found`, method, t);
  }

  private find(t: Target): Stored | undefined {
    return t.name === undefined ? undefined : this.store.get(typeKeyOf(t))?.get(objectKeyOf(t.namespace, t.name));
  }

  private ensureAbsent(t: Target, method: string): void {
    if (this.find(t)) throw this.error(409, 'AlreadyExists', `${this.qualified(t)} "${t.name}" already exists`, method, t);
  }

  private output(s: Stored): FakeObject {
    const out = clone(s.obj);
    out.metadata['managedFields'] = [...s.owners.values()].map((e) => ({
      manager: e.manager,
      operation: e.operation,
      apiVersion: e.apiVersion,
      time: e.time,
      fieldsType: 'FieldsV1',
      fieldsV1: fieldsV1(e.paths),
      ...(e.subresource ? { subresource: e.subresource } : {}),
    }));
    return out;
  }

  /** `manager` comes to own `paths` (taken from every other manager); returns whether ownership changed. */
  private own(s: Stored, manager: string, operation: 'Apply' | 'Update', subresource: string | undefined, paths: string[][], replace = false): boolean {
    const id = `${manager}\u0000${operation}\u0000${subresource ?? ''}`;
    let changed = false;
    for (const [otherId, e] of s.owners) {
      if (otherId === id) continue;
      for (const p of [...e.paths]) {
        const segs = JSON.parse(p) as string[];
        if (paths.some((n) => isPrefix(n, segs) || isPrefix(segs, n))) {
          e.paths.delete(p);
          changed = true;
        }
      }
      if (e.paths.size === 0) s.owners.delete(otherId);
    }
    const mine = s.owners.get(id);
    const next = new Set([...(replace || !mine ? [] : mine.paths), ...paths.map((p) => JSON.stringify(p))]);
    if (mine && sameJson([...mine.paths].sort(), [...next].sort())) return changed;
    if (next.size === 0) {
      if (mine) s.owners.delete(id);
      return changed || !!mine;
    }
    s.owners.set(id, { manager, operation, subresource, apiVersion: s.obj.apiVersion, time: timestamp(), paths: next });
    return true;
  }

  private isOwned(s: Stored, path: string): boolean {
    return [...s.owners.values()].some((e) => e.paths.has(path));
  }

  /**
   * Stores `next` (or removes the object when `next` is undefined or being deleted without
   * finalizers), with the server's bookkeeping; returns what is stored. No change, no new version.
   */
  private commit(t: Target, before: Stored | undefined, next: Stored | undefined, ownershipChanged = false): Stored | undefined {
    const typeKey = typeKeyOf(t);
    const objects = this.store.get(typeKey) ?? new Map<string, Stored>();
    this.store.set(typeKey, objects);
    if (next?.obj.metadata.deletionTimestamp && !next.obj.metadata.finalizers?.length) next = undefined;
    if (!next) {
      if (!before) return undefined;
      objects.delete(objectKeyOf(before.obj.metadata.namespace, before.obj.metadata.name));
      const gone = clone(before.obj);
      gone.metadata.resourceVersion = String(++this.rv);
      this.publish({ rv: this.rv, type: 'DELETED', typeKey, old: before.obj, obj: gone });
      return undefined;
    }
    const m = next.obj.metadata;
    if (before) {
      const strip = (o: FakeObject) => {
        const { metadata: _m, status: _s, ...rest } = o;
        return rest;
      };
      const { resourceVersion: _r, ...was } = before.obj.metadata;
      const { resourceVersion: _n, ...now } = m;
      const changed = !sameJson({ ...before.obj, metadata: was }, { ...next.obj, metadata: now });
      if (!changed && !ownershipChanged) return before;
      if (!sameJson(strip(before.obj), strip(next.obj)) || (m.deletionTimestamp && !before.obj.metadata.deletionTimestamp)) m.generation = (before.obj.metadata.generation ?? 0) + 1;
    }
    m.resourceVersion = String(++this.rv);
    objects.set(objectKeyOf(m.namespace, m.name), next);
    this.publish({ rv: this.rv, type: before ? 'MODIFIED' : 'ADDED', typeKey, old: before?.obj, obj: this.output(next) });
    return next;
  }

  private publish(e: HistoryEvent): void {
    this.history.push(e);
    for (const w of this.watchers) this.enqueue(w, e);
  }

  private enqueue(w: Watcher, e: HistoryEvent): void {
    if (e.typeKey !== w.typeKey) return;
    if (w.namespace && e.obj.metadata.namespace !== w.namespace) return;
    const was = e.old !== undefined && e.type !== 'ADDED' && w.selector(e.old.metadata.labels);
    const is = w.selector(e.obj.metadata.labels);
    let type: WatchEvent['type'];
    if (e.type === 'DELETED') {
      if (!was) return;
      type = 'DELETED';
    } else if (e.type === 'ADDED') {
      if (!is) return;
      type = 'ADDED';
    } else if (was && is) type = 'MODIFIED';
    else if (is) type = 'ADDED';
    else if (was) type = 'DELETED';
    else return;
    const object = w.metadataOnly ? { apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadata', metadata: clone(e.obj.metadata) } : clone(e.obj);
    w.queue.push({ type, object: object });
    if (w.scheduled) return;
    w.scheduled = true;
    // Delivered after the write's answer, in order, as a watch stream delivers them.
    setImmediate(() => {
      w.scheduled = false;
      while (w.queue.length > 0 && this.watchers.has(w)) w.deliver(w.queue.shift()!);
    });
  }

  private doGet(t: Target): FakeObject {
    this.record({ verb: 'GET', op: 'get', ...t });
    const s = this.find(t);
    if (!s) throw this.notFound(t, 'GET');
    return this.output(s);
  }

  private doList(
    t: Target,
    query: NonNullable<RequestOptions['query']>,
    metadataOnly: boolean,
  ): { apiVersion: string; kind: string; metadata: { resourceVersion: string; continue?: string }; items: Json[] } {
    this.record({ verb: 'LIST', op: 'list', ...t });
    const matches = labelMatcher(query['labelSelector'] === undefined ? undefined : String(query['labelSelector']));
    const all = [...(this.store.get(typeKeyOf(t))?.values() ?? [])]
      .filter((s) => (!t.namespace || s.obj.metadata.namespace === t.namespace) && matches(s.obj.metadata.labels))
      .sort((a, b) => objectKeyOf(a.obj.metadata.namespace, a.obj.metadata.name).localeCompare(objectKeyOf(b.obj.metadata.namespace, b.obj.metadata.name)));
    const start = query['continue'] ? Number(query['continue']) : 0;
    const limit = query['limit'] ? Number(query['limit']) : all.length;
    const page = all.slice(start, start + limit);
    const more = start + limit < all.length;
    const items = page.map((s) => this.output(s)).map((o) => (metadataOnly ? { apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadata', metadata: o.metadata } : o));
    return {
      apiVersion: metadataOnly ? 'meta.k8s.io/v1' : t.apiVersion,
      kind: metadataOnly ? 'PartialObjectMetadataList' : `${this.kinds.get(typeKeyOf(t)) ?? ''}List`,
      metadata: { resourceVersion: String(this.rv), ...(more ? { continue: String(start + limit) } : {}) },
      items,
    };
  }

  private doCreate(t: Target, body: FakeObject, fieldManager: string | undefined): FakeObject {
    const obj = clone(body);
    obj.metadata = { ...obj.metadata, namespace: t.namespace ?? obj.metadata.namespace };
    const generateName = obj.metadata['generateName'] as string | undefined;
    if (!obj.metadata.name && generateName) obj.metadata.name = `${generateName}${randomUUID().slice(0, 5)}`;
    const target = { ...t, name: obj.metadata.name };
    this.kinds.set(typeKeyOf(t), obj.kind);
    this.record({ verb: 'POST', op: 'create', ...target, fieldManager, body: clone(body) });
    if (!obj.metadata.name) throw this.error(422, 'Invalid', `${obj.kind} "" is invalid: metadata.name: Required value: name or generateName is required`, 'POST', t);
    this.ensureAbsent(target, 'POST');
    // A status sent on create is dropped (the status subresource is its only writer).
    delete obj['status'];
    const m = obj.metadata;
    m.uid = randomUUID();
    m.generation = 1;
    m['creationTimestamp'] = timestamp();
    delete m['managedFields'];
    delete m.deletionTimestamp;
    delete m['generateName'];
    if (generateName) m['generateName'] = generateName;
    const stored: Stored = { obj, owners: new Map() };
    this.own(stored, fieldManager ?? 'unknown', 'Update', undefined, ownablePaths(obj, undefined));
    return this.output(this.commit(target, undefined, stored)!);
  }

  /** A PUT: the whole object (or the whole status) replaced. */
  private doUpdate(t: Target, body: FakeObject, fieldManager: string | undefined): FakeObject {
    this.record({ verb: 'PUT', op: 'update', ...t, fieldManager, body: clone(body) });
    const s = this.find(t);
    if (!s) throw this.notFound(t, 'PUT');
    this.checkVersion(s, t, body.metadata?.resourceVersion, 'PUT');
    const next =
      t.subresource === 'status'
        ? { ...clone(s.obj), status: clone(body['status']) }
        : { ...clone(body), metadata: { ...clone(body.metadata), ...this.serverMetadata(s.obj) }, ...(s.obj['status'] === undefined ? {} : { status: clone(s.obj['status']) }) };
    return this.write(t, s, next, fieldManager ?? 'unknown', 'Update', ownablePaths(body, t.subresource), false);
  }

  private doMerge(t: Target, patch: unknown, fieldManager: string | undefined): FakeObject {
    this.record({ verb: 'PATCH', op: 'merge', ...t, fieldManager, body: clone(patch) });
    const s = this.find(t);
    if (!s) throw this.notFound(t, 'PATCH');
    const p = (isMap(patch) ? patch : {}) as Json & { metadata?: Json };
    this.checkVersion(s, t, p.metadata?.['resourceVersion'] as string | undefined, 'PATCH');
    const part = t.subresource === 'status' ? { status: p['status'] } : Object.fromEntries(Object.entries(p).filter(([k]) => k !== 'status'));
    const patched = mergePatch(s.obj, part) as FakeObject;
    patched.metadata = { ...patched.metadata, ...this.serverMetadata(s.obj) };
    // What the patch sets (its nulls remove the field from every manager's set).
    const sets = ownablePaths(JSON.parse(JSON.stringify(part, (_k, v: unknown) => (v === null ? undefined : v))) as Json, t.subresource);
    for (const e of s.owners.values()) {
      for (const p2 of [...e.paths]) {
        const segs = JSON.parse(p2) as string[];
        if (!this.has(patched, segs)) e.paths.delete(p2);
      }
    }
    return this.write(t, s, patched, fieldManager ?? 'unknown', 'Update', sets, false);
  }

  private doApply(t: Target, body: FakeObject, fieldManager: string, dryRun: boolean): FakeObject {
    this.record({ verb: 'PATCH', op: 'apply', ...t, fieldManager, body: clone(body) });
    if (!fieldManager) throw this.error(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch', 'PATCH', t);
    const s = this.find(t);
    const uid = body.metadata.uid;
    if (!s) {
      if (t.subresource === 'status') throw this.notFound(t, 'PATCH');
      if (uid)
        throw this.error(409, 'Conflict', `Operation cannot be fulfilled on ${this.qualified(t)} "${t.name}": Precondition failed: UID in precondition: ${uid}, UID in object meta: `, 'PATCH', t);
      const created = clone(body);
      delete created['status'];
      const m = created.metadata;
      m.uid = randomUUID();
      m.generation = 1;
      m['creationTimestamp'] = timestamp();
      delete m.resourceVersion;
      delete m['managedFields'];
      const stored: Stored = { obj: created, owners: new Map() };
      this.own(stored, fieldManager, 'Apply', undefined, ownablePaths(body, undefined));
      if (dryRun) return this.output(stored);
      return this.output(this.commit(t, undefined, stored)!);
    }
    if (uid && uid !== s.obj.metadata.uid) throw this.error(422, 'Invalid', `${body.kind} "${t.name}" is invalid: metadata.uid: Invalid value: "${uid}": field is immutable`, 'PATCH', t);
    this.checkVersion(s, t, body.metadata.resourceVersion, 'PATCH');
    const paths = ownablePaths(body, t.subresource);
    const part = t.subresource === 'status' ? { status: body['status'] } : Object.fromEntries(Object.entries(body).filter(([k]) => k !== 'status'));
    const merged = mergeApplied(s.obj, { ...part, metadata: Object.fromEntries(Object.entries(body.metadata).filter(([k]) => !SERVER_METADATA.has(k))) }) as FakeObject;
    merged.metadata = { ...merged.metadata, ...this.serverMetadata(s.obj) };
    return this.write(t, s, merged, fieldManager, 'Apply', paths, true, dryRun);
  }

  /** The fields the server keeps whatever a write sends. */
  private serverMetadata(live: FakeObject): Json {
    const m = live.metadata;
    return Object.fromEntries(
      ['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'generateName'].filter((k) => m[k] !== undefined).map((k) => [k, m[k]]),
    );
  }

  private checkVersion(s: Stored, t: Target, resourceVersion: string | undefined, method: string): void {
    if (resourceVersion && resourceVersion !== s.obj.metadata.resourceVersion) {
      throw this.error(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${this.qualified(t)} "${t.name}": the object has been modified; please apply your changes to the latest version and try again`,
        method,
        t,
      );
    }
  }

  private has(obj: unknown, segs: string[]): boolean {
    let node: unknown = obj;
    for (const seg of segs) {
      if (seg.startsWith('f:') && isMap(node)) node = node[seg.slice(2)];
      else if (seg.startsWith('k:') && Array.isArray(node)) {
        const key = JSON.parse(seg.slice(2)) as Json;
        node = node.find((i) => isMap(i) && Object.entries(key).every(([k, v]) => String(i[k]) === String(v)));
      } else return false;
      if (node === undefined) return false;
    }
    return true;
  }

  /**
   * One write by `manager`: it comes to own `paths`; for an apply, the fields it
   * owned before and sends no more go unless another manager owns them.
   */
  private write(t: Target, s: Stored, next: FakeObject, manager: string, operation: 'Apply' | 'Update', paths: string[][], isApply: boolean, dryRun = false): FakeObject {
    const candidate: Stored = { obj: next, owners: new Map([...s.owners].map(([k, e]) => [k, { ...e, paths: new Set(e.paths) }])) };
    const id = `${manager}\u0000${operation}\u0000${t.subresource === 'status' ? 'status' : ''}`;
    const before = new Set(candidate.owners.get(id)?.paths ?? []);
    const changed = this.own(candidate, manager, operation, t.subresource === 'status' ? 'status' : undefined, paths, isApply);
    if (isApply) {
      const sent = new Set(paths.map((p) => JSON.stringify(p)));
      const gone = [...before].filter((p) => !sent.has(p) && !this.isOwned(candidate, p)).map((p) => JSON.parse(p) as string[]);
      // A keyed item's key field goes last: the item is found by it.
      for (const segs of gone.sort((a, b) => Number(isItemKey(a)) - Number(isItemKey(b)))) removePath(candidate.obj, segs);
    }
    if (dryRun) return this.output(candidate);
    return this.output(this.commit(t, s, candidate, changed) ?? candidate);
  }

  private doDelete(t: Target, uid: string | undefined): Json {
    this.record({ verb: 'DELETE', op: 'delete', ...t });
    const s = this.find(t);
    if (!s) throw this.notFound(t, 'DELETE');
    if (uid && uid !== s.obj.metadata.uid) {
      throw this.error(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${this.qualified(t)} "${t.name}": Precondition failed: UID in precondition: ${uid}, UID in object meta: ${s.obj.metadata.uid}`,
        'DELETE',
        t,
      );
    }
    if (s.obj.metadata.finalizers?.length) {
      if (s.obj.metadata.deletionTimestamp) return this.output(s);
      const next: Stored = { obj: clone(s.obj), owners: s.owners };
      next.obj.metadata.deletionTimestamp = timestamp();
      return this.output(this.commit(t, s, next)!);
    }
    this.commit(t, s, undefined);
    return { apiVersion: 'v1', kind: 'Status', status: 'Success', details: { name: t.name, kind: t.resource, uid: s.obj.metadata.uid } };
  }
}
