/**
 * `kiln diff`: what apply mode would change in a live cluster, before it does.
 *
 * For each resource: the chart renders it (kinds/render.ts, as the
 * reconciler), each object is decorated as the reconciler decorates it
 * (applyset.ts decorate: the ApplySet part-of label, the controller
 * ownerReference to the live resource's UID, the desired-digest annotation),
 * the API server runs a server-side apply of it as a dry run (`dryRun=All`,
 * field manager `kiln`, force), and the object it answers with is compared
 * with the live one, both as YAML without the fields the server owns. Members
 * of the resource's ApplySet that are no longer rendered and that the
 * reconciler would prune (prunable()) are shown as removals.
 *
 * Not covered: kinds apply mode does not server-side apply (a custom
 * reconciler's or the runtime agent's: kinds/registry.ts says why). Nothing
 * here writes: every PATCH is a dry run, everything else is a GET or a LIST.
 */
import { createTwoFilesPatch, FILE_HEADERS_ONLY } from 'diff';
import { MissingInputError, render } from '../../kinds/render.js';
import type { K8sObject, KilnResource, RenderContext } from '../../kinds/types.js';
import { toYaml } from '../../lib/yaml.js';
import { applySetId, decorate, FIELD_MANAGER, PART_OF, prunable } from './applyset.js';
import { ApiError, isNotFound, type KubeClient } from '../../kube/client.js';
import type { KubeObject } from '../../kube/informer.js';
import { APPLY_AFTER_ANNOTATION, CHILD_KINDS } from '../../kinds/api.js';
import { carriedOutBy } from '../../kinds/registry.js';
import { SHARD_LABELS } from '../../kube/sharding/membership.js';
import { SHARD_LABEL } from '../../lib/shard.js';

/** Why `kiln diff` does not cover `kind` (apply mode does not server-side apply it), or undefined when it does. */
export function notCovered(kind: string): string | undefined {
  const by = carriedOutBy(kind);
  return by.by === 'render' ? undefined : by.why;
}

/** Fields the API server owns: never part of a diff (kubectl diff drops managedFields too). */
export const SERVER_METADATA = ['managedFields', 'resourceVersion', 'generation', 'uid', 'creationTimestamp'] as const;

/** The object without status and the metadata the server owns; the input is not changed. */
export function stripServerFields(obj: Record<string, unknown>): Record<string, unknown> {
  const { status: _status, ...rest } = obj;
  const metadata = rest['metadata'];
  if (metadata === null || typeof metadata !== 'object') return rest;
  const kept: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata as Record<string, unknown>)) if (!(SERVER_METADATA as readonly string[]).includes(k)) kept[k] = v;
  return { ...rest, metadata: kept };
}

/** kubectl diff's name for an object: `<group>.<version>.<Kind>.<namespace>.<name>` (`v1.Service.ns.name` for the core group). */
export function diffName(o: { apiVersion: string; kind: string; metadata: { namespace?: string; name: string } }): string {
  return `${o.apiVersion.replace('/', '.')}.${o.kind}.${o.metadata.namespace ?? ''}.${o.metadata.name}`;
}

/**
 * The unified diff of `live` and `merged` (either absent: a new or a removed
 * object) as YAML without the server's fields, with kubectl diff's headers;
 * '' when they are the same.
 */
export function formatObjectDiff(name: string, live: Record<string, unknown> | undefined, merged: Record<string, unknown> | undefined): string {
  const before = live ? toYaml(stripServerFields(live)) : '';
  const after = merged ? toYaml(stripServerFields(merged)) : '';
  if (before === after) return '';
  const patch = createTwoFilesPatch(`LIVE/${name}`, `MERGED/${name}`, before, after, undefined, undefined, { context: 3, headerOptions: FILE_HEADERS_ONLY });
  return `diff -u -N LIVE/${name} MERGED/${name}\n${patch}`;
}

export type Action = 'create' | 'change' | 'prune';

export interface ObjectChange {
  action: Action;
  /** `Kind/name`, as the controller's events and status name members. */
  object: string;
  /** kubectl diff's header name. */
  name: string;
  patch: string;
}

export interface ResourceDiff {
  /** `Kind namespace/name` */
  resource: string;
  changes: ObjectChange[];
  /** What the user should know but is not a change (stderr). */
  notes: string[];
  /** What kept kiln diff from telling: exit code 2. */
  errors: string[];
}

/** One resource to diff: as validated (defaults applied, namespace set), with its render context. */
export interface DiffTarget {
  resource: KilnResource;
  context?: RenderContext;
  /** The resource as the cluster holds it (from --from-cluster); read from the cluster otherwise. */
  live?: KubeObject & KilnResource;
}

export const resourceLabel = (r: { kind: string; metadata: { namespace?: string; name: string } }) => `${r.kind} ${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
const member = (o: { kind?: string; metadata: { name: string } }) => `${o.kind}/${o.metadata.name}`;
const message = (err: unknown) => (err instanceof ApiError ? (err.detail ?? err.message) : err instanceof Error ? err.message : String(err));

/** What the cluster holds of a resource; undefined when it is not there. */
async function liveResource(client: KubeClient, r: KilnResource): Promise<(KubeObject & KilnResource) | undefined> {
  try {
    return await client.get<KubeObject & KilnResource>({ apiVersion: r.apiVersion, kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name });
  } catch (err) {
    // A 404 for the resource type itself (no CRD) is not "this resource does not exist yet".
    if (isNotFound(err) && !/could not find the requested resource/.test((err as ApiError).detail ?? '')) return undefined;
    if (isNotFound(err)) throw new Error(`the cluster does not serve ${r.apiVersion} ${r.kind}: are kiln's CRDs installed?`, { cause: err });
    throw err;
  }
}

async function getOrUndefined<T extends KubeObject = KubeObject>(client: KubeClient, o: { apiVersion: string; kind: string; metadata: { namespace?: string; name: string } }): Promise<T | undefined> {
  try {
    return await client.get<T>({ apiVersion: o.apiVersion, kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * Is an `kiln.dev/apply-after` dependency (`batch/v1/Job/<name>:Complete`) met
 * in the cluster? The reconciler applies such an object only then.
 */
async function dependencyMet(client: KubeClient, after: string, namespace: string | undefined): Promise<boolean> {
  const m = /^(.+)\/([^/]+)\/([^/:]+):(\w+)$/.exec(after);
  if (!m) return true;
  const [, apiVersion, kind, name, condition] = m as unknown as [string, string, string, string, string];
  const obj = await getOrUndefined<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(client, { apiVersion, kind, metadata: { namespace, name } });
  return !!obj?.status?.conditions?.some((c) => c.type === condition && c.status === 'True');
}

/** Live members of the ApplySet `id` in `namespace`, as the controller's child informers select them. */
async function applySetMembers(client: KubeClient, id: string, namespace: string | undefined): Promise<KubeObject[]> {
  const out: KubeObject[] = [];
  for (const k of CHILD_KINDS) {
    let cont: string | undefined;
    do {
      let page: { metadata: { continue?: string }; items: KubeObject[] };
      try {
        page = await client.list<KubeObject>({ ...k, namespace }, { labelSelector: `app.kubernetes.io/managed-by=kiln,${PART_OF}=${id}`, limit: 500, continue: cont });
      } catch (err) {
        // A kind the cluster does not serve (no VolumeSnapshot CRD) has no members.
        if (isNotFound(err)) break;
        throw err;
      }
      for (const item of page.items) out.push({ apiVersion: k.apiVersion, kind: k.kind, ...item });
      cont = page.metadata.continue || undefined;
    } while (cont);
  }
  return out;
}

/**
 * Shard labels a controller copies from a resource onto its objects: the dynamic ring's, and
 * `kiln.dev/shard` (the key `kiln install --shards` selects on). A --watch-label-selector naming
 * other keys copies those too; kiln diff cannot know them and shows them as removed.
 */
const COPIED_SHARD_LABELS = [SHARD_LABELS.shard, SHARD_LABEL];

/**
 * The objects the reconciler would apply for `resource`, decorated as it decorates them. `liveLabels`:
 * the labels the resource has in the cluster (the shard labels come from there, not from a file).
 */
export function desiredObjects(resource: KilnResource, parentUid: string | undefined, context: RenderContext = {}, liveLabels?: Record<string, string>): K8sObject[] {
  const parent = { ...resource, metadata: { ...resource.metadata, uid: parentUid } };
  const id = applySetId(resource);
  const labels = liveLabels ?? resource.metadata.labels ?? {};
  const copied = Object.fromEntries(COPIED_SHARD_LABELS.filter((k) => labels[k] !== undefined).map((k) => [k, labels[k]!]));
  return render(resource, context).map((o) => decorate(o, parent, id, copied));
}

/** Diffs one resource against the cluster. Never throws: what goes wrong is in `errors`. */
export async function diffResource(client: KubeClient, target: DiffTarget): Promise<ResourceDiff> {
  const r = target.resource;
  const out: ResourceDiff = { resource: resourceLabel(r), changes: [], notes: [], errors: [] };
  const why = notCovered(r.kind);
  if (why) {
    out.notes.push(`not covered by kiln diff: ${why}`);
    return out;
  }
  let live: (KubeObject & KilnResource) | undefined;
  let desired: K8sObject[];
  try {
    live = target.live ?? (await liveResource(client, r));
    if (live?.metadata.deletionTimestamp) {
      out.notes.push('being deleted: the controller applies and prunes nothing for it');
      return out;
    }
    if (!live) out.notes.push('not in the cluster yet: its objects are shown without the ownerReference the controller adds once the resource exists');
    desired = desiredObjects(r, live?.metadata.uid, target.context, live?.metadata.labels);
  } catch (err) {
    // Not an error of the resource: the controller waits for what it names (Reconciling) and changes nothing meanwhile.
    if (err instanceof MissingInputError) {
      out.notes.push(`waits: ${err.detail}; the controller applies nothing for it until then`);
      return out;
    }
    out.errors.push(message(err));
    return out;
  }

  const results = await Promise.all(
    desired.map(async (obj): Promise<ObjectChange | { note: string } | { error: string } | undefined> => {
      try {
        const after = obj.metadata.annotations?.[APPLY_AFTER_ANNOTATION];
        if (after && !(await dependencyMet(client, after, obj.metadata.namespace))) {
          return { note: `${member(obj)} waits for ${after}: the controller applies it once that holds` };
        }
        const [current, merged] = await Promise.all([getOrUndefined(client, obj), client.apply<KubeObject>(obj, FIELD_MANAGER, undefined, { dryRun: true })]);
        const name = diffName(obj);
        const patch = formatObjectDiff(name, current, merged);
        return patch ? { action: current ? 'change' : 'create', object: member(obj), name, patch } : undefined;
      } catch (err) {
        return { error: `${member(obj)}: ${message(err)}` };
      }
    }),
  );
  for (const res of results) {
    if (!res) continue;
    if ('note' in res) out.notes.push(res.note);
    else if ('error' in res) out.errors.push(res.error);
    else out.changes.push(res);
  }

  // Members no longer rendered, as the reconciler prunes them (only what kiln applied, never volumes,
  // never what another controller owns).
  try {
    const wanted = new Set(desired.map((o) => diffName(o)));
    const members = await applySetMembers(client, applySetId(r), r.metadata.namespace);
    const gone = members.filter((m) => !wanted.has(diffName(m as K8sObject)) && prunable(m, live?.metadata.uid)).sort((a, b) => diffName(a as K8sObject).localeCompare(diffName(b as K8sObject)));
    for (const m of gone) {
      const name = diffName(m as K8sObject);
      out.changes.push({ action: 'prune', object: member(m), name, patch: formatObjectDiff(name, m, undefined) });
    }
  } catch (err) {
    out.errors.push(`listing the members of its ApplySet: ${message(err)}`);
  }
  return out;
}

/** `kiln diff` runs its resources through the shared limiter. */
export { mapLimit } from '../../lib/map-limit.js';

/** One line per resource that would change: what is created, changed and pruned. */
export function summaryLine(d: ResourceDiff): string | undefined {
  if (d.changes.length === 0) return undefined;
  const parts: string[] = [];
  for (const action of ['create', 'change', 'prune'] as const) {
    const objs = d.changes.filter((c) => c.action === action).map((c) => c.object);
    if (objs.length > 0) parts.push(`would ${action} ${objs.join(', ')}`);
  }
  return `${d.resource}: ${parts.join('; ')}`;
}

/** kubectl diff's exit status: 0 no change, 1 changes, 2 when something kept it from telling. */
export function exitCode(diffs: ResourceDiff[], otherErrors = 0): number {
  if (otherErrors > 0 || diffs.some((d) => d.errors.length > 0)) return 2;
  return diffs.some((d) => d.changes.length > 0) ? 1 : 0;
}

/** What `kiln diff` prints: the patches (stdout), then notes, errors and the summary (stderr). */
export function formatReport(diffs: ResourceDiff[]): { stdout: string; stderr: string } {
  let stdout = '';
  const stderr: string[] = [];
  for (const d of diffs) {
    for (const c of d.changes) stdout += c.patch;
    for (const n of d.notes) stderr.push(`${d.resource}: ${n}`);
    for (const e of d.errors) stderr.push(`${d.resource}: error: ${e}`);
  }
  const summary = diffs.map(summaryLine).filter((l): l is string => l !== undefined);
  stderr.push(...summary);
  return { stdout, stderr: stderr.length > 0 ? `${stderr.join('\n')}\n` : '' };
}
