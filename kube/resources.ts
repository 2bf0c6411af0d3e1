/**
 * Kinds and their REST paths: the built-in kinds the runtime uses, and those a
 * program registers (its custom resources), as client-go's RESTMapper answers
 * from discovery. A static table: one discovery round trip per start-up
 * avoided, and an unknown kind fails loudly instead of guessing a plural.
 */

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name?: string;
}

export interface KindInfo {
  plural: string;
  namespaced: boolean;
}

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

const registered = new Map<string, KindInfo>();

/** Makes `apiVersion/kind` known (a custom resource's plural and scope, as its CRD says). */
export function registerKind(apiVersion: string, kind: string, info: KindInfo): void {
  registered.set(`${apiVersion}/${kind}`, info);
}

export function kindInfo(apiVersion: string, kind: string): KindInfo {
  const info = BUILTIN[`${apiVersion}/${kind}`] ?? registered.get(`${apiVersion}/${kind}`);
  if (!info) throw new Error(`unknown kind ${apiVersion}/${kind}: no REST path registered for it`);
  return info;
}

export function pathFor(ref: ObjectRef, subresource?: string): string {
  const info = kindInfo(ref.apiVersion, ref.kind);
  const base = ref.apiVersion.includes('/') ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
  const ns = info.namespaced && ref.namespace ? `/namespaces/${encodeURIComponent(ref.namespace)}` : '';
  const name = ref.name ? `/${encodeURIComponent(ref.name)}` : '';
  return `${base}${ns}/${info.plural}${name}${ref.name && subresource ? `/${subresource}` : ''}`;
}

/** `<group>/<Kind>` as ApplySet's contains-group-kinds spells it: `StatefulSet.apps`, `Service`. */
export function groupKind(apiVersion: string, kind: string): string {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  return group ? `${kind}.${group}` : kind;
}
