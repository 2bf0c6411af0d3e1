/** A ConfigMapSync's render inputs offline: its source ConfigMap and the Namespaces its selector matches, from the input files. */
import { matchesSelector, type LabelSelector, type PlainObject } from '../../lib/selector.js';
import type { KilnResource, RenderContext } from '../types.js';
import { sourceOf, type ConfigMapSyncResource } from './chart.js';

export function inputsFromObjects(resource: KilnResource, objects: PlainObject[]): RenderContext {
  const cms = resource as unknown as ConfigMapSyncResource;
  // Called before validation in synth: an invalid resource simply gets no context.
  if (typeof cms.spec?.source?.name !== 'string' || typeof cms.spec.targets !== 'object') return {};
  const src = sourceOf(cms);
  const source = objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === src.name && (o.metadata.namespace ?? 'default') === src.namespace);
  const selector = cms.spec.targets.namespaceSelector as LabelSelector | undefined;
  const selectedNamespaces = selector ? objects.filter((o) => o.kind === 'Namespace' && o.metadata && matchesSelector(o.metadata.labels, selector)).map((o) => o.metadata!.name) : [];
  return { configMapSync: { source: source ? { data: source.data, binaryData: source.binaryData } : undefined, selectedNamespaces } };
}

/**
 * Without its source ConfigMap among the inputs there is nothing to copy
 * offline; in the cluster the controller reads the source itself.
 */
export function sourceNotInInputs(resource: KilnResource, context: RenderContext): string | undefined {
  if (context.configMapSync?.source) return undefined;
  const source = sourceOf(resource as unknown as ConfigMapSyncResource);
  return `renders nothing offline (its source ConfigMap is not among the inputs): copies are made in the cluster from ${source.namespace}/${source.name}`;
}
