/** Text limits the API server enforces, applied before a write instead of being refused by it. */

/**
 * `text` cut to at most `max` characters (Unicode code points, as the API
 * server counts them), never inside a surrogate pair, ending in a marker that
 * says how much was cut.
 */
export function truncate(text: string, max: number): string {
  // Most strings are far below any limit: no code-point split for them.
  if (text.length <= max) return text;
  const chars = Array.from(text);
  if (chars.length <= max) return text;
  // The marker's own length depends on the count it shows: size it for the largest count.
  const marker = (n: number) => `… (${n} more characters)`;
  const keep = Math.max(0, max - marker(chars.length).length);
  if (keep === 0) return chars.slice(0, max).join('');
  return chars.slice(0, keep).join('') + marker(chars.length - keep);
}
