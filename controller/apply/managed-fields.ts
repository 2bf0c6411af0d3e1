/**
 * What managedFields say about kiln's own field manager (server-side apply's
 * bookkeeping): which fields kiln's apply owns in an object, the values at
 * those fields, and their digest.
 */
import type { KubeObject } from '../../kube/informer.js';
import { digest } from './digest.js';

/** kiln's field manager for what it applies. */
export const FIELD_MANAGER = 'kiln';

/** A field set (managedFields' fieldsV1): `f:name`, `k:{...}`, `v:...`, `i:n` keys down to the owned leaves. */
export interface FieldsV1 {
  [key: string]: FieldsV1;
}

type ManagedFieldsEntry = { manager?: string; operation?: string; subresource?: string; fieldsV1?: FieldsV1 };

/** kiln's Apply entry for the object itself (not a subresource), if it has one. */
export const kilnApplyEntry = (obj: KubeObject): ManagedFieldsEntry | undefined =>
  ((obj.metadata.managedFields ?? []) as ManagedFieldsEntry[]).find((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply' && !f.subresource);

/** Did kiln apply this object (does its field manager hold an Apply entry)? */
export const appliedByKiln = (obj: KubeObject): boolean => (obj.metadata.managedFields ?? []).some((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply');

/** The part of `live` that the field set `fields` (managedFields' fieldsV1) names. */
export function pickFields(live: unknown, fields: FieldsV1): unknown {
  const keys = Object.keys(fields).filter((k) => k !== '.');
  if (keys.length === 0 || live === null || typeof live !== 'object') return live;
  if (Array.isArray(live)) {
    const picked: [number, unknown][] = [];
    for (const k of keys) {
      const body = k.slice(2);
      let index = -1;
      if (k.startsWith('k:')) {
        const key = JSON.parse(body) as Record<string, unknown>;
        index = live.findIndex((item) => item !== null && typeof item === 'object' && Object.entries(key).every(([kk, kv]) => String((item as Record<string, unknown>)[kk]) === String(kv)));
      } else if (k.startsWith('v:')) {
        const value = JSON.stringify(JSON.parse(body));
        index = live.findIndex((item) => JSON.stringify(item) === value);
      } else if (k.startsWith('i:')) {
        index = Number(body);
      }
      if (index >= 0 && index < live.length) picked.push([index, pickFields(live[index], fields[k]!)]);
    }
    return picked.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
  }
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    if (!k.startsWith('f:')) continue;
    const name = k.slice(2);
    const v = (live as Record<string, unknown>)[name];
    if (v !== undefined) out[name] = pickFields(v, fields[k]!);
  }
  return out;
}

/**
 * The digest of the values kiln's field manager owns in `obj` (a full object),
 * undefined when it owns none. What the status inventory records per object.
 */
export function ownedDigest(obj: KubeObject): string | undefined {
  const entry = kilnApplyEntry(obj);
  return entry?.fieldsV1 ? digest(pickFields(obj, entry.fieldsV1)) : undefined;
}
