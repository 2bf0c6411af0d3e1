import type { Spec } from '../kind.js';
import type { FieldError } from '../../validate/errors.js';
import { fieldPath } from '../../validate/predicates.js';
import { RESERVED_PARAMETERS } from './chart.js';

export function checkPostgresInstance(spec: Spec, out: FieldError[]): void {
  for (const [key, value] of Object.entries((spec['parameters'] ?? {}) as Record<string, string>)) {
    const path = fieldPath(['spec', 'parameters', key]);
    if (!/^[a-z_][a-z0-9_.]*$/.test(key)) out.push({ path, message: 'Invalid value: a postgresql.conf setting name is lower-case letters, digits, _ and .' });
    else if (RESERVED_PARAMETERS.includes(key)) out.push({ path, message: `Forbidden: ${key} is set by kiln` });
    if (/[\n\r\0]/.test(value)) out.push({ path, message: 'Invalid value: a setting may not contain a line break or NUL' });
  }
}
