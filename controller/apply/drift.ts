/**
 * Owned-fields drift: would applying what kiln rendered change anything?
 * Compared against a full object field by field (only the fields kiln's field
 * manager owns), or against a cached child's owned-fields digest.
 */
import type { K8sObject } from '../../kinds/types.js';
import { quantityToNumber } from '../../kinds/shared/quantity.js';
import type { KubeObject } from '../../kube/informer.js';
import { DESIRED_DIGEST } from './applyset-labels.js';
import { OWNED_DIGEST, type ProjectedChild } from './child-cache.js';
import { kilnApplyEntry, pickFields } from './managed-fields.js';

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
  const {
    apiVersion: _a,
    kind: _k,
    metadata: { name: _n, namespace: _ns, ...metadata },
    ...spec
  } = rest;
  return firstDifference(pickFields(live, entry.fieldsV1 ?? {}), { ...spec, metadata });
}
