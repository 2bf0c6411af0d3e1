/**
 * ConfigMapSync -> one copy of the source ConfigMap per target namespace.
 * The source data and the namespaces a selector matches are inputs (see
 * RenderContext): the chart itself never reads the cluster. Copies carry owner
 * labels, because an ownerReference cannot cross namespaces.
 */
import { Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { ConfigMapSyncSpec } from '../../imports/kiln.dev.js';
import { ownerLabels, standardLabels } from '../shared/labels.js';
import type { KilnResource, RenderContext } from '../types.js';

export type ConfigMapSyncResource = KilnResource<ConfigMapSyncSpec>;
export const SOURCE_ANNOTATION = 'kiln.dev/source';

export function sourceOf(resource: ConfigMapSyncResource): { name: string; namespace: string } {
  return { name: resource.spec.source.name, namespace: resource.spec.source.namespace ?? resource.metadata.namespace ?? 'default' };
}

/** Listed namespaces plus selected ones, without the source's own namespace. */
export function targetNamespaces(resource: ConfigMapSyncResource, selected: string[] = []): string[] {
  const source = sourceOf(resource);
  return [...new Set([...(resource.spec.targets.namespaces ?? []), ...selected])].filter((ns) => ns !== source.namespace).sort();
}

export class ConfigMapSyncChart extends Chart {
  constructor(scope: Construct, id: string, resource: ConfigMapSyncResource, context: RenderContext) {
    super(scope, id, { disableResourceNameHashes: true });
    const input = context.configMapSync;
    const source = sourceOf(resource);
    if (!input?.source) throw new Error(`spec.source: ConfigMap ${source.namespace}/${source.name} was not provided`);
    const sorted = (m: Record<string, string> | undefined) =>
      m && Object.keys(m).length > 0
        ? Object.fromEntries(
            Object.keys(m)
              .sort()
              .map((k) => [k, m[k]!]),
          )
        : undefined;
    for (const namespace of targetNamespaces(resource, input.selectedNamespaces)) {
      new k8s.KubeConfigMap(this, `Copy-${namespace}`, {
        metadata: {
          name: source.name,
          namespace,
          labels: { ...standardLabels('config-sync', 'copy', resource), ...ownerLabels(resource) },
          annotations: { [SOURCE_ANNOTATION]: `${source.namespace}/${source.name}` },
        },
        data: sorted(input.source.data),
        binaryData: sorted(input.source.binaryData),
      });
    }
  }
}
