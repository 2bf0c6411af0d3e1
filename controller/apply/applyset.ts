/**
 * ApplySet bookkeeping (KEP-3659, as kubectl and kro use it): the kiln
 * resource is the parent, every object applied for it carries the parent's id
 * in `applyset.kubernetes.io/part-of`, and pruning removes members that are no
 * longer rendered. Plus the "no write when nothing changed" test for a child:
 * the digest of its rendered content is an annotation on it, and the digest of
 * the values kiln's field manager owns in it is recorded in the resource's
 * status inventory (drift()).
 */
import { createHash } from 'node:crypto';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { quantityToNumber } from '../../kinds/shared/quantity.js';
import { GROUP } from '../../crds/schema/generate.js';
import type { CacheCodec, KubeObject } from '../../kube/informer.js';

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
 * Why applying `desired` would change something (for the log), or undefined
 * when it would not, or VERIFY when only the object's full content can tell.
 * A full object (with managedFields' field sets, as the API returns it) is
 * compared with `desired` field by field (ownedFieldsDrift). A projected child
 * (projectChild) holds only the digest of the fields kiln's field manager owns
 * there: it is in sync when that digest is the one kiln recorded (`recorded`,
 * from its own apply or an earlier comparison, kept in the resource's status
 * inventory), since another writer cannot change a value kiln owns without
 * taking the field from kiln's set; otherwise the caller reads the object and
 * compares.
 */
export function drift(live: KubeObject | undefined, desired: K8sObject, recorded?: string): string | undefined | typeof VERIFY {
  if (!live) return 'absent';
  if (live.metadata.deletionTimestamp) return 'being deleted';
  if (live.metadata.annotations?.[DESIRED_DIGEST] !== desired.metadata.annotations?.[DESIRED_DIGEST]) return 'rendered content changed';
  if (!(OWNED_DIGEST in live)) return ownedFieldsDrift(live, desired);
  const owned = (live as ProjectedChild)[OWNED_DIGEST];
  if (owned === undefined) return 'kiln owns no field of it';
  return owned === recorded ? undefined : VERIFY;
}

/** drift()'s answer when the object has to be read and compared (ownedFieldsDrift). */
export const VERIFY = Symbol('verify');

/**
 * Where the fields kiln's field manager owns in `live` (a full object) differ
 * from `desired`; a field another manager took over counts as drift.
 */
export function ownedFieldsDrift(live: KubeObject, desired: K8sObject): string | undefined {
  const { status: _s, ...rest } = desired as K8sObject & { status?: unknown };
  const entry = kilnApplyEntry(live);
  if (!entry) return (live.metadata.managedFields ?? []).length > 0 ? 'kiln owns no field of it' : firstDifference(live, rest);
  // Identity (apiVersion, kind, name, namespace) is in no field set.
  const { apiVersion: _a, kind: _k, metadata: { name: _n, namespace: _ns, ...metadata }, ...spec } = rest;
  return firstDifference(pickFields(live, entry.fieldsV1 ?? {}), { ...spec, metadata });
}

type ManagedFieldsEntry = { manager?: string; operation?: string; subresource?: string; fieldsV1?: FieldsV1 };
const kilnApplyEntry = (obj: KubeObject): ManagedFieldsEntry | undefined =>
  ((obj.metadata.managedFields ?? []) as ManagedFieldsEntry[]).find((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply' && !f.subresource);

/**
 * The digest of the values kiln's field manager owns in `obj` (a full object),
 * undefined when it owns none. What the status inventory records per object.
 */
export function ownedDigest(obj: KubeObject): string | undefined {
  const entry = kilnApplyEntry(obj);
  return entry?.fieldsV1 ? digest(pickFields(obj, entry.fieldsV1)) : undefined;
}

/** The owned-fields digest of a projected child (projectChild), if it has one. */
export const projectedOwnedDigest = (child: KubeObject): string | undefined => (child as ProjectedChild)[OWNED_DIGEST];

// ---------------------------------------------------------------------------
// What the cache keeps of a child (the informer's transform)

/** `apiVersion/Kind/namespace/name`: one key per member, for the caches and the reconciler's bookkeeping. */
export const childKey = (o: { apiVersion?: string; kind?: string; metadata: { namespace?: string; name: string } }) => `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/**
 * The owned-fields digests of kiln's own applies, by object and resourceVersion:
 * the watch event of that version needs no second digest. One per Manager (its
 * informers' transform and its reconciler share it), so nothing outlives it.
 * An entry goes when its event comes or the object is deleted; entries whose
 * event never comes any other way are dropped wholesale past a bound.
 */
export class OwnWrites {
  private readonly writes = new Map<string, { rv: string; owned: string | undefined }>();
  constructor(private readonly max = 50_000) {}

  /**
   * Called with what the API server answered to kiln's apply of `desired`, and
   * the resourceVersion the cache holds for it now; returns the owned-fields
   * digest to record. A watch event that came before the answer has been
   * projected already: nothing to keep for it.
   */
  record(written: KubeObject, desired: K8sObject, cachedVersion: string | undefined): string | undefined {
    const rv = written.metadata?.resourceVersion;
    const owned = ownedDigest(written);
    if (!rv || rv === cachedVersion) return owned;
    if (this.writes.size >= this.max) this.writes.clear();
    this.writes.set(childKey({ ...desired, metadata: { ...desired.metadata, namespace: desired.metadata.namespace ?? written.metadata.namespace } }), { rv, owned });
    return owned;
  }

  /** The digest kiln's own write of exactly this version recorded, once. */
  take(key: string, resourceVersion: string | undefined): { owned: string | undefined } | undefined {
    const own = this.writes.get(key);
    if (!own || own.rv !== resourceVersion) return undefined;
    this.writes.delete(key);
    return own;
  }

  /** The object is gone: its event will never come. */
  forget(obj: { apiVersion?: string; kind?: string; metadata: { namespace?: string; name: string } }): void {
    this.writes.delete(childKey(obj));
  }

  get size(): number {
    return this.writes.size;
  }

  has(key: string): boolean {
    return this.writes.has(key);
  }
}

const OWNED_DIGEST = 'kiln.dev/owned-digest';

type ProjectedChild = KubeObject & { [OWNED_DIGEST]?: string };
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
 * fields the reconciler reads, and the digest of the values kiln's field
 * manager owns (ownedDigest). Everything else (defaults, other managers'
 * fields, the rest of the status, the owned values themselves) is dropped:
 * with 10,000 resources the full objects would not fit the memory target.
 */
/** Status fields the reconciler reads: members and rollout (StatefulSet), result (Job). */
const STATUS_KEPT = ['replicas', 'readyReplicas', 'updatedReplicas', 'currentReplicas', 'observedGeneration', 'startTime', 'completionTime', 'succeeded', 'failed'];

export function projectChild<T extends KubeObject>(obj: T, ownWrites?: OwnWrites): T {
  const m = obj.metadata;
  const kilnEntry = kilnApplyEntry(obj);
  const labels: Record<string, string> = {};
  const digestValue = m.annotations?.[DESIRED_DIGEST];
  const controller = m.ownerReferences?.find((o) => o.controller);
  // The owner labels only matter where no controller reference names the owner (ConfigMapSync copies).
  const kept = controller?.apiVersion.startsWith(`${GROUP}/`) ? [PART_OF] : KEPT_LABELS;
  for (const k of kept) if (m.labels?.[k] !== undefined) labels[k] = k === 'kiln.dev/owner-name' || k === PART_OF ? m.labels[k]! : intern(m.labels[k]!);
  const status = obj['status'] as Record<string, unknown> | undefined;
  const key = childKey(obj);
  // kiln's own apply answered with this version: its digest is known.
  const own = ownWrites?.take(key, m.resourceVersion);
  const owned = own ? own.owned : ownedDigest(obj);
  const out: ProjectedChild = {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: {
      name: m.name,
      namespace: m.namespace === undefined ? undefined : intern(m.namespace),
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      ...(m.generation !== undefined ? { generation: m.generation } : {}),
      labels,
      ...(digestValue !== undefined ? { annotations: { [DESIRED_DIGEST]: digestValue } } : {}),
      ...(controller ? { ownerReferences: [{ apiVersion: intern(controller.apiVersion), kind: intern(controller.kind), name: controller.name, uid: controller.uid, controller: true }] } : {}),
      // prunable() asks only whether kiln applied it.
      managedFields: kilnEntry ? KILN_APPLIED : NONE,
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    [OWNED_DIGEST]: owned,
  };
  if (status) {
    // A Job's failure message is shown on the resource; other messages are not read.
    const conditions = Array.isArray(status['conditions'])
      ? (status['conditions'] as { type: string; status: string; message?: string }[]).map((c) => (c.type === 'Failed' && c.status === 'True' && c.message ? { type: c.type, status: c.status, message: c.message } : { type: c.type, status: c.status }))
      : undefined;
    const kept: Record<string, unknown> = {};
    for (const k of STATUS_KEPT) if (status[k] !== undefined) kept[k] = status[k];
    // A rollout in progress: the revisions only matter while they differ.
    if (status['currentRevision'] !== status['updateRevision']) {
      if (status['currentRevision'] !== undefined) kept['currentRevision'] = status['currentRevision'];
      if (status['updateRevision'] !== undefined) kept['updateRevision'] = status['updateRevision'];
    }
    if (conditions) kept['conditions'] = conditions;
    out['status'] = kept;
  }
  return out as T;
}

/**
 * The cache's form of a projected child: its fields in a fixed order in one
 * flat string, about 300 bytes, where the parsed projection takes about 950
 * (seven objects and a dozen strings). At 10,000 resources that is 40,000
 * children. Parsing it back is a split, microseconds, where inflating
 * deflated JSON takes tens. The separator (U+0001) occurs in no name, uid,
 * label value, digest or JSON text.
 */
export const childCodec: CacheCodec = {
  encode(obj) {
    const p = obj as ProjectedChild;
    const m = p.metadata;
    const { [PART_OF]: partOf, ...otherLabels } = m.labels ?? {};
    const owner = m.ownerReferences?.[0];
    const fields = [
      m.name, m.namespace ?? '', m.uid ?? '', m.resourceVersion ?? '', partOf ?? '',
      Object.keys(otherLabels).length > 0 ? JSON.stringify(otherLabels) : '',
      m.annotations?.[DESIRED_DIGEST] ?? '',
      owner?.apiVersion ?? '', owner?.kind ?? '', owner?.name ?? '', owner?.uid ?? '',
      m.managedFields?.length ? '1' : '', m.deletionTimestamp ?? '', p[OWNED_DIGEST] ?? '',
      p['status'] === undefined ? '' : JSON.stringify(p['status']),
      m.generation === undefined ? '' : String(m.generation),
    ];
    // join() makes one flat string; `+` would keep every part alive in a rope.
    return fields.join(SEP);
  },
  decode(text, type) {
    const f = text.split(SEP);
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
        ...(f[15] ? { generation: Number(f[15]) } : {}),
        labels,
        ...(f[6] ? { annotations: { [DESIRED_DIGEST]: f[6] } } : {}),
        ...(f[7] ? { ownerReferences: [{ apiVersion: f[7], kind: f[8]!, name: f[9]!, uid: f[10]!, controller: true }] } : {}),
        managedFields: f[11] ? KILN_APPLIED : NONE,
        ...(f[12] ? { deletionTimestamp: f[12] } : {}),
      },
      [OWNED_DIGEST]: f[13] || undefined,
    };
    if (f[14]) out['status'] = JSON.parse(f[14]);
    return out;
  },
};
const SEP = '\u0001';

/**
 * Is `obj` this resource's to write? Its controller reference names the
 * resource by UID, or it has no controller and is a member of the resource's
 * ApplySet (an object kiln applied for a same-named resource that was deleted
 * with `--cascade=orphan`). Anything else (a tenant's own Service, an object
 * another controller or an earlier resource of the same name controls) kiln
 * must not take over: force-applying it would overwrite it and give it to the
 * garbage collector along with the resource (kro and Flux refuse the same way).
 */
export function belongsTo(obj: KubeObject, parent: { metadata: { uid?: string } }, id: string): boolean {
  const controller = (obj.metadata.ownerReferences ?? []).find((o) => o.controller);
  if (controller) return controller.uid === parent.metadata.uid;
  return obj.metadata.labels?.[PART_OF] === id;
}

/** Names an object kiln will not take over, and who has it, for a Stalled message. */
export function describeForeign(obj: KubeObject): string {
  const controller = (obj.metadata.ownerReferences ?? []).find((o) => o.controller);
  const who = controller ? `is controlled by ${controller.kind}/${controller.name} (uid ${controller.uid})` : 'was not created by kiln for this resource';
  return `${obj.kind} ${obj.metadata.namespace ?? ''}/${obj.metadata.name} exists and ${who}`;
}

/** May kiln prune this member? Only what kiln applied, never volumes, never what another controller owns. */
export function prunable(live: KubeObject, parentUid: string | undefined): boolean {
  if (live.kind === 'PersistentVolumeClaim') return false;
  if (!(live.metadata.managedFields ?? []).some((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply')) return false;
  const controller = (live.metadata.ownerReferences ?? []).find((o) => o.controller);
  return !controller || controller.uid === parentUid;
}
