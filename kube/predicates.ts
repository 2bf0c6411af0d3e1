/**
 * Event filters, as controller-runtime's predicate package has them: which
 * updates a reconciler need not see (its own status writes come back as
 * updates), and whom a child's event belongs to.
 */
import type { KubeObject } from './informer.js';

type Meta = KubeObject['metadata'];

const sameMap = (a: Record<string, string> | undefined, b: Record<string, string> | undefined) => {
  const ka = Object.keys(a ?? {});
  return ka.length === Object.keys(b ?? {}).length && ka.every((k) => a?.[k] === b?.[k]);
};

/** The spec changed (controller-runtime's GenerationChangedPredicate): a status-only update keeps the generation. */
export const generationChanged = (old: KubeObject, obj: KubeObject): boolean => old.metadata.generation !== obj.metadata.generation;

/** Deletion started or a finalizer came or went. */
export const lifecycleChanged = (old: KubeObject, obj: KubeObject): boolean =>
  old.metadata.deletionTimestamp !== obj.metadata.deletionTimestamp || (old.metadata.finalizers ?? []).join(',') !== (obj.metadata.finalizers ?? []).join(',');

/** Labels or annotations changed (LabelChangedPredicate, AnnotationChangedPredicate). */
export const metadataChanged = (old: KubeObject, obj: KubeObject): boolean => !sameMap(old.metadata.labels, obj.metadata.labels) || !sameMap(old.metadata.annotations, obj.metadata.annotations);

/** Anything a reconciler reads outside status changed: another object (uid), spec, lifecycle, labels or annotations. */
export const inputsChanged = (old: KubeObject, obj: KubeObject): boolean =>
  old.metadata.uid !== obj.metadata.uid || generationChanged(old, obj) || lifecycleChanged(old, obj) || metadataChanged(old, obj);

/** The owner reference that says who controls `obj`, when that controller is of API group `group`. */
export function controllerOf(obj: { metadata: Pick<Meta, 'ownerReferences'> }, group: string): NonNullable<Meta['ownerReferences']>[number] | undefined {
  return (obj.metadata.ownerReferences ?? []).find((o) => o.controller && o.apiVersion.startsWith(`${group}/`));
}
