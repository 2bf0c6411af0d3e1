/**
 * KEP-3659's labels and annotations, as kubectl and kro write them: the kiln
 * resource is the ApplySet's parent (its id label, the tooling and the
 * group-kinds it may contain), every member carries the parent's id in
 * `applyset.kubernetes.io/part-of`. Plus kiln's own annotation with the
 * digest of what it rendered for a member.
 */
import { createHash } from 'node:crypto';
import { GROUP } from '../../crds/schema/generate.js';
import type { KilnResource } from '../../kinds/types.js';

export const PART_OF = 'applyset.kubernetes.io/part-of';
export const APPLYSET_ID = 'applyset.kubernetes.io/id';
export const APPLYSET_TOOLING = 'applyset.kubernetes.io/tooling';
export const APPLYSET_GROUP_KINDS = 'applyset.kubernetes.io/contains-group-kinds';
export const DESIRED_DIGEST = 'kiln.dev/desired-digest';

/** The parent's id: base64url(sha256("<name>.<namespace>.<Kind>.<group>")), as the KEP defines it. */
export function applySetId(r: KilnResource): string {
  const digest = createHash('sha256')
    .update(`${r.metadata.name}.${r.metadata.namespace ?? 'default'}.${r.kind}.${GROUP}`)
    .digest('base64url');
  return `applyset-${digest}-v1`;
}

/**
 * The parent's ApplySet metadata for members of `groupKinds`, or undefined
 * when `parent` already carries it. Group-kinds recorded before are kept, so
 * members of a kind no longer rendered can still be found and pruned.
 */
export function parentMetadata(
  parent: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } },
  id: string,
  groupKinds: string[],
  tooling: string,
): { labels: Record<string, string>; annotations: Record<string, string> } | undefined {
  const labels = parent.metadata.labels ?? {};
  const annotations = parent.metadata.annotations ?? {};
  const known = (annotations[APPLYSET_GROUP_KINDS] ?? '').split(',').filter(Boolean);
  const merged = [...new Set([...known, ...groupKinds])].sort().join(',');
  if (labels[APPLYSET_ID] === id && annotations[APPLYSET_TOOLING] === tooling && annotations[APPLYSET_GROUP_KINDS] === merged) return undefined;
  return { labels: { [APPLYSET_ID]: id }, annotations: { [APPLYSET_TOOLING]: tooling, [APPLYSET_GROUP_KINDS]: merged } };
}
