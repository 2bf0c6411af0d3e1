import type { GridSettings } from './data-grid/resolve.js';

/** The shape of a kiln custom resource as it arrives from YAML or the API. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface KilnResource<Spec = object> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Record<string, unknown>;
}

/** A rendered Kubernetes object (plain JSON, ready for YAML or server-side apply). */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** Quantities as users write them: `cpu: 2` or `memory: 2Gi`. */
export type QuantityMap = Record<string, string | number>;
export interface ResourceRequirements {
  requests?: QuantityMap;
  limits?: QuantityMap;
}

/**
 * Inputs a chart may need beyond the resource itself. Charts stay pure: the
 * controller (or `kiln synth`, from the input files) looks these up and hands
 * them in.
 */
export interface RenderContext {
  /** ConfigMapSync: the source ConfigMap, and the target namespaces resolved from the selector. */
  configMapSync?: {
    source?: { data?: Record<string, string>; binaryData?: Record<string, string> };
    selectedNamespaces?: string[];
  };
  /** DirectoryBackup: the DirectoryService it backs up, when found (its snapshot class is the backup's default). */
  directoryService?: { volumeSnapshotClassName?: string };
  /** DataGrid with spec.template: that GridTemplate's spec, when it exists (kinds/data-grid/render-inputs.ts). */
  dataGrid?: { template?: GridSettings };
  /** CacheCluster: the grids its members mount, by name, each with the grid.json its DataGrid's ConfigMap carries. */
  cacheCluster?: { grids: { name: string; configuration: string }[] };
}
