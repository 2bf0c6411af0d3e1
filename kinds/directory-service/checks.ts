import type { Spec } from '../kind.js';
import type { FieldError } from '../../validate/errors.js';
import { fieldPath, isDistinguishedName, reservedEnv } from '../../validate/predicates.js';
import { DIRECTORY_RESERVED_ENV } from './chart.js';

export function checkDirectoryService(spec: Spec, out: FieldError[]): void {
  for (const dn of Object.keys((spec['passwords'] ?? {}) as object)) {
    if (!isDistinguishedName(dn)) {
      out.push({ path: fieldPath(['spec', 'passwords', dn]), message: 'Invalid value: key must be an LDAP distinguished name such as uid=am-config,ou=admins,ou=am-config' });
    }
  }
  reservedEnv(spec['env'], DIRECTORY_RESERVED_ENV, out);
}
