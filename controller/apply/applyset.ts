/**
 * ApplySet bookkeeping (KEP-3659, as kubectl and kro use it): the kiln
 * resource is the parent, every object applied for it carries the parent's id
 * in `applyset.kubernetes.io/part-of`, and pruning removes members that are no
 * longer rendered. Each part is a small stateless module of its own (as in
 * fluxcd/pkg/ssa): the KEP's labels (./applyset-labels.ts), owned-fields drift
 * (./drift.ts), managedFields (./managed-fields.ts), the prune policy
 * (./prune-policy.ts), the child cache's projection (./child-cache.ts) and
 * kiln's own writes (./own-writes.ts), whose state (OwnWrites, Interner) the
 * Manager owns. This module decorates a
 * rendered object as a member, and re-exports the parts.
 */
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { DESIRED_DIGEST, PART_OF } from './applyset-labels.js';
import { digest } from './digest.js';

export { APPLYSET_GROUP_KINDS, APPLYSET_ID, APPLYSET_TOOLING, applySetId, DESIRED_DIGEST, PART_OF, parentMetadata } from './applyset-labels.js';
export { digest } from './digest.js';
export { appliedByKiln, FIELD_MANAGER, ownedDigest, pickFields, type FieldsV1 } from './managed-fields.js';
export { contains, drift, firstDifference, ownedFieldsDrift, VERIFY } from './drift.js';
export { belongsTo, describeForeign, prunable } from './prune-policy.js';
export { childCodec, childKey, Interner, projectChild, projectedOwnedDigest } from './child-cache.js';
export { OwnWrites } from './own-writes.js';

/**
 * What the controller adds to each rendered object: membership, ownership, the digest of the rest.
 * `copied`: labels of the parent every member carries too (a shard's: the selector that picks the
 * resource then picks its members).
 */
export function decorate(obj: K8sObject, parent: KilnResource & { metadata: { uid?: string } }, id: string, copied: Record<string, string> = {}): K8sObject {
  const sameNamespace = (obj.metadata.namespace ?? parent.metadata.namespace) === parent.metadata.namespace;
  const ownerReferences =
    sameNamespace && parent.metadata.uid
      ? [{ apiVersion: parent.apiVersion, kind: parent.kind, name: parent.metadata.name, uid: parent.metadata.uid, controller: true, blockOwnerDeletion: true }]
      : undefined;
  const withOwnership: K8sObject = {
    ...obj,
    metadata: {
      ...obj.metadata,
      labels: { ...obj.metadata.labels, ...copied, [PART_OF]: id },
      ...(ownerReferences ? { ownerReferences } : {}),
    },
  };
  return {
    ...withOwnership,
    metadata: { ...withOwnership.metadata, annotations: { ...obj.metadata.annotations, [DESIRED_DIGEST]: digest(withOwnership) } },
  };
}
