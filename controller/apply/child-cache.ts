/**
 * What the informers' caches keep of the objects kiln renders (the
 * informer's transform, projectChild, and its codec), and the owned-fields
 * digests of kiln's own applies until their watch events come (OwnWrites).
 * The state is the Manager's (OwnWrites, Interner), never this module's.
 */
import { GROUP } from '../../crds/schema/generate.js';
import type { CacheCodec, KubeObject } from '../../kube/informer.js';
import { DESIRED_DIGEST, PART_OF } from './applyset-labels.js';
import { FIELD_MANAGER, kilnApplyEntry, ownedDigest } from './managed-fields.js';
import type { OwnWrites } from './own-writes.js';

/** `apiVersion/Kind/namespace/name`: one key per member, for the caches and the reconciler's bookkeeping. */
export const childKey = (o: { apiVersion?: string; kind?: string; metadata: { namespace?: string; name: string } }) => `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** Where a projected child holds the digest of the values kiln's field manager owns in it. */
export const OWNED_DIGEST = 'kiln.dev/owned-digest';

export type ProjectedChild = KubeObject & { [OWNED_DIGEST]?: string };
/**
 * One copy of each of the few namespaces, owner apiVersions and kinds, not one
 * per cached child (JSON.parse makes a new string each time). The Manager's,
 * like its caches: two managers in one process keep their own.
 */
export class Interner {
  private readonly strings = new Map<string, string>();
  constructor(private readonly max = 1000) {}

  intern(s: string): string {
    const have = this.strings.get(s);
    if (have !== undefined) return have;
    if (this.strings.size < this.max) this.strings.set(s, s);
    return s;
  }

  get size(): number {
    return this.strings.size;
  }
}

/** Labels a child keeps in the cache: membership and the owner labels the manager maps events with. */
const KEPT_LABELS = [PART_OF, 'kiln.dev/owner-kind', 'kiln.dev/owner-name', 'kiln.dev/owner-namespace'];

/** Shared by every cached child: read only. */
const KILN_APPLIED = Object.freeze([Object.freeze({ manager: FIELD_MANAGER, operation: 'Apply' })]) as unknown as { manager: string; operation: string }[];
const NONE = Object.freeze([]) as unknown as { manager: string; operation: string }[];

/**
 * What the cache keeps of an object kiln renders: identity, membership, the
 * controller reference, who manages it, the digest kiln applied, the status
 * fields the reconciler reads, and the digest of the values kiln's field
 * manager owns (ownedDigest). Everything else (defaults, other managers'
 * fields, the rest of the status, the owned values themselves) is dropped:
 * with 10,000 resources the full objects would not fit the memory target.
 */
/** Status fields the reconciler reads: members and rollout (StatefulSet, Deployment), result (Job). */
const STATUS_KEPT = ['replicas', 'readyReplicas', 'availableReplicas', 'updatedReplicas', 'currentReplicas', 'observedGeneration', 'startTime', 'completionTime', 'succeeded', 'failed'];

export function projectChild<T extends KubeObject>(obj: T, ownWrites?: OwnWrites, names?: Interner): T {
  const m = obj.metadata;
  // Without an Interner (a one-off projection), every string is its own.
  const intern = (v: string) => (names ? names.intern(v) : v);
  const kilnEntry = kilnApplyEntry(obj);
  const labels: Record<string, string> = {};
  const digestValue = m.annotations?.[DESIRED_DIGEST];
  const controller = m.ownerReferences?.find((o) => o.controller);
  // The owner labels only matter where no controller reference names the owner (ConfigMapSync copies).
  const kept = controller?.apiVersion.startsWith(`${GROUP}/`) ? [PART_OF] : KEPT_LABELS;
  for (const k of kept) if (m.labels?.[k] !== undefined) labels[k] = k === 'kiln.dev/owner-name' || k === PART_OF ? m.labels[k] : intern(m.labels[k]);
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
    // A Job's failure message and a Deployment's missed progress deadline are shown on the resource;
    // other messages are not read.
    const conditions = Array.isArray(status['conditions'])
      ? (status['conditions'] as { type: string; status: string; reason?: string; message?: string }[]).map((c) =>
          c.type === 'Failed' && c.status === 'True' && c.message
            ? { type: c.type, status: c.status, message: c.message }
            : c.type === 'Progressing' && c.status === 'False' && c.reason === 'ProgressDeadlineExceeded'
              ? { type: c.type, status: c.status, reason: c.reason, ...(c.message ? { message: c.message } : {}) }
              : { type: c.type, status: c.status },
        )
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
      m.name,
      m.namespace ?? '',
      m.uid ?? '',
      m.resourceVersion ?? '',
      partOf ?? '',
      Object.keys(otherLabels).length > 0 ? JSON.stringify(otherLabels) : '',
      m.annotations?.[DESIRED_DIGEST] ?? '',
      owner?.apiVersion ?? '',
      owner?.kind ?? '',
      owner?.name ?? '',
      owner?.uid ?? '',
      m.managedFields?.length ? '1' : '',
      m.deletionTimestamp ?? '',
      p[OWNED_DIGEST] ?? '',
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

/** The owned-fields digest of a projected child (projectChild), if it has one. */
export const projectedOwnedDigest = (child: KubeObject): string | undefined => (child as ProjectedChild)[OWNED_DIGEST];
