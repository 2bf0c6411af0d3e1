import { createHash } from 'node:crypto';

/**
 * 128 bits of sha256 of `value`'s JSON, as 32 hex digits. Hex of the first 16
 * bytes, not a slice of the 64-digit hex: a slice keeps its parent string
 * alive (V8's sliced strings), and a cache holds one digest per object.
 */
export function digest(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest().toString('hex', 0, 16);
}
