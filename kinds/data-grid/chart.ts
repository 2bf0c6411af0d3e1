/**
 * DataGrid -> ConfigMap `<cache>-grid-<name>`, labelled kiln.dev/cache=<cache>:
 * the grid configuration (grid.json, keys sorted; its own settings over its
 * GridTemplate's over the defaults, kinds/data-grid/resolve.ts) that the
 * CacheCluster's members mount (kinds/cache-cluster/chart.ts).
 */
import { Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { DataGridSpec } from '../../imports/kiln.dev.js';
import { MissingInput } from '../missing-input.js';
import { standardLabels } from '../shared/labels.js';
import type { KilnResource, RenderContext } from '../types.js';
import { checkGridSettings, gridJson, resolveSettings } from './resolve.js';

export type DataGridResource = KilnResource<DataGridSpec>;
export const CACHE_LABEL = 'kiln.dev/cache';

/** The ConfigMap a DataGrid renders, which its CacheCluster's members mount. */
export const gridConfigMapName = (cache: string, grid: string) => `${cache}-grid-${grid}`;
/** The key of grid.json in that ConfigMap. */
export const GRID_KEY = 'grid.json';

export class DataGridChart extends Chart {
  constructor(scope: Construct, id: string, resource: DataGridResource, context: RenderContext = {}) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
    const { template } = resource.spec;
    const found = context.dataGrid?.template;
    if (template !== undefined && !found) {
      throw new MissingInput(`spec.template: GridTemplate ${resource.metadata.namespace ?? 'default'}/${template} not found (or not valid)`);
    }
    const settings = resolveSettings(resource.spec, found);
    const problems: { path: string; message: string }[] = [];
    checkGridSettings(settings, problems, true);
    if (problems.length > 0) throw new Error(problems.map((p) => `${p.path}: ${p.message}`).join('; '));
    new k8s.KubeConfigMap(this, 'Grid', {
      metadata: {
        name: gridConfigMapName(resource.spec.cache, resource.metadata.name),
        labels: { ...standardLabels('cache', 'grid', resource), [CACHE_LABEL]: resource.spec.cache },
      },
      data: { [GRID_KEY]: gridJson(resource.metadata.name, settings) },
    });
  }
}
