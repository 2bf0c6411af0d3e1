/**
 * A throwaway Gitea (the binary scripts/build-gitea.sh builds from the Go module
 * proxy) for the review-mode tests: SQLite and repositories under `dir`, HTTP on
 * a free loopback port, no SSH, no mail, no registration; one admin user whose
 * access tokens are made through Gitea's own CLI before the server starts.
 *
 * Lifetime: `gitea web` runs through a bash wrapper that TERMs (then KILLs) it
 * once this Node process is gone, so a crashed or killed test run leaves no
 * server behind; stop() and a process 'exit' hook kill it eagerly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { plainGit } from './git.js';
import { freePort } from './ports.js';
import { run } from './run.js';

const BUILD_SCRIPT = fileURLToPath(new URL('../../scripts/build-gitea.sh', import.meta.url));

/** The version scripts/build-gitea.sh pins, read from the script so the two cannot drift apart. */
export function giteaVersion(): string {
  const m = /^GITEA_VERSION=(\S+)$/m.exec(readFileSync(BUILD_SCRIPT, 'utf8'));
  if (!m) throw new Error(`no GITEA_VERSION= line in ${BUILD_SCRIPT}`);
  return m[1]!;
}

/** Where scripts/build-gitea.sh puts the binary; throws (never skips) when it is not there. */
export function giteaBinary(): string {
  const cache = process.env['KILN_CACHE'] || join(homedir(), '.cache', 'kiln');
  const bin = join(cache, 'gitea', giteaVersion(), 'bin', 'gitea');
  if (!existsSync(bin)) throw new Error(`no Gitea binary at ${bin}: run scripts/build-gitea.sh (test-all.sh does) to build it from the Go module proxy`);
  return bin;
}

export interface GiteaRepo {
  owner: string;
  name: string;
  /** owner/name */
  fullName: string;
  /** http://127.0.0.1:<port>/<owner>/<name>.git (no credentials) */
  cloneUrl: string;
  /** Web URL of the repository */
  htmlUrl: string;
}

export interface GiteaServer {
  /** http://127.0.0.1:<port> (no trailing slash) */
  url: string;
  /** `${url}/api/v1` */
  apiUrl: string;
  /** The admin's token, scopes write:repository and write:user (creating repositories under the user needs both). */
  token: string;
  /** A second token of the admin with write:repository only: what pushing and pull requests need. */
  repoToken: string;
  user: string;
  /** Gitea's console log (every command's and the server's output). */
  logFile: string;
  /** A private repository of `user` whose `main` holds one commit (README.md), pushed over smart HTTP. */
  createRepo(name: string): Promise<GiteaRepo>;
  /** One API call as the admin (`token`); throws with the status and body unless 2xx. */
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  /** Extra `git -c` arguments that authenticate as the admin over HTTP without the token entering any URL or config. */
  gitAuthArgs(): string[];
  stop(): Promise<void>;
}

export interface GiteaOptions {
  /** Directory for app.ini, the database, repositories and the log (the caller removes it). */
  dir?: string;
  /** The gitea binary (default giteaBinary()); its options/ and templates/ are looked for in the directory above its own. */
  bin?: string;
}

/*
 * Runs the server so that it dies with its owner: a background loop polls the
 * owner pid and the server pid and TERMs (then KILLs) the server once the owner
 * is gone. `exec` keeps the server's pid equal to the one Node sees.
 * argv: owner-pid, binary, args...
 */
const WRAPPER = `
owner=$1; shift
self=$$
(
  trap '' INT HUP TERM
  while kill -0 "$owner" 2>/dev/null && kill -0 "$self" 2>/dev/null; do sleep 1; done
  if ! kill -0 "$owner" 2>/dev/null && kill -0 "$self" 2>/dev/null; then
    kill -TERM "$self" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$self" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$self" 2>/dev/null
  fi
) </dev/null >/dev/null 2>&1 &
exec "$@"
`;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

function tail(file: string, chars = 4000): string {
  try {
    return readFileSync(file, 'utf8').slice(-chars);
  } catch {
    return '(no log)';
  }
}

function appIni(o: { dir: string; port: number; user: string; staticRoot: string }): string {
  const secret = () => randomBytes(32).toString('hex');
  return `APP_NAME = kiln test forge
RUN_MODE = prod
RUN_USER = ${o.user}
WORK_PATH = ${o.dir}
${
  // Gitea refuses to run as root unless told; CI machines and this one run tests as root.
  process.getuid?.() === 0 ? 'I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true\n' : ''
}
[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = ${o.port}
ROOT_URL = http://127.0.0.1:${o.port}/
LOCAL_ROOT_URL = http://127.0.0.1:${o.port}/
APP_DATA_PATH = ${o.dir}/data
STATIC_ROOT_PATH = ${o.staticRoot}
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false

[database]
DB_TYPE = sqlite3
PATH = ${o.dir}/data/gitea.db

[repository]
ROOT = ${o.dir}/repositories
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = ${secret()}
INTERNAL_TOKEN = ${secret()}

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = true

[mailer]
ENABLED = false

[cron]
ENABLED = false

[log]
MODE = console
LEVEL = Info
`;
}

export async function startGitea(opts: GiteaOptions = {}): Promise<GiteaServer> {
  const bin = resolve(opts.bin ?? giteaBinary());
  if (!existsSync(bin)) throw new Error(`no Gitea binary at ${bin}: run scripts/build-gitea.sh to build it from the Go module proxy`);
  installExitHook();
  const dir = resolve(opts.dir ?? (await mkdtemp(join(tmpdir(), 'kiln-gitea-'))));
  await mkdir(join(dir, 'data'), { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const apiUrl = `${url}/api/v1`;
  const config = join(dir, 'app.ini');
  const logFile = join(dir, 'gitea.log');
  const user = 'kiln-admin';
  // build-gitea.sh copies options/ (the locales Gitea needs to start) and templates/ beside bin/.
  await writeFile(config, appIni({ dir, port, user: userInfo().username, staticRoot: dirname(dirname(bin)) }), { mode: 0o600 });
  // Gitea's git calls read no global or system git config of the caller.
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GIT_') && !k.startsWith('GITEA_'))),
    HOME: join(dir, 'home'),
    GITEA_WORK_DIR: dir,
  };
  await mkdir(env['HOME']!, { recursive: true });

  const cli = async (what: string, args: string[], secretOut = false): Promise<string> => {
    const r = await run(bin, ['--config', config, '--work-path', dir, ...args], { env, cwd: dir, timeoutMs: 120_000 });
    // The CLI's output holds the tokens it makes: only the failures reach the log.
    const fh = await open(logFile, 'a');
    await fh.write(`--- gitea ${what}: exit ${r.code}\n${secretOut && r.code === 0 ? '' : r.stdout}${r.stderr}`);
    await fh.close();
    if (r.code !== 0) throw new Error(`gitea ${what} exited ${r.code}; log ${logFile}:\n${tail(logFile)}`);
    return r.stdout;
  };

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const stop = async () => {
    const c = child;
    if (!c?.pid) return;
    try {
      process.kill(-c.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 10_000)))]);
    clearTimeout(timer);
    if (!done) {
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await exited;
    }
  };

  try {
    await cli('migrate', ['migrate']);
    const created = await cli(
      'admin user create',
      [
        'admin',
        'user',
        'create',
        '--admin',
        '--username',
        user,
        '--email',
        `${user}@kiln.test`,
        '--random-password',
        '--must-change-password=false',
        '--access-token',
        '--access-token-name',
        'harness',
        '--access-token-scopes',
        'write:repository,write:user',
      ],
      true,
    );
    const token = /Access token was successfully created\.\.\. (\S+)/.exec(created)?.[1];
    if (!token) throw new Error(`gitea admin user create printed no access token; log ${logFile}`);
    const repoToken = (
      await cli('admin user generate-access-token', ['admin', 'user', 'generate-access-token', '--username', user, '--token-name', 'kiln', '--scopes', 'write:repository', '--raw'], true)
    ).trim();
    if (!/^[0-9a-f]{40}$/.test(repoToken)) throw new Error(`gitea admin user generate-access-token printed no token; log ${logFile}`);

    const fh = await open(logFile, 'a');
    const c = spawn('bash', ['-c', WRAPPER, 'kiln-gitea', String(process.pid), bin, '--config', config, '--work-path', dir, 'web'], {
      cwd: dir,
      env,
      stdio: ['ignore', fh.fd, fh.fd],
      detached: true, // own process group: stop() kills gitea and its watchdog together
    });
    await fh.close();
    c.unref();
    child = c;
    live.add(c);
    let gone = false;
    exited = new Promise<void>((resolveExit) => {
      const done = () => {
        gone = true;
        live.delete(c);
        if (child === c) child = undefined;
        resolveExit();
      };
      c.on('exit', done);
      c.on('error', done);
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (gone) throw new Error(`gitea web exited during startup; log ${logFile}:\n${tail(logFile)}`);
      const ok = await fetch(`${url}/api/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`gitea web not healthy on ${url} after 60 s; log ${logFile}:\n${tail(logFile)}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const r = await fetch(`${apiUrl}${path}`, {
        method,
        headers: { authorization: `token ${token}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await r.text();
      if (!r.ok) throw new Error(`Gitea ${method} ${path}: HTTP ${r.status} ${text.slice(0, 500)}; log ${logFile}`);
      return (text ? JSON.parse(text) : undefined) as T;
    };
    const gitAuthArgs = () => ['-c', `http.extraHeader=Authorization: Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`];

    const createRepo = async (name: string): Promise<GiteaRepo> => {
      const repo = await api<{ full_name: string; clone_url: string; html_url: string; name: string; owner: { login: string } }>('POST', '/user/repos', {
        name,
        private: true,
        default_branch: 'main',
        auto_init: false,
      });
      // An empty repository, seeded over smart HTTP (auto_init would need Gitea's
      // readme templates, which an API-only build does not carry).
      const work = await mkdtemp(join(dir, 'seed-'));
      try {
        plainGit(work, ['init', '--quiet', '--initial-branch=main']);
        await writeFile(join(work, 'README.md'), '# deploy\n');
        plainGit(work, ['add', 'README.md']);
        plainGit(work, ['commit', '--quiet', '-m', 'seed']);
        try {
          plainGit(work, [...gitAuthArgs(), 'push', '--quiet', repo.clone_url, 'HEAD:refs/heads/main']);
        } catch (err) {
          // execFileSync's message repeats the arguments, the credential among them: neither it nor the error as cause.
          // eslint-disable-next-line preserve-caught-error
          throw new Error(`seeding ${repo.clone_url} failed: ${((err as { stderr?: string }).stderr ?? '').trim()}; log ${logFile}`);
        }
      } finally {
        await rm(work, { recursive: true, force: true });
      }
      return { owner: repo.owner.login, name: repo.name, fullName: repo.full_name, cloneUrl: repo.clone_url, htmlUrl: repo.html_url };
    };

    return { url, apiUrl, token, repoToken, user, logFile, createRepo, api, gitAuthArgs, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
