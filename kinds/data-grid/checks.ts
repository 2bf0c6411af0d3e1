import type { Spec } from '../kind.js';
import type { FieldError } from '../../validate/errors.js';
import { isPrime } from '../../validate/predicates.js';

export function checkDataGrid(spec: Spec, out: FieldError[]): void {
  if (spec['partitions'] !== undefined && !isPrime(spec['partitions'] as number)) {
    out.push({ path: 'spec.partitions', message: `Invalid value: ${spec['partitions']}: must be a prime number (keys spread evenly only over a prime count)` });
  }
}
