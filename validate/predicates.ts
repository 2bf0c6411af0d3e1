/** Small checks the kinds' own checks share (kinds/<kind>/checks.ts). */
import type { FieldError } from './errors.js';
import { fieldPath } from './schema.js';

/** RFC 4514 distinguished name: attr=value pairs, commas escaped with a backslash. */
const RDN = /^[A-Za-z][A-Za-z0-9-]*=(?:[^,+"\\<>;=]|\\[,+"\\<>;= #]|\\[0-9a-fA-F]{2})+$/;

export function isDistinguishedName(dn: string): boolean {
  if (dn.length === 0 || dn.length > 1024) return false;
  const parts = dn.split(/(?<!\\),/);
  return parts.every((p) => RDN.test(p.trim()) && p === p.trimStart());
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/** spec.env entries that would redefine a variable kiln sets. */
export function reservedEnv(env: unknown, reserved: string[], out: FieldError[]): void {
  if (!Array.isArray(env)) return;
  env.forEach((e: { name?: string }, i) => {
    if (e.name && reserved.includes(e.name)) {
      out.push({ path: fieldPath(['spec', 'env', String(i), 'name']), message: `Forbidden: ${e.name} is set by kiln` });
    }
  });
}

export { fieldPath };
