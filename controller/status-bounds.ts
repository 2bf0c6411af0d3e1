/**
 * A status kiln writes must fit its CRD's schema: the API server refuses the
 * whole write when one string is longer than its maxLength, and a refused
 * write is retried forever while the resource keeps its old status. So every
 * bounded string (condition messages and reasons, inventory names, ...) is
 * cut to the limit the CRD schema in crds/schema gives it, and every bounded
 * list to its maxItems, before the write.
 */
import type { Schema } from '../crds/schema/builders.js';
import { KINDS } from '../crds/schema/kinds.js';
import { truncate } from '../kube/text.js';

export { truncate };

const statusSchemas = new Map(KINDS.map((k) => [k.kind, k.status] as const));

/** The status schema of a kiln kind, as the generated CRD has it. */
export const statusSchemaOf = (kind: string): Schema | undefined => statusSchemas.get(kind);

/** `value` with every string and list that `schema` bounds cut to its bound; the rest as it was. */
export function fitToSchema<T>(value: T, schema: Schema | undefined): T {
  if (!schema || value === null || value === undefined) return value;
  if (typeof value === 'string') return (schema.maxLength !== undefined ? truncate(value, schema.maxLength) : value) as T;
  if (Array.isArray(value)) {
    const items = schema.maxItems !== undefined && value.length > schema.maxItems ? value.slice(0, schema.maxItems) : value;
    return items.map((v: unknown) => fitToSchema(v, schema.items)) as T;
  }
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const sub = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      out[k] = fitToSchema(v, sub);
    }
    return out as T;
  }
  return value;
}

/** A kiln resource's status, fitted to its kind's CRD schema (unknown kinds pass unchanged). */
export const fitStatus = <T>(kind: string, status: T): T => fitToSchema(status, statusSchemaOf(kind));
