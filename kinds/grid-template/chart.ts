/**
 * GridTemplate -> nothing. It is configuration other resources read: the
 * DataGrids that name it in spec.template render it into their ConfigMaps
 * (kinds/data-grid/resolve.ts). Rendering through an empty chart keeps it on
 * the common path: validated like every kind (Stalled when invalid), Ready
 * once valid, nothing applied or committed.
 */
import { Chart } from 'cdk8s';
import type { Construct } from 'constructs';
import type { KilnResource } from '../types.js';

export class GridTemplateChart extends Chart {
  constructor(scope: Construct, id: string, resource: KilnResource) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
  }
}
