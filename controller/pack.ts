/** Compact text for caches: JSON kept deflated in a one-byte string. */
import { deflateRawSync, inflateRawSync, constants as zlib } from 'node:zlib';

/** JSON text -> raw deflate, kept as a one-byte string ('z' prefix); short texts stay as they are ('j'). */
export function pack(text: string): string {
  if (text.length < 256) return `j${text}`;
  return `z${deflateRawSync(text, { level: 1, strategy: zlib.Z_DEFAULT_STRATEGY }).toString('latin1')}`;
}

export function unpack(packed: string): string {
  if (packed.startsWith('j')) return packed.slice(1);
  if (packed.startsWith('z')) return inflateRawSync(Buffer.from(packed.slice(1), 'latin1')).toString('utf8');
  return packed;
}
