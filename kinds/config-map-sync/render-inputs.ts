/** A ConfigMapSync's render inputs offline: its source ConfigMap and the Namespaces its selector matches, from the input files. */
import { matchesSelector, type LabelSelector, type PlainObject } from '../../lib/selector.js';
import type { KilnResource, RenderContext } from '../types.js';
import { sourceOf, type ConfigMapSyncResource } from './chart.js';

interface Index {
  length: number;
  configMaps: Map<string, PlainObject>;
  namespaces: PlainObject[];
}
/**
 * The ConfigMaps by namespace/name and the Namespaces of one list of inputs, built on first use: a
 * search of the whole list per ConfigMapSync made synth quadratic (100,000 mixed resources hold
 * 12,500 ConfigMapSyncs and as many ConfigMaps). Rebuilt if the list grew since.
 */
const indexes = new WeakMap<PlainObject[], Index>();

function indexOf(objects: PlainObject[]): Index {
  const have = indexes.get(objects);
  if (have && have.length === objects.length) return have;
  const index: Index = { length: objects.length, configMaps: new Map(), namespaces: [] };
  for (const o of objects) {
    if (o.kind === 'Namespace' && o.metadata) index.namespaces.push(o);
    if (o.kind !== 'ConfigMap' || typeof o.metadata?.name !== 'string') continue;
    const key = `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;
    // The first of two same-named ConfigMaps, as a search in order would find.
    if (!index.configMaps.has(key)) index.configMaps.set(key, o);
  }
  indexes.set(objects, index);
  return index;
}

export function inputsFromObjects(resource: KilnResource, objects: PlainObject[]): RenderContext {
  const cms = resource as unknown as ConfigMapSyncResource;
  // Called before validation in synth: an invalid resource simply gets no context.
  if (typeof cms.spec?.source?.name !== 'string' || typeof cms.spec.targets !== 'object') return {};
  const src = sourceOf(cms);
  const index = indexOf(objects);
  const source = index.configMaps.get(`${src.namespace}/${src.name}`);
  const selector = cms.spec.targets.namespaceSelector as LabelSelector | undefined;
  const selectedNamespaces = selector ? index.namespaces.filter((o) => matchesSelector(o.metadata!.labels, selector)).map((o) => o.metadata!.name) : [];
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
