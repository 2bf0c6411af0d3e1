/**
 * validate(resource): the one gate every resource passes before it is
 * rendered, in `kiln synth`, in the controller and in the tests.
 */
import type { KilnResource } from '../kinds/types.js';
import { kilnChecks } from './checks.js';
import type { FieldError } from './errors.js';
import { admit } from './schema.js';

export type { FieldError } from './errors.js';
export { formatErrors } from './errors.js';

export type Validation = { ok: true; resource: KilnResource } | { ok: false; errors: FieldError[] };

function metadataErrors(obj: Record<string, unknown>): FieldError[] {
  const meta = obj['metadata'] as Record<string, unknown> | undefined;
  if (!meta || typeof meta !== 'object') return [{ path: 'metadata', message: 'Required value' }];
  const name = meta['name'];
  if (typeof name !== 'string' || name.length === 0) return [{ path: 'metadata.name', message: 'Required value: name is required' }];
  if (name.length > 253 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name)) {
    return [{ path: 'metadata.name', message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain` }];
  }
  return [];
}

/**
 * Validates a resource as admission would, applying the CRD defaults to a
 * copy, then runs kiln's own checks. The returned resource is the defaulted copy.
 */
export function validate(input: unknown): Validation {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, errors: [{ path: '', message: 'not an object' }] };
  }
  // Parsed YAML is JSON data; a JSON round trip copies it faster than structuredClone.
  const copy = JSON.parse(JSON.stringify(input)) as Record<string, unknown>;
  const errors = metadataErrors(copy);
  const admission = admit(copy);
  errors.push(...admission.errors);
  const resource = copy as unknown as KilnResource;
  if (!admission.blocking && errors.every((e) => e.path !== 'metadata.name')) errors.push(...kilnChecks(resource));
  return errors.length > 0 ? { ok: false, errors } : { ok: true, resource };
}
