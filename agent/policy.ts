/**
 * What the agent's operator decides for every tenant (agent flags), never the
 * tenants themselves: which extensions may be created as superuser, where a
 * PostgresInstance's spec.allowInsecureAuth is honoured, and how long a
 * server may take. No heavy imports: the CLI reads the defaults for --help.
 */

/**
 * Bounds on every conversation with a server: the image is the tenant's, so
 * the "server" may accept and never answer. The client-side read timeout is
 * the one a hostile server cannot ignore; the server-side ones end work a real
 * server is stuck on (a lock a tenant holds) before the client gives up.
 */
export interface Timeouts {
  connectMs: number;
  queryMs: number;
  statementMs: number;
  lockMs: number;
  idleInTransactionMs: number;
  keepAliveMs: number;
}

export interface PostgresPolicy {
  extensions: ReadonlySet<string>;
  insecureAuthNamespaces: ReadonlySet<string>;
  timeouts: Timeouts;
}

/**
 * Extensions created by default: contrib ones PostgreSQL marks trusted (a
 * database owner could create them without superuser); none reads files,
 * opens connections or runs an untrusted language.
 */
export const DEFAULT_EXTENSIONS = [
  'btree_gin',
  'btree_gist',
  'citext',
  'cube',
  'fuzzystrmatch',
  'hstore',
  'intarray',
  'isn',
  'lo',
  'ltree',
  'pg_trgm',
  'pgcrypto',
  'seg',
  'tablefunc',
  'tcn',
  'tsm_system_rows',
  'tsm_system_time',
  'unaccent',
  'uuid-ossp',
];

export function timeouts(statementSeconds: number): Timeouts {
  const ms = statementSeconds * 1000;
  return { connectMs: Math.ceil(ms / 3), queryMs: ms + 5_000, statementMs: ms, lockMs: Math.ceil(ms / 3), idleInTransactionMs: 2 * ms, keepAliveMs: 10_000 };
}

export const DEFAULT_TIMEOUTS: Timeouts = timeouts(30);

export const DEFAULT_POLICY: PostgresPolicy = { extensions: new Set(DEFAULT_EXTENSIONS), insecureAuthNamespaces: new Set(), timeouts: DEFAULT_TIMEOUTS };

/** The policy from the agent's flags: an empty extension list means the default one. */
export function postgresPolicy(o: { extensions?: string[]; insecureAuthNamespaces?: string[]; timeoutSeconds?: number }): PostgresPolicy {
  return {
    extensions: new Set(o.extensions?.length ? o.extensions : DEFAULT_EXTENSIONS),
    insecureAuthNamespaces: new Set(o.insecureAuthNamespaces ?? []),
    timeouts: o.timeoutSeconds ? timeouts(o.timeoutSeconds) : DEFAULT_TIMEOUTS,
  };
}
