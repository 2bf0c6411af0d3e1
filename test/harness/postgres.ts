/**
 * A throwaway PostgreSQL 15 server (Debian's postgresql-15) for integration
 * tests: initdb into a temp dir, listening on 127.0.0.1:<free port> with
 * scram-sha-256 password auth over TCP and trust over its private unix socket
 * (in the temp dir), `log_statement = 'all'` into `logFile`.
 *
 * As root the server runs as the `postgres` user (initdb refuses root); the
 * temp dir is owned by postgres. As any other user it runs as that user.
 *
 * Lifetime: pg_ctl daemonizes the postmaster, so each start also spawns a
 * small detached watchdog that shuts the server down (immediate mode) and
 * removes the temp dir once this Node process is gone; destroy() and a process 'exit' hook stop it
 * eagerly. Recipes: /work/shared/reference/test-servers.md.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chownSync, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { run as runCommand } from './run.js';

export interface PostgresServer {
  /** '127.0.0.1' */
  host: string;
  port: number;
  /** 'postgres' */
  superuser: string;
  /** random superuser password (scram-sha-256 over TCP) */
  password: string;
  /** temp dir: data/, the unix socket and the log */
  dir: string;
  /** directory of the unix socket (= dir): `psql -h <socketDir>` connects without a password */
  socketDir: string;
  /** server log, `log_statement = 'all'` */
  logFile: string;
  /** current log contents */
  readLog(): string;
  /**
   * Runs `query` with psql (-X -At, ON_ERROR_STOP) as the superuser over the
   * unix socket; returns stdout without its final newline; throws with stderr
   * on failure. Several statements in one string run as one transaction.
   */
  sql(query: string, database?: string): Promise<string>;
  /** pg_ctl stop -m fast (start() brings it back on the same port and data) */
  stop(): Promise<void>;
  /** pg_ctl start -w on the same port and data (no-op while running) */
  start(): Promise<void>;
  /** stop and remove the temp dir */
  destroy(): Promise<void>;
}

export const PG_BIN = '/usr/lib/postgresql/15/bin';
const SUPERUSER = 'postgres';

// ---------------------------------------------------------------------------
// helpers

/** Environment for the PostgreSQL tools: none of the caller's PG* variables. */
const pgEnv: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG'))),
  LC_ALL: 'C',
};

const run = (cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}) => runCommand(cmd, args, { ...opts, env: pgEnv });

const isRoot = () => process.getuid?.() === 0;

/** Argv prefix that runs a command as the postgres user when we are root. */
function asPostgres(ids: { uid: number; gid: number } | undefined): string[] {
  return ids ? ['setpriv', `--reuid=${ids.uid}`, `--regid=${ids.gid}`, '--init-groups', '--'] : [];
}

async function postgresIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (!isRoot()) return undefined;
  const [u, g] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  if (u.code !== 0 || g.code !== 0) {
    throw new Error('test PostgreSQL server: no `postgres` user (needed to run PostgreSQL as root): run `DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-15`');
  }
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function requireBinaries(): void {
  const missing = ['initdb', 'pg_ctl', 'postgres', 'psql'].filter((b) => !existsSync(path.join(PG_BIN, b)));
  if (missing.length) {
    throw new Error(`test PostgreSQL server: ${missing.join(', ')} not found in ${PG_BIN}: run \`DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-15\``);
  }
}

// ---------------------------------------------------------------------------
// process lifetime

/** Data directories of servers that may be running: the exit hook stops them. */
const live = new Set<string>();
let exitHookInstalled = false;

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const dataDir of live) {
      const pid = postmasterPid(dataDir);
      try {
        if (pid) process.kill(pid, 'SIGQUIT'); // immediate shutdown: the postmaster kills its children
      } catch {
        /* gone */
      }
    }
  });
}

/*
 * Watchdog for one postmaster: polls the owner pid; once the owner is gone
 * while the server still runs, SIGQUIT (immediate shutdown), then SIGKILL,
 * then removes the temp dir.
 * Exits by itself when the server stops (its postmaster.pid goes away, or the
 * pid: a stopped postmaster may linger as a zombie until init reaps it).
 * argv: owner-pid, server-pid, temp dir.
 */
const WATCHDOG = `
owner=$1; server=$2; dir=$3
trap '' INT HUP TERM
while kill -0 "$owner" 2>/dev/null && kill -0 "$server" 2>/dev/null && [ -e "$dir/data/postmaster.pid" ]; do sleep 1; done
kill -0 "$owner" 2>/dev/null && sleep 1 # stopped by the owner's exit hook: let the owner finish exiting
if ! kill -0 "$owner" 2>/dev/null; then
  if kill -0 "$server" 2>/dev/null; then
    kill -QUIT "$server" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e "$dir/data/postmaster.pid" ] || break; sleep 0.5; done
    kill -KILL "$server" 2>/dev/null
    sleep 0.5
  fi
  case "$dir" in */kiln-pg-*) rm -rf -- "$dir" ;; esac
fi
`;

// ---------------------------------------------------------------------------

export interface PostgresOptions {
  /** Extra postgresql.conf lines, e.g. `log_min_duration_statement = 0`. */
  config?: string[];
  /** Server TLS (PEM): written into the data dir and turned on with ssl = on. */
  tls?: { cert: string; key: string; ca: string };
  /** pg_hba.conf lines replacing initdb's (the unix socket keeps trust, for sql()). */
  hba?: string[];
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresServer> {
  requireBinaries();
  installExitHook();
  const ids = await postgresIds();
  const su = asPostgres(ids);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-pg-'));
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  const password = randomBytes(18).toString('base64url');
  const port = await freePort();
  const tool = (name: string, args: string[]) => {
    const argv = [...su, path.join(PG_BIN, name), ...args];
    return run(argv[0]!, argv.slice(1), { cwd: dir });
  };
  const toolOk = async (name: string, args: string[]) => {
    const r = await tool(name, args);
    if (r.code !== 0) throw new Error(`${name} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  };
  const logTail = () => {
    try {
      return readFileSync(logFile, 'utf8').slice(-4000);
    } catch {
      return '(no log)';
    }
  };

  try {
    if (ids) chownSync(dir, ids.uid, ids.gid);
    const pwFile = path.join(dir, 'superuser.pw');
    await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (ids) chownSync(pwFile, ids.uid, ids.gid);
    await toolOk('initdb', ['-D', dataDir, '-U', SUPERUSER, `--pwfile=${pwFile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']);
    await rm(pwFile);
    appendFileSync(
      path.join(dataDir, 'postgresql.conf'),
      [
        '',
        '# kiln test harness',
        `listen_addresses = '127.0.0.1'`,
        `port = ${port}`,
        `unix_socket_directories = '${dir}'`,
        `password_encryption = 'scram-sha-256'`,
        'fsync = off',
        'synchronous_commit = off',
        'full_page_writes = off',
        `log_statement = 'all'`,
        `log_line_prefix = '%m [%p] %q%u@%d '`,
        ...(opts.tls ? [`ssl = on`, `ssl_cert_file = 'server.crt'`, `ssl_key_file = 'server.key'`, `ssl_ca_file = 'ca.crt'`] : []),
        ...(opts.config ?? []),
        '',
      ].join('\n'),
    );
    const own = async (file: string, content: string) => {
      await writeFile(file, content, { mode: 0o600 });
      if (ids) chownSync(file, ids.uid, ids.gid);
    };
    if (opts.tls) {
      await own(path.join(dataDir, 'server.crt'), opts.tls.cert);
      await own(path.join(dataDir, 'server.key'), opts.tls.key);
      await own(path.join(dataDir, 'ca.crt'), opts.tls.ca);
    }
    if (opts.hba) await own(path.join(dataDir, 'pg_hba.conf'), ['local all all trust', ...opts.hba, ''].join('\n'));
  } catch (e) {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw e;
  }

  let running = false;

  const start = async () => {
    if (running) return;
    live.add(dataDir);
    const r = await tool('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
    const pid = postmasterPid(dataDir);
    if (r.code !== 0 || !pid) {
      throw new Error(`pg_ctl start exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}\nlog ${logFile}:\n${logTail()}`);
    }
    running = true;
    spawn('bash', ['-c', WATCHDOG, 'kiln-pg-watchdog', String(process.pid), String(pid), dir], { stdio: 'ignore', detached: true }).unref();
  };

  const stop = async () => {
    if (!running && !postmasterPid(dataDir)) return;
    const r = await tool('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']);
    if (r.code !== 0 && postmasterPid(dataDir)) throw new Error(`pg_ctl stop exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    running = false;
    live.delete(dataDir);
  };

  const server: PostgresServer = {
    host: '127.0.0.1',
    port,
    superuser: SUPERUSER,
    password,
    dir,
    socketDir: dir,
    logFile,
    readLog: () => readFileSync(logFile, 'utf8'),
    async sql(query, database = 'postgres') {
      const r = await run(path.join(PG_BIN, 'psql'), ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', dir, '-p', String(port), '-U', SUPERUSER, '-d', database, '-c', query]);
      if (r.code !== 0) throw new Error(`psql -d ${database} exited ${r.code}: ${r.stderr.trim()}`);
      return r.stdout.replace(/\n$/, '');
    },
    stop,
    start,
    async destroy() {
      try {
        await stop();
      } finally {
        live.delete(dataDir);
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    await start();
  } catch (e) {
    await server.destroy().catch(() => {});
    throw e;
  }
  return server;
}
