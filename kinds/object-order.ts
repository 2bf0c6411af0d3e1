/** The order objects are written and applied in, apart from the renderer so that readers of rendered output need not load cdk8s. */
import type { K8sObject } from './types.js';

/** Install order: what others reference comes first. Unknown kinds sort last, by name. */
const KIND_ORDER = ['Namespace', 'ServiceAccount', 'Secret', 'ConfigMap', 'PersistentVolumeClaim', 'VolumeSnapshot', 'Service', 'PodDisruptionBudget', 'StatefulSet', 'Deployment', 'Job'];

function rank(kind: string): number {
  const i = KIND_ORDER.indexOf(kind);
  return i === -1 ? KIND_ORDER.length : i;
}

export function compareObjects(a: K8sObject, b: K8sObject): number {
  return rank(a.kind) - rank(b.kind) || a.kind.localeCompare(b.kind) || (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.metadata.name.localeCompare(b.metadata.name);
}
