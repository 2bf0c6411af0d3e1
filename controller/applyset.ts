/**
 * ApplySet bookkeeping (KEP-3659, as kubectl and kro use it): the kiln
 * resource is the parent, every object applied for it carries the parent's id
 * in `applyset.kubernetes.io/part-of`, and pruning removes members that are no
 * longer rendered. Plus the "no write when nothing changed" test for a child:
 * its last applied content is recorded as a digest annotation, and the live
 * object must still hold every field kiln sets.
 */
import { createHash } from 'node:crypto';
import { pack, unpack } from './pack.js';
import type { K8sObject, KilnResource } from '../charts/types.js';
import { quantityToNumber } from '../charts/shared/quantity.js';
import { GROUP } from '../crds/schema/generate.js';
import type { CacheCodec, KubeObject } from './informer.js';

export const PART_OF = 'applyset.kubernetes.io/part-of';
export const APPLYSET_ID = 'applyset.kubernetes.io/id';
export const APPLYSET_TOOLING = 'applyset.kubernetes.io/tooling';
export const APPLYSET_GROUP_KINDS = 'applyset.kubernetes.io/contains-group-kinds';
export const DESIRED_DIGEST = 'kiln.dev/desired-digest';
export const FIELD_MANAGER = 'kiln';

/** The parent's id: base64url(sha256("<name>.<namespace>.<Kind>.<group>")), as the KEP defines it. */
export function applySetId(r: KilnResource): string {
  const digest = createHash('sha256').update(`${r.metadata.name}.${r.metadata.namespace ?? 'default'}.${r.kind}.${GROUP}`).digest('base64url');
  return `applyset-${digest}-v1`;
}

/**
 * 128 bits of sha256, as 32 hex digits. Hex of the first 16 bytes, not a slice
 * of the 64-digit hex: a slice keeps its parent string alive (V8's sliced
 * strings), and a cache holds one digest per object.
 */
export function digest(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest().toString('hex', 0, 16);
}

/** What the controller adds to each rendered object: membership, ownership, the digest of the rest. */
export function decorate(obj: K8sObject, parent: KilnResource & { metadata: { uid?: string } }, id: string): K8sObject {
  const sameNamespace = (obj.metadata.namespace ?? parent.metadata.namespace) === parent.metadata.namespace;
  const ownerReferences = sameNamespace && parent.metadata.uid
    ? [{ apiVersion: parent.apiVersion, kind: parent.kind, name: parent.metadata.name, uid: parent.metadata.uid, controller: true, blockOwnerDeletion: true }]
    : undefined;
  const withOwnership: K8sObject = {
    ...obj,
    metadata: {
      ...obj.metadata,
      labels: { ...obj.metadata.labels, [PART_OF]: id },
      ...(ownerReferences ? { ownerReferences } : {}),
    },
  };
  return {
    ...withOwnership,
    metadata: { ...withOwnership.metadata, annotations: { ...obj.metadata.annotations, [DESIRED_DIGEST]: digest(withOwnership) } },
  };
}

function sameScalar(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if ((typeof a === 'number' || typeof a === 'string') && (typeof b === 'number' || typeof b === 'string')) {
    if (String(a) === String(b)) return true;
    // The API server canonicalises quantities (1.5Gi -> 1536Mi, 1000m -> 1).
    try {
      return quantityToNumber(String(a)) === quantityToNumber(String(b));
    } catch {
      return false;
    }
  }
  return false;
}

/** Zero values the API server leaves out of what it returns (Go's omitempty). */
function isZero(v: unknown): boolean {
  return v === false || v === 0 || v === '' || (Array.isArray(v) && v.length === 0) || (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0);
}

/**
 * The first place where `live` does not hold what `desired` says, or undefined
 * when every field of `desired` is present and equal in `live` (which may hold
 * more: defaults, other managers' fields).
 */
export function firstDifference(live: unknown, desired: unknown, path = ''): string | undefined {
  if (live === undefined && isZero(desired)) return undefined;
  if (desired === null || typeof desired !== 'object') return sameScalar(desired, live) ? undefined : `${path || '.'}: ${JSON.stringify(live)} != ${JSON.stringify(desired)}`;
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length < desired.length) return `${path}: ${Array.isArray(live) ? `${live.length} items` : 'missing'}, want ${desired.length}`;
    for (let i = 0; i < desired.length; i++) {
      const d = firstDifference(live[i], desired[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (live === null || typeof live !== 'object' || Array.isArray(live)) return `${path}: missing`;
  for (const [k, v] of Object.entries(desired as Record<string, unknown>)) {
    const d = firstDifference((live as Record<string, unknown>)[k], v, `${path}.${k}`);
    if (d) return d;
  }
  return undefined;
}

export const contains = (live: unknown, desired: unknown): boolean => firstDifference(live, desired) === undefined;

/**
 * Why applying `desired` would change something (for the log), or undefined when it would not.
 * On a projected child (projectChild) the comparison is with the fields kiln's
 * field manager still owns, so a field another manager took over counts as drift;
 * once a child's resourceVersion has been found in sync (markInSync) it is not compared again.
 */
export function drift(live: KubeObject | undefined, desired: K8sObject): string | undefined {
  if (!live) return 'absent';
  if (live.metadata.deletionTimestamp) return 'being deleted';
  const want = desired.metadata.annotations?.[DESIRED_DIGEST];
  if (live.metadata.annotations?.[DESIRED_DIGEST] !== want) return 'rendered content changed';
  const projected = live as ProjectedChild;
  if (projected[IN_SYNC] !== undefined && projected[IN_SYNC] === want) return undefined;
  const { status: _s, ...rest } = desired as K8sObject & { status?: unknown };
  if (!(KILN_FIELDS in projected)) return firstDifference(live, rest);
  const ownedText = projected[KILN_FIELDS];
  if (ownedText === undefined) return 'kiln owns no field of it';
  const owned: unknown = typeof ownedText === 'string' ? JSON.parse(unpack(ownedText)) : ownedText;
  // Identity (apiVersion, kind, name, namespace) is in no field set.
  const { apiVersion: _a, kind: _k, metadata: { name: _n, namespace: _ns, ...metadata }, ...spec } = rest;
  return firstDifference(owned, { ...spec, metadata });
}

/** Records that `live` (this resourceVersion) holds what `desired` says: its owned fields are dropped from the cache. */
export function markInSync(live: KubeObject, desired: K8sObject): void {
  const projected = live as ProjectedChild;
  if (!(KILN_FIELDS in projected)) return;
  // The live object's copy of the digest (equal to the desired one): one string, not two.
  const want = desired.metadata.annotations?.[DESIRED_DIGEST];
  projected[IN_SYNC] = live.metadata.annotations?.[DESIRED_DIGEST] === want ? live.metadata.annotations?.[DESIRED_DIGEST] : want;
  projected[KILN_FIELDS] = undefined;
}

// ---------------------------------------------------------------------------
// What the cache keeps of a child (the informer's transform)

/**
 * resourceVersions that kiln's own applies produced, by object: an object at
 * such a version holds what kiln applied, so it needs no comparison (and keeps
 * no owned fields in the cache). Bounded: entries whose watch event never
 * comes (the object was deleted meanwhile) are dropped wholesale.
 */
const ownWrites = new Map<string, string>();
const OWN_WRITES_MAX = 50_000;
const childKey = (o: { apiVersion?: string; kind?: string; metadata: { namespace?: string; name: string } }) => `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/**
 * Called with what the API server answered to kiln's apply of `desired`;
 * `cached` is the cache's current copy, if any. True when it marked that copy
 * in sync (the caller puts it back into the cache).
 */
export function recordOwnWrite(written: KubeObject, desired: K8sObject, cached: KubeObject | undefined): boolean {
  const rv = written.metadata?.resourceVersion;
  if (!rv) return false;
  if (cached && cached.metadata.resourceVersion === rv) {
    markInSync(cached, desired);
    return true;
  }
  if (ownWrites.size >= OWN_WRITES_MAX) ownWrites.clear();
  ownWrites.set(childKey({ ...desired, metadata: { ...desired.metadata, namespace: desired.metadata.namespace ?? written.metadata.namespace } }), rv);
  return false;
}

const KILN_FIELDS = 'kiln.dev/owned-fields';
const IN_SYNC = 'kiln.dev/in-sync-with';

type ProjectedChild = KubeObject & { [KILN_FIELDS]?: unknown; [IN_SYNC]?: string };

/** One copy of each of the few namespaces, owner apiVersions and kinds, not one per cached child (JSON.parse makes a new string each time). */
const interned = new Map<string, string>();
function intern(s: string): string {
  const have = interned.get(s);
  if (have !== undefined) return have;
  if (interned.size < 1000) interned.set(s, s);
  return s;
}

/** Labels a child keeps in the cache: membership and the owner labels the manager maps events with. */
const KEPT_LABELS = [PART_OF, 'kiln.dev/owner-kind', 'kiln.dev/owner-name', 'kiln.dev/owner-namespace'];

interface FieldsV1 { [key: string]: FieldsV1 }

/** Shared by every cached child: read only. */
const KILN_APPLIED = Object.freeze([Object.freeze({ manager: FIELD_MANAGER, operation: 'Apply' })]) as unknown as { manager: string; operation: string }[];
const NONE = Object.freeze([]) as unknown as { manager: string; operation: string }[];


/** The part of `live` that the field set `fields` (managedFields' fieldsV1) names. */
export function pickFields(live: unknown, fields: FieldsV1): unknown {
  const keys = Object.keys(fields).filter((k) => k !== '.');
  if (keys.length === 0 || live === null || typeof live !== 'object') return live;
  if (Array.isArray(live)) {
    const picked: [number, unknown][] = [];
    for (const k of keys) {
      const body = k.slice(2);
      let index = -1;
      if (k.startsWith('k:')) {
        const key = JSON.parse(body) as Record<string, unknown>;
        index = live.findIndex((item) => item !== null && typeof item === 'object' && Object.entries(key).every(([kk, kv]) => String((item as Record<string, unknown>)[kk]) === String(kv)));
      } else if (k.startsWith('v:')) {
        const value = JSON.stringify(JSON.parse(body));
        index = live.findIndex((item) => JSON.stringify(item) === value);
      } else if (k.startsWith('i:')) {
        index = Number(body);
      }
      if (index >= 0 && index < live.length) picked.push([index, pickFields(live[index], fields[k]!)]);
    }
    return picked.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
  }
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    if (!k.startsWith('f:')) continue;
    const name = k.slice(2);
    const v = (live as Record<string, unknown>)[name];
    if (v !== undefined) out[name] = pickFields(v, fields[k]!);
  }
  return out;
}

/**
 * What the cache keeps of an object kiln renders: identity, membership, the
 * controller reference, who manages it, the digest kiln applied, the status
 * fields the reconciler reads, and (until a reconcile has found this
 * resourceVersion in sync) the fields kiln's field manager owns. Everything
 * else (defaults, other managers' fields, the rest of the status) is dropped:
 * with 10,000 resources the full objects would not fit the memory target.
 */
export function projectChild<T extends KubeObject>(obj: T): T {
  const m = obj.metadata;
  const managed = (m.managedFields ?? []) as { manager?: string; operation?: string; subresource?: string; fieldsV1?: FieldsV1 }[];
  const kilnEntry = managed.find((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply' && !f.subresource);
  const labels: Record<string, string> = {};
  const digestValue = m.annotations?.[DESIRED_DIGEST];
  const controller = m.ownerReferences?.find((o) => o.controller);
  // The owner labels only matter where no controller reference names the owner (ConfigMapSync copies).
  const kept = controller?.apiVersion.startsWith(`${GROUP}/`) ? [PART_OF] : KEPT_LABELS;
  for (const k of kept) if (m.labels?.[k] !== undefined) labels[k] = k === 'kiln.dev/owner-name' || k === PART_OF ? m.labels[k]! : intern(m.labels[k]!);
  const status = obj['status'] as Record<string, unknown> | undefined;
  const out: ProjectedChild = {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: {
      name: m.name,
      namespace: m.namespace === undefined ? undefined : intern(m.namespace),
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      labels,
      ...(digestValue !== undefined ? { annotations: { [DESIRED_DIGEST]: digestValue } } : {}),
      ...(controller ? { ownerReferences: [{ apiVersion: intern(controller.apiVersion), kind: intern(controller.kind), name: controller.name, uid: controller.uid, controller: true }] } : {}),
      // prunable() asks only whether kiln applied it.
      managedFields: kilnEntry ? KILN_APPLIED : NONE,
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    [KILN_FIELDS]: undefined,
  };
  const key = childKey(obj);
  if (ownWrites.get(key) === m.resourceVersion && digestValue !== undefined) {
    // What kiln's own apply produced: in sync with the digest it carries.
    ownWrites.delete(key);
    out[IN_SYNC] = digestValue;
  } else {
    // As compressed JSON text: a tenth of the memory of the objects (a restart lists every child
    // before any is compared), read once and then dropped by markInSync.
    out[KILN_FIELDS] = kilnEntry?.fieldsV1 ? pack(JSON.stringify(pickFields(obj, kilnEntry.fieldsV1))) : undefined;
  }
  if (status) {
    const conditions = Array.isArray(status['conditions']) ? (status['conditions'] as { type: string; status: string }[]).map((c) => ({ type: c.type, status: c.status })) : undefined;
    const kept: Record<string, unknown> = {};
    for (const k of ['replicas', 'readyReplicas', 'startTime', 'completionTime', 'succeeded', 'failed']) if (status[k] !== undefined) kept[k] = status[k];
    if (conditions) kept['conditions'] = conditions;
    out['status'] = kept;
  }
  return out as T;
}

/**
 * The cache's form of a projected child: its fields in a fixed order in one
 * flat string, about 330 bytes, where the parsed projection takes about 950
 * (seven objects and a dozen strings). At 10,000 resources that is 40,000
 * children. Parsing it back is a split, microseconds, where inflating
 * deflated JSON takes tens. The separator (U+0001) occurs in no name, uid,
 * label value or JSON text; the owned fields (packed, any byte) come last and
 * take the rest of the string.
 */
export const childCodec: CacheCodec = {
  encode(obj) {
    const p = obj as ProjectedChild;
    const m = p.metadata;
    const { [PART_OF]: partOf, ...otherLabels } = m.labels ?? {};
    const owner = m.ownerReferences?.[0];
    const owned = p[KILN_FIELDS];
    const fields = [
      m.name, m.namespace ?? '', m.uid ?? '', m.resourceVersion ?? '', partOf ?? '',
      Object.keys(otherLabels).length > 0 ? JSON.stringify(otherLabels) : '',
      m.annotations?.[DESIRED_DIGEST] ?? '',
      owner?.apiVersion ?? '', owner?.kind ?? '', owner?.name ?? '', owner?.uid ?? '',
      m.managedFields?.length ? '1' : '', m.deletionTimestamp ?? '', p[IN_SYNC] ?? '',
      p['status'] === undefined ? '' : JSON.stringify(p['status']),
      owned === undefined ? '' : typeof owned === 'string' ? owned : pack(JSON.stringify(owned)),
    ];
    // join() makes one flat string; `+` would keep every part alive in a rope.
    return fields.join(SEP);
  },
  decode(text, type) {
    const f = text.split(SEP);
    const owned = f.length > CHILD_FIELDS ? f.slice(CHILD_FIELDS - 1).join(SEP) : f[CHILD_FIELDS - 1]!;
    const labels: Record<string, string> = f[5] ? (JSON.parse(f[5]) as Record<string, string>) : {};
    if (f[4]) labels[PART_OF] = f[4];
    const out: ProjectedChild = {
      apiVersion: type.apiVersion,
      kind: type.kind,
      metadata: {
        name: f[0]!,
        namespace: f[1] || undefined,
        uid: f[2] || undefined,
        resourceVersion: f[3] || undefined,
        labels,
        ...(f[6] ? { annotations: { [DESIRED_DIGEST]: f[6] } } : {}),
        ...(f[7] ? { ownerReferences: [{ apiVersion: f[7], kind: f[8]!, name: f[9]!, uid: f[10]!, controller: true }] } : {}),
        managedFields: f[11] ? KILN_APPLIED : NONE,
        ...(f[12] ? { deletionTimestamp: f[12] } : {}),
      },
      [KILN_FIELDS]: owned || undefined,
    };
    if (f[13]) out[IN_SYNC] = f[13];
    if (f[14]) out['status'] = JSON.parse(f[14]);
    return out;
  },
};
const SEP = '\u0001';
const CHILD_FIELDS = 16;

export const upToDate = (live: KubeObject | undefined, desired: K8sObject): boolean => drift(live, desired) === undefined;

/** May kiln prune this member? Only what kiln applied, never volumes, never what another controller owns. */
export function prunable(live: KubeObject, parentUid: string | undefined): boolean {
  if (live.kind === 'PersistentVolumeClaim') return false;
  if (!(live.metadata.managedFields ?? []).some((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply')) return false;
  const controller = (live.metadata.ownerReferences ?? []).find((o) => o.controller);
  return !controller || controller.uid === parentUid;
}
