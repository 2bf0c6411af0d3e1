import type { Spec } from '../kind.js';
import type { FieldError } from '../../validate/errors.js';
import { reservedEnv } from '../../validate/predicates.js';
import { CACHE_RESERVED_ENV } from './chart.js';

export function checkCacheCluster(spec: Spec, out: FieldError[]): void {
  reservedEnv(spec['env'], CACHE_RESERVED_ENV, out);
}
