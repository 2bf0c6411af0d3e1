/**
 * Names that reach SQL are validated here before any statement is built, and
 * quoted as identifiers when they are (defence in depth: the CRD's pattern
 * refuses them at admission already).
 */
import pg from 'pg';

const PG_IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
const SYSTEM_DATABASES = new Set(['postgres', 'template0', 'template1']);

export class InvalidNameError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'InvalidNameError';
  }
}

function identifier(field: string, value: unknown): string {
  if (typeof value !== 'string' || !PG_IDENTIFIER.test(value)) {
    throw new InvalidNameError(field, `must match ${PG_IDENTIFIER.source} (lower-case letters, digits and _, at most 63 characters), got ${JSON.stringify(String(value).slice(0, 80))}`);
  }
  return value;
}

export function databaseName(value: unknown, field = 'spec.name'): string {
  const name = identifier(field, value);
  if (SYSTEM_DATABASES.has(name)) throw new InvalidNameError(field, `${name} is a system database`);
  return name;
}

export function roleName(value: unknown, field = 'spec.owner'): string {
  const name = identifier(field, value);
  if (name.startsWith('pg_')) throw new InvalidNameError(field, 'names starting with pg_ are reserved for system roles');
  if (name === 'postgres') throw new InvalidNameError(field, 'postgres is the superuser');
  return name;
}

/** Extension names may hold a hyphen (uuid-ossp); they only ever reach SQL quoted. */
const EXTENSION_NAME = /^[a-z_][a-z0-9_-]{0,62}$/;

export function extensionName(value: unknown, field = 'spec.extensions'): string {
  if (typeof value !== 'string' || !EXTENSION_NAME.test(value)) {
    throw new InvalidNameError(field, `must match ${EXTENSION_NAME.source} (lower-case letters, digits, _ and -, at most 63 characters), got ${JSON.stringify(String(value).slice(0, 80))}`);
  }
  return value;
}

/** A validated name as a quoted SQL identifier. */
export const quoteIdent = (name: string) => pg.escapeIdentifier(name);
export const quoteLiteral = (value: string) => pg.escapeLiteral(value);
