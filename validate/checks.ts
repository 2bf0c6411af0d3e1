/**
 * kiln's own checks: what neither the schema nor CEL can say. They run after
 * admission (so defaults are in place), offline and in the controller alike.
 */
import { RESERVED_PARAMETERS } from '../kinds/postgres-instance/chart.js';
import { CACHE_RESERVED_ENV } from '../kinds/cache-cluster/chart.js';
import { DIRECTORY_RESERVED_ENV } from '../kinds/directory-service/chart.js';
import type { KilnResource } from '../kinds/types.js';
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

function reservedEnv(env: unknown, reserved: string[], out: FieldError[]): void {
  if (!Array.isArray(env)) return;
  env.forEach((e: { name?: string }, i) => {
    if (e.name && reserved.includes(e.name)) {
      out.push({ path: fieldPath(['spec', 'env', String(i), 'name']), message: `Forbidden: ${e.name} is set by kiln` });
    }
  });
}

type Spec = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const CHECKS: Record<string, (spec: Spec, out: FieldError[]) => void> = {
  DirectoryService(spec, out) {
    for (const dn of Object.keys(spec['passwords'] ?? {})) {
      if (!isDistinguishedName(dn)) {
        out.push({ path: fieldPath(['spec', 'passwords', dn]), message: 'Invalid value: key must be an LDAP distinguished name such as uid=am-config,ou=admins,ou=am-config' });
      }
    }
    reservedEnv(spec['env'], DIRECTORY_RESERVED_ENV, out);
  },
  PostgresInstance(spec, out) {
    for (const [key, value] of Object.entries((spec['parameters'] ?? {}) as Record<string, string>)) {
      const path = fieldPath(['spec', 'parameters', key]);
      if (!/^[a-z_][a-z0-9_.]*$/.test(key)) out.push({ path, message: 'Invalid value: a postgresql.conf setting name is lower-case letters, digits, _ and .' });
      else if (RESERVED_PARAMETERS.includes(key)) out.push({ path, message: `Forbidden: ${key} is set by kiln` });
      if (/[\n\r\0]/.test(value)) out.push({ path, message: 'Invalid value: a setting may not contain a line break or NUL' });
    }
  },
  CacheCluster(spec, out) {
    reservedEnv(spec['env'], CACHE_RESERVED_ENV, out);
  },
  DataGrid(spec, out) {
    if (spec['partitions'] !== undefined && !isPrime(spec['partitions'])) {
      out.push({ path: 'spec.partitions', message: `Invalid value: ${spec['partitions']}: must be a prime number (keys spread evenly only over a prime count)` });
    }
  },
};

export function kilnChecks(resource: KilnResource): FieldError[] {
  const out: FieldError[] = [];
  const meta = resource.metadata;
  if (meta.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(meta.namespace)) {
    out.push({ path: 'metadata.namespace', message: 'Invalid value: must be a DNS label' });
  }
  CHECKS[resource.kind]?.(resource.spec as Spec, out);
  return out;
}
