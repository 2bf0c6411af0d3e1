/**
 * Databases and roles in a PostgreSQL server, with the rules every Postgres
 * operator converged on: names validated and quoted, catalog look-ups with
 * $1 parameters, CREATE/DROP DATABASE sent alone (never in a transaction
 * block), passwords sent only as client-side SCRAM verifiers on a session
 * that logs no statement, search_path pinned, nothing dropped that kiln did
 * not create for the same resource, and nothing taken over that kiln did not
 * mark as its own. The server is not trusted (its image is the tenant's):
 * the superuser password goes only through SCRAM-SHA-256, every wait is
 * bounded, and with TLS its certificate must name the instance's Service.
 */
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import pg from 'pg';
import { databaseName, extensionName, quoteIdent, quoteLiteral, roleName } from './names.js';
import { DEFAULT_TIMEOUTS, type Timeouts } from './policy.js';
import { scramVerifier, verifierMatches } from './scram.js';

export interface ServerAddress {
  host: string;
  port: number;
  user: string;
  password: string;
  /** verify-full: the server's certificate must chain to `ca` and name `servername` (the Service DNS name). */
  tls?: { ca: string; servername: string };
  /** Send the password to a server that asks for it in cleartext or as MD5 (only where the agent's operator allowed it). */
  allowInsecureAuth?: boolean;
}

/** The server asked for the password in a form it could read (cleartext) or replay offline (MD5). */
export class InsecureAuthError extends Error {
  constructor(readonly method: string) {
    super(`the server asked for the password as ${method}; the agent sends passwords only through SCRAM-SHA-256, which never reveals them to the server`);
    this.name = 'InsecureAuthError';
  }
}

/** A role or database kiln must not touch: it exists and kiln did not make it for this resource, or it is privileged. */
export class TakeoverRefusedError extends Error {
  constructor(
    readonly reason: 'RoleNotManaged' | 'PrivilegedRole' | 'DatabaseNotManaged',
    message: string,
  ) {
    super(message);
    this.name = 'TakeoverRefusedError';
  }
}

/**
 * A pg.Client that refuses cleartext and MD5 password requests. pg answers an
 * authentication request by asking for the password (a function here) after
 * the connection has emitted the request; our listeners, added before pg's
 * own (which are added at connect), note which kind it was, and the password
 * function refuses to hand it over, so pg reports the error and sends nothing.
 */
function strictClient(allowInsecure: boolean): typeof pg.Client {
  return class StrictClient extends pg.Client {
    constructor(config: pg.ClientConfig) {
      const asked: { method?: string } = {};
      const password = config.password;
      super({
        ...config,
        password: () => {
          if (asked.method && !allowInsecure) throw new InsecureAuthError(asked.method);
          return typeof password === 'function' ? password() : (password ?? '');
        },
      });
      const con = (this as unknown as { connection: NodeJS.EventEmitter }).connection;
      con.on('authenticationCleartextPassword', () => (asked.method = 'cleartext'));
      con.on('authenticationMD5Password', () => (asked.method = 'MD5'));
    }

    /**
     * end() waits for the server to close its side; a server that never does
     * would hold the caller (and pool.end()) for ever, so the socket is
     * destroyed after a grace period.
     */
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    override end(...args: any[]): any {
      const con = (this as unknown as { connection: { stream?: { destroy(): void } } }).connection;
      setTimeout(() => con.stream?.destroy(), END_GRACE_MS).unref();
      return (super.end as (...a: unknown[]) => unknown)(...(args as unknown[]));
    }
  };
}

const END_GRACE_MS = 1_000;

/**
 * Session settings for the statement that carries a password verifier: no
 * log line of any kind may hold it, whatever postgresql.conf (the tenant's
 * spec.parameters) says. Sent in the startup packet, they outrank the
 * server's, the database's and the role's settings; log_transaction_sample_rate
 * is decided when a transaction starts, so SET LOCAL could not undo it.
 */
const NO_STATEMENT_LOGGING = [
  'log_statement=none',
  'log_min_duration_statement=-1',
  'log_min_duration_sample=-1',
  'log_transaction_sample_rate=0',
  'log_min_error_statement=panic',
  'debug_print_parse=off',
  'debug_print_rewritten=off',
  'debug_print_plan=off',
  'auto_explain.log_min_duration=-1',
]
  .map((s) => `-c ${s}`)
  .join(' ');

/** Role attributes kiln never manages: each is a way out of the tenant's own databases. */
const PRIVILEGED = ['superuser', 'replication', 'bypassrls', 'createrole'] as const;

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
  /** The privileged attributes it has (superuser, replication, bypassrls, createrole). */
  privileges?: string[];
}

/**
 * Whether kiln may manage an object carrying `marker` for the resource
 * `marker`'s fields describe: kiln's marker for this resource (by uid), or for
 * an earlier resource of the same namespace/name (deleted with Retain and made
 * again). Anything else, marker-less objects included, belongs to someone else.
 */
export function mayManage(found: Marker | undefined, want: Marker): boolean {
  return !!found && (found.uid === want.uid || found.resource === want.resource);
}

export class PostgresServer {
  private readonly pool: pg.Pool;
  private readonly Client: typeof pg.Client;

  constructor(
    readonly address: ServerAddress,
    private readonly onError: (err: Error) => void = () => {},
    readonly timeouts: Timeouts = DEFAULT_TIMEOUTS,
  ) {
    this.Client = strictClient(address.allowInsecureAuth === true);
    this.pool = new pg.Pool({
      ...this.clientConfig('postgres'),
      Client: this.Client,
      // One operation per instance at a time (the reconciler's gate), plus the dropped-database check.
      max: 2,
      idleTimeoutMillis: 30_000,
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
    const r = await this.pool.query<RoleRow>(ROLE_QUERY, [name]);
    return roleState(r.rows[0], password);
  }

  /**
   * Refuses, before anything is written, to manage a role or database that
   * exists without kiln's marker for this resource, or a privileged role:
   * ALTER ROLE ... PASSWORD on someone else's role would hand its password
   * to the tenant's connection Secret.
   */
  async assertManageable(role: string, database: string, marker: Marker): Promise<void> {
    const r = await this.role(role);
    if (r.exists) refuseRole(role, r, marker);
    const d = await this.database(database);
    if (d.exists && !mayManage(d.marker, marker)) {
      throw new TakeoverRefusedError('DatabaseNotManaged', `database ${database} exists and kiln did not create it for ${marker.resource} (no kiln marker in its COMMENT): kiln does not adopt it`);
    }
  }

  private async assertRoleManageable(c: pg.ClientBase, name: string, marker: Marker): Promise<void> {
    const r = await c.query<RoleRow>(ROLE_QUERY, [name]);
    const state = roleState(r.rows[0]);
    if (state.exists) refuseRole(name, state, marker);
  }

  /**
   * Creates the role or brings LOGIN and the password up to date. Only a
   * SCRAM verifier computed here travels, on a connection whose session logs
   * no statement, each statement sent alone (a multi-statement string would
   * be logged whole).
   */
  async ensureRole(name: string, password: string, marker: Marker): Promise<'created' | 'updated' | 'unchanged'> {
    roleName(name);
    const state = await this.role(name, password);
    if (state.exists) refuseRole(name, state, marker);
    if (state.exists && state.login && state.passwordCurrent) {
      if (state.marker?.uid !== marker.uid) await this.pool.query(`COMMENT ON ROLE ${quoteIdent(name)} IS ${quoteLiteral(formatMarker({ ...marker, created: false }))}`);
      return 'unchanged';
    }
    const verifier = quoteLiteral(scramVerifier(password));
    // A connection of its own, opened with logging off for the whole session and closed after.
    const c = this.client('postgres', NO_STATEMENT_LOGGING);
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query("SET LOCAL log_statement = 'none'");
      await c.query('SET LOCAL log_min_duration_statement = -1');
      // Checked again inside the transaction, on this connection: the look-up above may be stale.
      if (state.exists) await this.assertRoleManageable(c, name, marker);
      await c.query(state.exists ? `ALTER ROLE ${quoteIdent(name)} WITH LOGIN PASSWORD ${verifier}` : `CREATE ROLE ${quoteIdent(name)} WITH LOGIN PASSWORD ${verifier}`);
      if (!state.exists || state.marker?.uid !== marker.uid) {
        const created = state.exists ? false : true;
        await c.query(`COMMENT ON ROLE ${quoteIdent(name)} IS ${quoteLiteral(formatMarker({ ...marker, created }))}`);
      }
      await c.query('COMMIT');
    } finally {
      // Closed whatever happened: a failed transaction ends with its connection (no ROLLBACK queued behind a hung statement).
      await c.end().catch(() => {});
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
        // Another writer made it between our look-up and the CREATE: the marker check decides.
        if ((err as { code?: string }).code !== '42P04') throw err;
        return this.ensureDatabase(name, owner, { ...marker, created: false });
      }
      await this.pool.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${quoteLiteral(formatMarker(marker))}`);
      return 'created';
    }
    if (!mayManage(state.marker, marker)) {
      throw new TakeoverRefusedError('DatabaseNotManaged', `database ${name} exists and kiln did not create it for ${marker.resource} (no kiln marker in its COMMENT): kiln does not adopt it`);
    }
    let changed = false;
    if (state.owner !== owner) {
      await this.pool.query(`ALTER DATABASE ${quoteIdent(name)} OWNER TO ${quoteIdent(owner)}`);
      changed = true;
    }
    if (state.marker!.uid !== marker.uid) {
      // The same resource made again after a Retain delete: managed again, dropped only by its creator.
      await this.pool.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${quoteLiteral(formatMarker({ ...marker, created: false }))}`);
      changed = true;
    }
    return changed ? 'updated' : 'unchanged';
  }

  /**
   * CREATE EXTENSION for each missing one, inside the database (extensions are
   * per database), as superuser: so only names on the agent's allowlist get
   * here, each created into schema public with the session's search_path
   * pinned to pg_catalog, pg_temp (no schema the tenant owns is searched
   * while the command resolves names).
   */
  async ensureExtensions(database: string, extensions: string[]): Promise<string[]> {
    databaseName(database);
    extensions.forEach((e) => extensionName(e));
    if (extensions.length === 0) return [];
    const c = this.client(database);
    await c.connect();
    try {
      const have = new Set((await c.query<{ extname: string }>('SELECT extname FROM pg_catalog.pg_extension')).rows.map((r) => r.extname));
      const missing = extensions.filter((e) => !have.has(e));
      for (const e of missing) {
        // On failure the connection is closed below, which ends the transaction.
        await c.query('BEGIN');
        await c.query('SET LOCAL search_path = pg_catalog, pg_temp');
        await c.query(`CREATE EXTENSION IF NOT EXISTS ${quoteIdent(e)} SCHEMA public`);
        await c.query('COMMIT');
      }
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

  /** A connection outside the pool, with the same checks and bounds. */
  private client(database: string, options = ''): pg.Client {
    const c = new this.Client({ ...this.clientConfig(database), options: `${this.clientConfig(database).options} ${options}`.trim() });
    c.on('error', (err) => this.onError(err));
    return c;
  }

  private clientConfig(database: string): pg.ClientConfig & { query_timeout: number } {
    const { address: a, timeouts: t } = this;
    return {
      host: a.host,
      port: a.port,
      user: a.user,
      password: a.password,
      database,
      connectionTimeoutMillis: t.connectMs,
      query_timeout: t.queryMs,
      statement_timeout: t.statementMs,
      lock_timeout: t.lockMs,
      idle_in_transaction_session_timeout: t.idleInTransactionMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: t.keepAliveMs,
      // A pinned search_path: no object a user created can stand in for a catalog function.
      options: '-c search_path=pg_catalog',
      application_name: 'kiln-agent',
      ...(a.tls
        ? {
            ssl: {
              ca: a.tls.ca,
              rejectUnauthorized: true,
              // The name is checked against the Service DNS name whatever address the agent dials (an --endpoint override).
              servername: a.tls.servername,
              checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(a.tls!.servername, cert),
            },
            // SCRAM-SHA-256-PLUS ties the login to this TLS session.
            enableChannelBinding: true,
          }
        : {}),
    };
  }
}

const ROLE_QUERY = `SELECT a.rolcanlogin AS login, a.rolpassword AS verifier, shobj_description(a.oid, 'pg_authid') AS comment,
  a.rolsuper AS superuser, a.rolreplication AS replication, a.rolbypassrls AS bypassrls, a.rolcreaterole AS createrole
  FROM pg_catalog.pg_authid a WHERE a.rolname = $1`;

type RoleRow = { login: boolean; verifier: string | null; comment: string | null } & Record<(typeof PRIVILEGED)[number], boolean>;

function roleState(row: RoleRow | undefined, password?: string): RoleState {
  if (!row) return { exists: false };
  return {
    exists: true,
    login: row.login,
    passwordCurrent: password === undefined ? undefined : verifierMatches(row.verifier, password),
    marker: parseMarker(row.comment),
    privileges: PRIVILEGED.filter((p) => row[p] === true),
  };
}

function refuseRole(name: string, state: RoleState, marker: Marker): void {
  if (state.privileges?.length) {
    throw new TakeoverRefusedError('PrivilegedRole', `role ${name} has ${state.privileges.map((p) => p.toUpperCase()).join(', ')}: kiln never manages a privileged role`);
  }
  if (!mayManage(state.marker, marker)) {
    throw new TakeoverRefusedError('RoleNotManaged', `role ${name} exists and kiln did not create it for ${marker.resource} (no kiln marker in its COMMENT): kiln does not take it over`);
  }
}
