/**
 * Databases and roles in a PostgreSQL server, with the rules every Postgres
 * operator converged on: names validated and quoted, catalog look-ups with
 * $1 parameters, CREATE/DROP DATABASE sent alone (never in a transaction
 * block), passwords sent only as client-side SCRAM verifiers inside a
 * transaction that turns statement logging off, search_path pinned, and
 * nothing dropped that kiln did not create for the same resource.
 */
import pg from 'pg';
import { databaseName, extensionName, quoteIdent, quoteLiteral, roleName } from './names.js';
import { scramVerifier, verifierMatches } from './scram.js';

export interface ServerAddress {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** What kiln writes into COMMENT ON DATABASE / ROLE: which resource manages it and whether kiln created it. */
export interface Marker {
  resource: string;
  uid: string;
  created: boolean;
}

const MARKER_PREFIX = 'kiln.dev ';

export function formatMarker(m: Marker): string {
  return MARKER_PREFIX + JSON.stringify({ resource: m.resource, uid: m.uid, created: m.created });
}

export function parseMarker(comment: string | null | undefined): Marker | undefined {
  if (!comment?.startsWith(MARKER_PREFIX)) return undefined;
  try {
    const m = JSON.parse(comment.slice(MARKER_PREFIX.length)) as Marker;
    return typeof m.uid === 'string' && typeof m.resource === 'string' ? { resource: m.resource, uid: m.uid, created: m.created === true } : undefined;
  } catch {
    return undefined;
  }
}

export interface DatabaseState {
  exists: boolean;
  owner?: string;
  marker?: Marker;
}

export interface RoleState {
  exists: boolean;
  login?: boolean;
  passwordCurrent?: boolean;
  marker?: Marker;
}

export class PostgresServer {
  private readonly pool: pg.Pool;

  constructor(readonly address: ServerAddress, private readonly onError: (err: Error) => void = () => {}) {
    this.pool = new pg.Pool({
      host: address.host,
      port: address.port,
      user: address.user,
      password: address.password,
      database: 'postgres',
      max: 4,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      // A pinned search_path: no object a user created can stand in for a catalog function.
      options: '-c search_path=pg_catalog',
      application_name: 'kiln-agent',
    });
    // An idle connection dropped by a restarting server must not take the agent down.
    this.pool.on('error', (err) => this.onError(err));
    // A checked-out client can be told FATAL (server shutdown) between queries; without a listener that is an uncaught error.
    this.pool.on('connect', (client) => client.on('error', (err) => this.onError(err)));
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }

  async database(name: string): Promise<DatabaseState> {
    databaseName(name);
    const r = await this.pool.query<{ owner: string; comment: string | null }>(
      "SELECT pg_get_userbyid(d.datdba) AS owner, shobj_description(d.oid, 'pg_database') AS comment FROM pg_database d WHERE d.datname = $1",
      [name],
    );
    const row = r.rows[0];
    return row ? { exists: true, owner: row.owner, marker: parseMarker(row.comment) } : { exists: false };
  }

  /** Every database name on the server: one catalog query, for the dropped-database check. */
  async databaseNames(): Promise<Set<string>> {
    const r = await this.pool.query<{ datname: string }>('SELECT datname FROM pg_database');
    return new Set(r.rows.map((row) => row.datname));
  }

  async role(name: string, password?: string): Promise<RoleState> {
    roleName(name);
    const r = await this.pool.query<{ login: boolean; verifier: string | null; comment: string | null }>(
      "SELECT a.rolcanlogin AS login, a.rolpassword AS verifier, shobj_description(a.oid, 'pg_authid') AS comment FROM pg_authid a WHERE a.rolname = $1",
      [name],
    );
    const row = r.rows[0];
    if (!row) return { exists: false };
    return { exists: true, login: row.login, passwordCurrent: password === undefined ? undefined : verifierMatches(row.verifier, password), marker: parseMarker(row.comment) };
  }

  /**
   * Creates the role or brings LOGIN and the password up to date. The verifier
   * travels inside a transaction with log_statement off, each statement sent
   * alone (a multi-statement string would be logged whole).
   */
  async ensureRole(name: string, password: string, marker: Marker): Promise<'created' | 'updated' | 'unchanged'> {
    roleName(name);
    const state = await this.role(name, password);
    if (state.exists && state.login && state.passwordCurrent) {
      if (!state.marker) await this.pool.query(`COMMENT ON ROLE ${quoteIdent(name)} IS ${quoteLiteral(formatMarker({ ...marker, created: false }))}`);
      return 'unchanged';
    }
    const verifier = quoteLiteral(scramVerifier(password));
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query("SET LOCAL log_statement = 'none'");
      await c.query("SET LOCAL log_min_error_statement = 'panic'");
      await c.query(state.exists
        ? `ALTER ROLE ${quoteIdent(name)} WITH LOGIN PASSWORD ${verifier}`
        : `CREATE ROLE ${quoteIdent(name)} WITH LOGIN PASSWORD ${verifier}`);
      if (!state.exists || !state.marker) {
        await c.query(`COMMENT ON ROLE ${quoteIdent(name)} IS ${quoteLiteral(formatMarker({ ...marker, created: !state.exists }))}`);
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release();
    }
    return state.exists ? 'updated' : 'created';
  }

  /** CREATE DATABASE alone (it cannot run in a transaction block), then the marker and owner. */
  async ensureDatabase(name: string, owner: string, marker: Marker): Promise<'created' | 'updated' | 'unchanged'> {
    databaseName(name);
    roleName(owner);
    const state = await this.database(name);
    if (!state.exists) {
      try {
        await this.pool.query(`CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(owner)}`);
      } catch (err) {
        // Another writer made it between our look-up and the CREATE: carry on as for an existing one.
        if ((err as { code?: string }).code !== '42P04') throw err;
        return this.ensureDatabase(name, owner, { ...marker, created: false });
      }
      await this.pool.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${quoteLiteral(formatMarker(marker))}`);
      return 'created';
    }
    let changed = false;
    if (state.owner !== owner) {
      await this.pool.query(`ALTER DATABASE ${quoteIdent(name)} OWNER TO ${quoteIdent(owner)}`);
      changed = true;
    }
    if (!state.marker || state.marker.uid !== marker.uid) {
      // Adopted: kiln manages it from now on, but only its creator may drop it.
      const created = state.marker?.uid === marker.uid ? state.marker.created : false;
      await this.pool.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${quoteLiteral(formatMarker({ ...marker, created }))}`);
      changed = true;
    }
    return changed ? 'updated' : 'unchanged';
  }

  /** CREATE EXTENSION IF NOT EXISTS for each, inside the database (extensions are per database). */
  async ensureExtensions(database: string, extensions: string[]): Promise<string[]> {
    databaseName(database);
    extensions.forEach((e) => extensionName(e));
    if (extensions.length === 0) return [];
    // Objects of CREATE EXTENSION go to the first schema on the search_path: public here, not pg_catalog
    // (pg_catalog is still searched first, implicitly).
    const c = new pg.Client({ ...this.clientConfig(), database, options: '-c search_path=public' });
    c.on('error', (err) => this.onError(err));
    await c.connect();
    try {
      const have = new Set((await c.query<{ extname: string }>('SELECT extname FROM pg_extension')).rows.map((r) => r.extname));
      const missing = extensions.filter((e) => !have.has(e));
      for (const e of missing) await c.query(`CREATE EXTENSION IF NOT EXISTS ${quoteIdent(e)}`);
      return missing;
    } finally {
      await c.end().catch(() => {});
    }
  }

  /** Drops the database if this resource's kiln created it; returns what it did. */
  async dropDatabase(name: string, uid: string, force: boolean): Promise<'dropped' | 'absent' | 'kept'> {
    databaseName(name);
    const state = await this.database(name);
    if (!state.exists) return 'absent';
    if (state.marker?.uid !== uid || !state.marker.created) return 'kept';
    await this.pool.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}${force ? ' WITH (FORCE)' : ''}`);
    return 'dropped';
  }

  async dropRole(name: string, uid: string): Promise<'dropped' | 'absent' | 'kept'> {
    roleName(name);
    const state = await this.role(name);
    if (!state.exists) return 'absent';
    if (state.marker?.uid !== uid || !state.marker.created) return 'kept';
    await this.pool.query(`DROP ROLE IF EXISTS ${quoteIdent(name)}`);
    return 'dropped';
  }

  private clientConfig(): pg.ClientConfig {
    return {
      host: this.address.host,
      port: this.address.port,
      user: this.address.user,
      password: this.address.password,
      connectionTimeoutMillis: 5_000,
      options: '-c search_path=pg_catalog',
      application_name: 'kiln-agent',
    };
  }
}
