/** The kinds kiln reads and writes, and their REST paths. */
import { KINDS } from '../crds/schema/kinds.js';
import { API_VERSION } from '../crds/schema/generate.js';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name?: string;
}

interface KindInfo { plural: string; namespaced: boolean }

const BUILTIN: Record<string, KindInfo> = {
  'v1/ConfigMap': { plural: 'configmaps', namespaced: true },
  'v1/Secret': { plural: 'secrets', namespaced: true },
  'v1/Service': { plural: 'services', namespaced: true },
  'v1/PersistentVolumeClaim': { plural: 'persistentvolumeclaims', namespaced: true },
  'v1/ServiceAccount': { plural: 'serviceaccounts', namespaced: true },
  'v1/Event': { plural: 'events', namespaced: true },
  'v1/Pod': { plural: 'pods', namespaced: true },
  'v1/Namespace': { plural: 'namespaces', namespaced: false },
  'apps/v1/StatefulSet': { plural: 'statefulsets', namespaced: true },
  'apps/v1/Deployment': { plural: 'deployments', namespaced: true },
  'batch/v1/Job': { plural: 'jobs', namespaced: true },
  'policy/v1/PodDisruptionBudget': { plural: 'poddisruptionbudgets', namespaced: true },
  'snapshot.storage.k8s.io/v1/VolumeSnapshot': { plural: 'volumesnapshots', namespaced: true },
  'coordination.k8s.io/v1/Lease': { plural: 'leases', namespaced: true },
};

const KILN: Record<string, KindInfo> = Object.fromEntries(KINDS.map((k) => [`${API_VERSION}/${k.kind}`, { plural: k.plural, namespaced: true }]));

export function kindInfo(apiVersion: string, kind: string): KindInfo {
  const info = BUILTIN[`${apiVersion}/${kind}`] ?? KILN[`${apiVersion}/${kind}`];
  if (!info) throw new Error(`kiln does not know the REST path of ${apiVersion}/${kind}`);
  return info;
}

export function pathFor(ref: ObjectRef, subresource?: string): string {
  const info = kindInfo(ref.apiVersion, ref.kind);
  const base = ref.apiVersion.includes('/') ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
  const ns = info.namespaced && ref.namespace ? `/namespaces/${encodeURIComponent(ref.namespace)}` : '';
  const name = ref.name ? `/${encodeURIComponent(ref.name)}` : '';
  return `${base}${ns}/${info.plural}${name}${ref.name && subresource ? `/${subresource}` : ''}`;
}

/** Kinds that kiln's charts render (apply mode watches them to repair drift). */
export const CHILD_KINDS: { apiVersion: string; kind: string }[] = [
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'v1', kind: 'Service' },
  { apiVersion: 'v1', kind: 'PersistentVolumeClaim' },
  { apiVersion: 'apps/v1', kind: 'StatefulSet' },
  { apiVersion: 'batch/v1', kind: 'Job' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' },
  { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot' },
];

export const KILN_KINDS: { apiVersion: string; kind: string }[] = KINDS.map((k) => ({ apiVersion: API_VERSION, kind: k.kind }));

/** `<group>/<Kind>` as ApplySet's contains-group-kinds spells it: `StatefulSet.apps`, `Service`. */
export function groupKind(apiVersion: string, kind: string): string {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  return group ? `${kind}.${group}` : kind;
}
