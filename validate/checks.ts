/**
 * kiln's own checks: what neither the schema nor CEL can say. They run after
 * admission (so defaults are in place), offline and in the controller alike.
 * Each kind's are its own (kinds/<kind>/checks.ts, through kinds/registry.ts).
 */
import { kindDefinition } from '../kinds/registry.js';
import type { KilnResource } from '../kinds/types.js';
import type { FieldError } from './errors.js';

export { isDistinguishedName, isPrime } from './predicates.js';

export function kilnChecks(resource: KilnResource): FieldError[] {
  const out: FieldError[] = [];
  const meta = resource.metadata;
  if (meta.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(meta.namespace)) {
    out.push({ path: 'metadata.namespace', message: 'Invalid value: must be a DNS label' });
  }
  kindDefinition(resource.kind)?.checks?.(resource.spec, out);
  return out;
}
