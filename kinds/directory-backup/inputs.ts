/**
 * A DirectoryBackup's render inputs: the DirectoryService it backs up (same
 * namespace), whose spec.storage.volumeSnapshotClassName is the snapshot class
 * of a backup that names none itself. Offline the DirectoryService comes from
 * the input files, in the cluster from the controller's cache
 * (controller/related-inputs.ts).
 */
import { KILN_API_VERSION } from '../api.js';
import type { PlainObject } from '../../lib/selector.js';
import type { KilnResource, RenderContext } from '../types.js';

interface Index {
  length: number;
  /** namespace/name -> the DirectoryService's snapshot class (undefined: it sets none). */
  classes: Map<string, string | undefined>;
}

/** Built once per list of inputs: a search of the whole list per backup would make synth quadratic. */
const indexes = new WeakMap<PlainObject[], Index>();

function indexOf(objects: PlainObject[]): Index {
  const have = indexes.get(objects);
  if (have && have.length === objects.length) return have;
  const index: Index = { length: objects.length, classes: new Map() };
  for (const o of objects) {
    if (o.apiVersion !== KILN_API_VERSION || o.kind !== 'DirectoryService' || typeof o.metadata?.name !== 'string') continue;
    const key = `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;
    if (index.classes.has(key)) continue; // the first of two same-named, as a search in order would find
    const storage = (o as { spec?: { storage?: { volumeSnapshotClassName?: unknown } } }).spec?.storage;
    const cls = storage?.volumeSnapshotClassName;
    index.classes.set(key, typeof cls === 'string' && cls !== '' ? cls : undefined);
  }
  indexes.set(objects, index);
  return index;
}

export function directoryServiceInputs(resource: KilnResource, objects: PlainObject[]): RenderContext {
  // Called before validation offline: an invalid resource simply gets no context.
  const name = (resource.spec as { directoryService?: unknown } | undefined)?.directoryService;
  if (typeof name !== 'string') return {};
  const key = `${resource.metadata.namespace ?? 'default'}/${name}`;
  const classes = indexOf(objects).classes;
  if (!classes.has(key)) return {};
  const volumeSnapshotClassName = classes.get(key);
  return { directoryService: volumeSnapshotClassName ? { volumeSnapshotClassName } : {} };
}
