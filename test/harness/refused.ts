/**
 * Whether a log line reports a refused request (a 403 or "forbidden"), for the tests that
 * forbid any. A duration that happens to be 403 ms (`"ms":403`) is not one.
 */
export const refusedLine = (line: string): boolean => /(?<!"ms":)\b403\b|forbidden/i.test(line);
