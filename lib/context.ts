/**
 * Builds the RenderContext a resource needs from objects at hand: the input
 * files offline, or the cluster's objects in the controller. Pure selection
 * logic; nobody here reads the cluster.
 */
import { sourceOf, type ConfigMapSyncResource } from '../kinds/config-map-sync/chart.js';
import type { KilnResource, RenderContext } from '../kinds/types.js';

interface Meta { name: string; namespace?: string; labels?: Record<string, string> }
export interface PlainObject { apiVersion?: string; kind?: string; metadata?: Meta; data?: Record<string, string>; binaryData?: Record<string, string> }

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

export function matchesSelector(labels: Record<string, string> = {}, selector: LabelSelector): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const inValues = has && (e.values ?? []).includes(value!);
    if (e.operator === 'In' && !inValues) return false;
    if (e.operator === 'NotIn' && inValues) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** The context for `resource`, drawn from plain ConfigMaps and Namespaces. */
export function contextFromObjects(resource: KilnResource, objects: PlainObject[]): RenderContext {
  if (resource.kind !== 'ConfigMapSync') return {};
  const cms = resource as unknown as ConfigMapSyncResource;
  // Called before validation in synth: an invalid resource simply gets no context.
  if (typeof cms.spec?.source?.name !== 'string' || typeof cms.spec.targets !== 'object') return {};
  const src = sourceOf(cms);
  const source = objects.find(
    (o) => o.kind === 'ConfigMap' && o.metadata?.name === src.name && (o.metadata.namespace ?? 'default') === src.namespace,
  );
  const selector = cms.spec.targets.namespaceSelector as LabelSelector | undefined;
  const selectedNamespaces = selector
    ? objects.filter((o) => o.kind === 'Namespace' && o.metadata && matchesSelector(o.metadata.labels, selector)).map((o) => o.metadata!.name)
    : [];
  return { configMapSync: { source: source ? { data: source.data, binaryData: source.binaryData } : undefined, selectedNamespaces } };
}
