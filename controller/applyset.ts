/**
 * ApplySet bookkeeping (KEP-3659, as kubectl and kro use it): the kiln
 * resource is the parent, every object applied for it carries the parent's id
 * in `applyset.kubernetes.io/part-of`, and pruning removes members that are no
 * longer rendered. Plus the "no write when nothing changed" test for a child:
 * its last applied content is recorded as a digest annotation, and the live
 * object must still hold every field kiln sets.
 */
import { createHash } from 'node:crypto';
import type { K8sObject, KilnResource } from '../charts/types.js';
import { quantityToNumber } from '../charts/shared/quantity.js';
import { GROUP } from '../crds/schema/generate.js';
import type { KubeObject } from './informer.js';

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

export function digest(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 32);
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

/** Why applying `desired` would change something (for the log), or undefined when it would not. */
export function drift(live: KubeObject | undefined, desired: K8sObject): string | undefined {
  if (!live) return 'absent';
  if (live.metadata.deletionTimestamp) return 'being deleted';
  if (live.metadata.annotations?.[DESIRED_DIGEST] !== desired.metadata.annotations?.[DESIRED_DIGEST]) return 'rendered content changed';
  const { status: _s, ...want } = desired as K8sObject & { status?: unknown };
  return firstDifference(live, want);
}

export const upToDate = (live: KubeObject | undefined, desired: K8sObject): boolean => drift(live, desired) === undefined;

/** May kiln prune this member? Only what kiln applied, never volumes, never what another controller owns. */
export function prunable(live: KubeObject, parentUid: string | undefined): boolean {
  if (live.kind === 'PersistentVolumeClaim') return false;
  if (!(live.metadata.managedFields ?? []).some((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply')) return false;
  const controller = (live.metadata.ownerReferences ?? []).find((o) => o.controller);
  return !controller || controller.uid === parentUid;
}
