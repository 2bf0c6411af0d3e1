/**
 * Nothing secret leaves the agent: errors and messages pass through here
 * before they reach a log line, a status field or an Event.
 */
import { randomBytes } from 'node:crypto';
import { redact } from '../kube/redact.js';

export { redact };

export function errorMessage(err: unknown, secrets: Iterable<string | undefined> = []): string {
  const e = err as { message?: unknown; code?: unknown };
  const base = e && typeof e.message === 'string' ? e.message : String(err);
  return redact(base, secrets).slice(0, 2000);
}

/**
 * A random password: 32 characters of letters and digits (~190 bits), no
 * character a shell, URI or connection string would need to escape.
 */
export function generatePassword(length = 32): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      // 62 * 4 = 248: drop bytes >= 248 so every character is equally likely.
      if (b < 248 && out.length < length) out += alphabet[b % 62];
    }
  }
  return out;
}
