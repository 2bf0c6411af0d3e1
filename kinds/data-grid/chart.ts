/**
 * DataGrid -> ConfigMap `<cache>-grid-<name>`, labelled kiln.dev/cache=<cache>:
 * the grid configuration (grid.json, keys sorted) that the members of that
 * CacheCluster load.
 */
import { Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { DataGridSpec } from '../../imports/kiln.dev.js';
import { standardLabels } from '../shared/labels.js';
import type { KilnResource } from '../types.js';

export type DataGridResource = KilnResource<DataGridSpec>;
export const CACHE_LABEL = 'kiln.dev/cache';

export function gridConfiguration(resource: DataGridResource): Record<string, unknown> {
  const s = resource.spec;
  return {
    asyncReplicas: s.asyncReplicas ?? 1,
    capacity: s.capacity ?? null,
    // The members' file keeps its lower-case spelling (what their entrypoints compare against);
    // only the API's spelling follows the Kubernetes conventions (Simple, Session, Dynamic).
    gridType: (s.gridType ?? 'Simple').toLowerCase(),
    lockTimeoutSeconds: s.lockTimeoutSeconds ?? 15,
    name: resource.metadata.name,
    partitions: s.partitions ?? 13,
    syncReplicas: s.syncReplicas ?? 0,
    timeToLiveSeconds: s.timeToLiveSeconds ?? 0,
    transactionTimeoutSeconds: s.transactionTimeoutSeconds ?? 30,
  };
}

export class DataGridChart extends Chart {
  constructor(scope: Construct, id: string, resource: DataGridResource) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
    new k8s.KubeConfigMap(this, 'Grid', {
      metadata: {
        name: `${resource.spec.cache}-grid-${resource.metadata.name}`,
        labels: { ...standardLabels('cache', 'grid', resource), [CACHE_LABEL]: resource.spec.cache },
      },
      data: { 'grid.json': `${JSON.stringify(gridConfiguration(resource), null, 2)}\n` },
    });
  }
}
