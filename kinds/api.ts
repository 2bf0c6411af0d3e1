/**
 * kiln's API: its group, version and kinds, and their REST names registered
 * with kube/'s kind table (as a Go operator adds its types to the scheme).
 * Light on purpose: the agent imports this and nothing of the renderer.
 */
import { KINDS } from '../crds/schema/kinds.js';
import { groupKind, registerKind } from '../kube/resources.js';

export const GROUP = 'kiln.dev';
export const VERSION = 'v1alpha1';
export const KILN_API_VERSION = `${GROUP}/${VERSION}`;

/** Every kiln kind, as the API serves it. */
export const KILN_KINDS: { apiVersion: string; kind: string }[] = KINDS.map((k) => ({ apiVersion: KILN_API_VERSION, kind: k.kind }));

for (const k of KINDS) registerKind(KILN_API_VERSION, k.kind, { plural: k.plural, namespaced: true });

/** Kinds that kiln's charts render (apply mode watches them to repair drift, prune and diff look them up). */
export const CHILD_KINDS: { apiVersion: string; kind: string }[] = [
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'v1', kind: 'Service' },
  { apiVersion: 'v1', kind: 'PersistentVolumeClaim' },
  { apiVersion: 'apps/v1', kind: 'StatefulSet' },
  { apiVersion: 'apps/v1', kind: 'Deployment' },
  { apiVersion: 'batch/v1', kind: 'Job' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' },
  { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot' },
];

/**
 * On a rendered object: apply it only once another object of the same render
 * reaches a condition (`batch/v1/Job/<name>:Complete`). Until then it waits
 * and is not pruned.
 */
export const APPLY_AFTER_ANNOTATION = `${GROUP}/apply-after`;

export const isKilnKind = (apiVersion: string, kind: string) => apiVersion === KILN_API_VERSION && KILN_KINDS.some((k) => k.kind === kind);
export { groupKind };
