/**
 * The render inputs of the grid kinds, from the objects at hand (the input
 * files offline; the controller's caches of this namespace in the cluster,
 * controller/related-inputs.ts): a DataGrid's GridTemplate, and the DataGrids
 * a CacheCluster's members mount.
 */
import type { PlainObject } from '../../lib/selector.js';
import type { KilnResource, RenderContext } from '../types.js';
import { validate } from '../../validate/index.js';
import type { DataGridResource } from './chart.js';
import { checkGridSettings, gridJson, resolveSettings, type GridSettings } from './resolve.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const key = (namespace: string | undefined, name: string) => `${namespace ?? 'default'}/${name}`;

interface Index {
  length: number;
  /** GridTemplates by namespace/name. */
  templates: Map<string, PlainObject & { spec?: unknown }>;
  /** DataGrids by namespace/cache. */
  grids: Map<string, (PlainObject & { spec?: unknown })[]>;
}
/** Built once per list of inputs (offline, one list serves every resource: a search per resource would make synth quadratic). */
const indexes = new WeakMap<PlainObject[], Index>();

function indexOf(objects: PlainObject[]): Index {
  const have = indexes.get(objects);
  if (have && have.length === objects.length) return have;
  const index: Index = { length: objects.length, templates: new Map(), grids: new Map() };
  for (const o of objects as (PlainObject & { spec?: unknown })[]) {
    if (typeof o.metadata?.name !== 'string' || !isObject(o.spec) || (o.metadata as unknown as Record<string, unknown>)['deletionTimestamp']) continue;
    if (o.kind === 'GridTemplate') {
      const k = key(o.metadata.namespace, o.metadata.name);
      if (!index.templates.has(k)) index.templates.set(k, o);
    } else if (o.kind === 'DataGrid' && typeof o.spec['cache'] === 'string') {
      const k = key(o.metadata.namespace, o.spec['cache']);
      index.grids.set(k, [...(index.grids.get(k) ?? []), o]);
    }
  }
  indexes.set(objects, index);
  return index;
}

/** The GridTemplate's settings if it exists and is valid; a template kiln would refuse is as good as none. */
function templateSettings(index: Index, namespace: string | undefined, name: string): GridSettings | undefined {
  const t = index.templates.get(key(namespace, name));
  if (!t) return undefined;
  const v = validate({ apiVersion: t.apiVersion, kind: t.kind, metadata: t.metadata, spec: t.spec });
  return v.ok ? v.resource.spec : undefined;
}

export function dataGridInputs(resource: KilnResource, objects: PlainObject[]): RenderContext {
  const grid = resource as DataGridResource;
  const name = grid.spec?.template;
  if (typeof name !== 'string') return {};
  return { dataGrid: { template: templateSettings(indexOf(objects), grid.metadata.namespace, name) } };
}

/**
 * The grids a CacheCluster's members mount: the valid DataGrids of its namespace that name it,
 * whose template (if they name one) exists and whose resolved settings pass kiln's checks; by
 * name. A grid that is not rendered has no ConfigMap, and a member mounting a ConfigMap that does
 * not exist would not start: one broken grid must not stop its cache.
 */
export function cacheClusterInputs(resource: KilnResource, objects: PlainObject[]): RenderContext {
  const { name, namespace } = resource.metadata;
  if (typeof name !== 'string') return {};
  const index = indexOf(objects);
  const grids: { name: string; configuration: string }[] = [];
  for (const g of index.grids.get(key(namespace, name)) ?? []) {
    const v = validate({ apiVersion: g.apiVersion, kind: g.kind, metadata: g.metadata, spec: g.spec });
    if (!v.ok) continue;
    const spec = v.resource.spec as DataGridResource['spec'];
    const template = spec.template === undefined ? undefined : templateSettings(index, namespace, spec.template);
    if (spec.template !== undefined && !template) continue;
    const settings = resolveSettings(spec, template);
    const problems: { path: string; message: string }[] = [];
    checkGridSettings(settings, problems, true);
    if (problems.length > 0) continue;
    grids.push({ name: v.resource.metadata.name, configuration: gridJson(v.resource.metadata.name, settings) });
  }
  grids.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { cacheCluster: { grids } };
}
