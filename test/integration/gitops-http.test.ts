/**
 * Git mode's push path over real smart HTTP: bare repositories on disk served
 * by `git http-backend` (the CGI program shipped with Git) behind a small
 * node:http server on 127.0.0.1 that demands authentication (Basic with the
 * token as the password, or Bearer) and answers 401 with WWW-Authenticate
 * otherwise, the way GitHub, Gitea and GitLab do for Git over HTTPS (without
 * TLS: 127.0.0.1 only). kiln's GitRepoWriter clones, commits and pushes
 * through it with a token sent as an `http.<url>.extraHeader`.
 *
 * The token must appear nowhere kiln leaves a trace: not in any log line or
 * error message (captured), not in the clone's .git/config, and not in the
 * argv of any git process kiln spawns (what `ps` shows). The argv check wraps
 * node:child_process.spawn (simple-git's only way to run git; the ESM binding
 * is re-synced with syncBuiltinESMExports) and also reads each child's
 * /proc/<pid>/cmdline; a background scan of /proc catches git's own helpers
 * (git-remote-http) while the network commands run. The server's access log
 * proves the Authorization header did arrive.
 *
 * No cluster is involved (the integration project's global setup starts one
 * anyway; it is not used here).
 */
import childProcess, { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { syncBuiltinESMExports } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitBatcher } from '../../gitops/batcher.js';
import { authFromFileWatched } from '../../controller/git/sink.js';
import { layoutTree, type LayoutOptions, type RenderedResource } from '../../gitops/layout.js';
import { authFromEnv, GitRepoWriter, GitWriterError, type GitRepoWriterOptions } from '../../gitops/repo.js';
import { testToken } from '../harness/secrets.js';
import { serveGitHttpBackend } from '../harness/git-http-backend.js';
import { initBareRepo, otherWriterCommit, plainGit, plainGitEnv as gitEnv } from '../harness/git.js';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-gitops-http-'));
const LAYOUT: LayoutOptions = { basePath: 'clusters', cluster: 'dev' };
const AUTHOR = { name: 'kiln bot', email: 'kiln-bot@example.com' };
const TOKEN = testToken('http');
const BASIC = (user: string, token = TOKEN): string => Buffer.from(`${user}:${token}`).toString('base64');

// ---------------------------------------------------------------- plain git helpers (as in gitops-repo.test.ts)

const OTHER = { name: 'other writer', email: 'other@example.com' };
const git = (cwd: string, ...args: string[]): string => plainGit(cwd, args, OTHER);

/**
 * The same, asynchronously: anything talking to the test's HTTP server must not block the event loop
 * that serves it. `bearer`: the other writer's token, as an extraHeader in the environment (not argv).
 */
async function gitAsync(cwd: string, args: string[], bearer?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...gitEnv, GIT_TERMINAL_PROMPT: '0' };
  if (bearer) Object.assign(env, { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'http.extraHeader', GIT_CONFIG_VALUE_0: `Authorization: Bearer ${bearer}` });
  return new Promise((resolve, reject) => {
    execFile('git', ['-c', 'user.name=other writer', '-c', 'user.email=other@example.com', ...args], { cwd, env, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(new Error(`git ${args[0] ?? ''}: ${err.message}`, { cause: err }));
      else resolve({ code: err ? (err.code as unknown as number) : 0, stdout, stderr });
    });
  });
}

async function gitOk(cwd: string, args: string[], bearer?: string): Promise<string> {
  const r = await gitAsync(cwd, args, bearer);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

const reposDir = join(tmp, 'served');
mkdirSync(reposDir);
let repos = 0;
/** A bare repository under the served root, pushable over HTTP, with one seed commit; its name and path. */
function servedRepo(seed = true): { name: string; bare: string } {
  const name = `deploy-${++repos}.git`;
  const bare = join(reposDir, name);
  initBareRepo(bare, tmp, { seed, identity: OTHER });
  git(bare, 'config', 'http.receivepack', 'true');
  return { name, bare };
}

const subjects = (bare: string): string[] => git(bare, 'log', '--format=%s', 'main').trim().split('\n');
const treeFiles = (bare: string, ref = 'main'): string[] => git(bare, 'ls-tree', '-r', '--name-only', ref).trim().split('\n').filter(Boolean);
const show = (bare: string, path: string, ref = 'main'): string => git(bare, 'show', `${ref}:${path}`);
const mainSha = (bare: string): string => git(bare, 'rev-parse', 'main').trim();

let clones = 0;
const workDir = (): string => join(tmp, `kiln-clone-${++clones}`);

const small = (name: string, value: string, generation = 1): RenderedResource => ({
  kind: 'ConfigMapSync',
  namespace: 'bulk',
  name,
  generation,
  objects: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'bulk' }, data: { value } }],
});

// ---------------------------------------------------------------- git http-backend behind an authenticating server

interface AccessEntry {
  method: string;
  path: string;
  query: string;
  status: number;
  /** The Authorization header as received (this is the server's side: it may hold the token). */
  authorization: string | undefined;
  user: string | undefined;
}

interface GitHttpServer {
  /** Base URL; a repository is `${url}/${name}`. */
  url: string;
  /** The token the server accepts now (tests revoke it). */
  token: string;
  log: AccessEntry[];
  close(): Promise<void>;
}

/** Who the Authorization header authenticates, or undefined. Basic: any user name, the token as password. Bearer: the token. */
function authenticate(header: string | undefined, token: string): string | undefined {
  if (!header) return undefined;
  const [scheme, value = ''] = header.split(/\s+/, 2) as [string, string?];
  if (/^bearer$/i.test(scheme)) return value === token ? 'bearer-user' : undefined;
  if (/^basic$/i.test(scheme)) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    return decoded.slice(colon + 1) === token ? decoded.slice(0, colon) || 'basic-user' : undefined;
  }
  return undefined;
}

async function startGitHttpServer(token: string): Promise<GitHttpServer> {
  const log: AccessEntry[] = [];
  const state = { token };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const entry: AccessEntry = { method: req.method ?? '', path: url.pathname, query: url.search, status: 0, authorization: req.headers.authorization, user: undefined };
    log.push(entry);
    const user = authenticate(req.headers.authorization, state.token);
    if (!user) {
      entry.status = 401;
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Basic realm="kiln test git server"', 'content-type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    entry.user = user;
    serveGitHttpBackend(req, res, { root: reposDir, user, onStatus: (status) => (entry.status = status) });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get token() {
      return state.token;
    },
    set token(t: string) {
      state.token = t;
    },
    log,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

// ---------------------------------------------------------------- what kiln leaves behind: logs, errors, spawned argv

interface Spawned {
  file: string;
  args: string[];
  /** /proc/<pid>/cmdline right after spawn (the child has exec'd by then): what `ps` shows. */
  cmdline: string | undefined;
  /** Names of the environment variables whose value holds the secret. */
  secretInEnv: string[];
}

const spawned: Spawned[] = [];
/** Command lines of any process seen in /proc while the watcher ran. */
const psSeen = new Set<string>();
const realSpawn = childProcess.spawn;
let secrets: string[] = [];

function readCmdline(pid: number | undefined): string | undefined {
  if (!pid) return undefined;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}

beforeAll(() => {
  // simple-git does `import { spawn } from "node:child_process"`; replacing the CommonJS export and
  // re-syncing the builtin's ESM bindings makes its calls go through this wrapper.
  const wrapped = function (this: unknown, file: string, args?: readonly string[], options?: { env?: NodeJS.ProcessEnv }): ChildProcess {
    const child = (realSpawn as (...a: unknown[]) => ChildProcess)(file, args, options);
    if (/(^|\/)git$/.test(file)) {
      const env = options?.env ?? {};
      spawned.push({
        file,
        args: [...(args ?? [])],
        cmdline: readCmdline(child.pid),
        secretInEnv: Object.entries(env)
          .filter(([, v]) => secrets.some((s) => v?.includes(s)))
          .map(([k]) => k),
      });
    }
    return child;
  };
  childProcess.spawn = wrapped as typeof childProcess.spawn;
  syncBuiltinESMExports();
});

afterAll(() => {
  childProcess.spawn = realSpawn;
  syncBuiltinESMExports();
  rmSync(tmp, { recursive: true, force: true });
});

/** Scans /proc every few ms and records the command line of every git process (ours and git's helpers). */
function watchProcesses(): () => void {
  if (!existsSync('/proc/self/cmdline')) return () => undefined;
  const timer = setInterval(() => {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const cmd = readCmdline(Number(pid));
      if (cmd && /\bgit\b|git-remote-http|git-http/.test(cmd)) psSeen.add(cmd);
    }
  }, 5);
  return () => clearInterval(timer);
}

function capture(): { lines: string[]; log: NonNullable<GitRepoWriterOptions['log']> } {
  const lines: string[] = [];
  return { lines, log: (level, msg, fields) => lines.push(JSON.stringify({ level, msg, ...fields })) };
}

/** Every way the secret could be written: raw, URL-encoded, inside Basic credentials. */
function secretForms(token: string, users: string[]): string[] {
  return [token, encodeURIComponent(token), ...users.map((u) => BASIC(u, token))];
}

function expectNoSecret(where: string, text: string, forms: string[]): void {
  for (const s of forms) expect(text.includes(s), `${where} holds the token (${s.slice(0, 6)}...)`).toBe(false);
}

// ---------------------------------------------------------------- tests

describe('git mode over smart HTTP (git http-backend, token required)', () => {
  let server: GitHttpServer;
  beforeAll(async () => {
    server = await startGitHttpServer(TOKEN);
    secrets = secretForms(TOKEN, ['x-access-token', 'kiln']);
  });
  afterAll(async () => server?.close());

  it('the server itself refuses anonymous access and serves an authenticated plain git ls-remote', async () => {
    const { name } = servedRepo();
    const anon = await gitAsync(tmp, ['ls-remote', `${server.url}/${name}`]);
    expect(anon.code).not.toBe(0);
    expect(server.log.at(-1)).toMatchObject({ status: 401, authorization: undefined });
    const ok = await gitAsync(tmp, ['ls-remote', `${server.url}/${name}`], TOKEN);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toMatch(/^[0-9a-f]{40}\trefs\/heads\/main$/m);
  });

  it('clones, commits and pushes over HTTP with the token (Basic, token as password); the header arrives, nothing else keeps it', async () => {
    const { name, bare } = servedRepo();
    const url = `${server.url}/${name}`;
    const { lines, log } = capture();
    const dir = workDir();
    const firstRequest = server.log.length;
    const spawnedBefore = spawned.length;
    const stop = watchProcesses();
    try {
      const writer = await GitRepoWriter.open({ url, allowInsecureHttp: true, branch: 'main', workDir: dir, basePath: 'clusters', auth: { token: TOKEN }, log });
      expect(await writer.head()).toBe(mainSha(bare));
      const { files } = layoutTree([small('web', 'v1'), small('api', 'v1')], LAYOUT);
      expect((await writer.writeTree(files)).changed).toBe(true);
      const sha = await writer.commit('kiln: web and api', AUTHOR);
      const pushed = await writer.push();
      expect(pushed).toMatchObject({ sha, attempts: 1, rebased: 0, rewritten: 0 });
      expect(mainSha(bare)).toBe(sha);
      expect(subjects(bare)).toEqual(['kiln: web and api', 'seed']);
      for (const [path, content] of files) expect(show(bare, path)).toBe(content);

      // A batcher on top of the same writer: a second commit over HTTP, its logs captured too.
      const batcher = await GitBatcher.start({ writer, layout: LAYOUT, author: AUTHOR, debounceMs: 50, maxWaitMs: 1000, log });
      const result = await batcher.upsert(small('web', 'v2', 2));
      expect(result.state).toBe('committed');
      await batcher.close();
      expect(show(bare, 'clusters/dev/bulk/configmapsync/web/manifest.yaml')).toContain('value: v2');
    } finally {
      stop();
    }

    // The server saw the token on every request, Basic with the default user name, and refused none.
    const requests = server.log.slice(firstRequest);
    expect(requests.some((r) => r.method === 'POST' && r.path.endsWith('/git-receive-pack'))).toBe(true);
    expect(requests.some((r) => r.method === 'POST' && r.path.endsWith('/git-upload-pack'))).toBe(true);
    for (const r of requests) {
      expect(r.authorization).toBe(`Basic ${BASIC('x-access-token')}`);
      expect(r.status).toBe(200);
    }

    // Nothing kiln keeps or prints holds it.
    expect(lines.length).toBeGreaterThan(0);
    expectNoSecret('logs', lines.join('\n'), secrets);
    expectNoSecret('.git/config', readFileSync(join(dir, '.git', 'config'), 'utf8'), secrets);
    expect(readFileSync(join(dir, '.git', 'config'), 'utf8')).toContain(`url = "${url}"`);
    expect(existsSync(join(dir, '.git', 'credentials'))).toBe(false);

    // No git command line holds it; only the network commands' environment does (GIT_CONFIG_VALUE_0).
    const mine = spawned.slice(spawnedBefore);
    expect(mine.length).toBeGreaterThan(5);
    for (const s of mine) {
      expectNoSecret(`argv of git ${s.args.join(' ')}`, [s.file, ...s.args].join(' '), secrets);
      if (s.cmdline !== undefined) expectNoSecret(`/proc cmdline ${s.cmdline}`, s.cmdline, secrets);
      const network = ['fetch', 'push', 'clone', 'ls-remote'].includes(s.args[0] ?? '');
      expect(s.secretInEnv, `environment of git ${s.args[0]}`).toEqual(network ? ['GIT_CONFIG_VALUE_0'] : []);
    }
    expect(mine.some((s) => s.args[0] === 'push')).toBe(true);
    expect(mine.filter((s) => s.cmdline !== undefined).length).toBeGreaterThan(0);
    for (const cmd of psSeen) expectNoSecret(`ps: ${cmd}`, cmd, secrets);
    console.log(
      `[gitops-http] ${mine.length} git processes spawned by kiln, ${mine.filter((s) => s.cmdline).length} read from /proc; ${psSeen.size} git command lines seen in /proc, ${[...psSeen].filter((c) => /remote-http/.test(c)).length} of git-remote-http`,
    );
  });

  it('Bearer: a token from the environment (KILN_GIT_AUTH_SCHEME=Bearer) pushes to a new repository', async () => {
    const { name, bare } = servedRepo(false);
    const auth = authFromEnv({ KILN_GIT_TOKEN: TOKEN, KILN_GIT_AUTH_SCHEME: 'Bearer' });
    expect(auth).toEqual({ token: TOKEN, scheme: 'Bearer', username: undefined });
    const { lines, log } = capture();
    const firstRequest = server.log.length;
    const writer = await GitRepoWriter.open({ url: `${server.url}/${name}`, allowInsecureHttp: true, branch: 'main', workDir: workDir(), basePath: 'clusters', auth, log });
    expect(await writer.head()).toBeUndefined();
    await writer.writeTree(layoutTree([small('first', '1')], LAYOUT).files);
    const sha = await writer.commit('kiln: first', AUTHOR);
    expect((await writer.push()).sha).toBe(sha);
    expect(mainSha(bare)).toBe(sha);
    const requests = server.log.slice(firstRequest);
    expect(requests.length).toBeGreaterThan(0);
    for (const r of requests) expect(r.authorization).toBe(`Bearer ${TOKEN}`);
    expectNoSecret('logs', lines.join('\n'), secrets);
  });

  it('a wrong token fails with a clear error that holds neither token', async () => {
    const { name } = servedRepo();
    const wrong = testToken('wrong');
    const forms = [...secrets, ...secretForms(wrong, ['x-access-token'])];
    const { lines, log } = capture();
    const dir = workDir();
    const firstRequest = server.log.length;
    const writer = new GitRepoWriter({ url: `${server.url}/${name}`, allowInsecureHttp: true, branch: 'main', workDir: dir, basePath: 'clusters', auth: { token: wrong }, log, maxPushAttempts: 2 });
    const err = await writer.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitWriterError);
    const e = err as GitWriterError;
    expect(e.reason).toBe('failed');
    // git gets a 401, has no credential helper to ask and may not prompt.
    expect(e.message).toMatch(new RegExp(`^fetch main from ${server.url}/${name}: `));
    expect(e.message).toMatch(/Authentication failed|could not read Username|terminal prompts disabled|401/i);
    expect(e.message).toContain('authentication failed: check the token');
    console.log(`[gitops-http] wrong token -> ${e.message}`);
    const requests = server.log.slice(firstRequest);
    expect(requests.length).toBeGreaterThan(0);
    for (const r of requests) expect(r).toMatchObject({ status: 401, authorization: `Basic ${BASIC('x-access-token', wrong)}` });
    expectNoSecret('error', `${e.message}\n${e.stack ?? ''}`, forms);
    expectNoSecret('logs', lines.join('\n'), forms);
    expectNoSecret('.git/config', readFileSync(join(dir, '.git', 'config'), 'utf8'), forms);
  });

  it('a token revoked between sync and push: the push fails clearly (not as a rejection to retry), nothing leaks', async () => {
    const { name, bare } = servedRepo();
    const { lines, log } = capture();
    const writer = await GitRepoWriter.open({
      url: `${server.url}/${name}`,
      allowInsecureHttp: true,
      branch: 'main',
      workDir: workDir(),
      basePath: 'clusters',
      auth: { token: TOKEN },
      log,
      maxPushAttempts: 3,
    });
    await writer.writeTree(layoutTree([small('late', '1')], LAYOUT).files);
    await writer.commit('kiln: late', AUTHOR);
    const seed = mainSha(bare);
    const firstRequest = server.log.length;
    server.token = testToken('rotated');
    try {
      const err = await writer.push().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GitWriterError);
      expect((err as GitWriterError).reason).toBe('failed');
      expect((err as Error).message).toMatch(/^push to main failed: /);
      console.log(`[gitops-http] revoked token on push -> ${(err as Error).message}`);
      expectNoSecret('error', `${(err as Error).message}\n${(err as Error).stack ?? ''}`, secrets);
      expectNoSecret('logs', lines.join('\n'), secrets);
      // One push command, refused at its first request: an authentication failure is not retried.
      const requests = server.log.slice(firstRequest);
      expect(requests.length).toBeGreaterThan(0);
      expect(requests.every((r) => r.status === 401)).toBe(true);
      expect(new Set(requests.map((r) => r.path + r.query)).size).toBe(1);
      expect(mainSha(bare)).toBe(seed);
    } finally {
      server.token = TOKEN;
    }
    // With the token back, the same writer pushes what it kept.
    expect((await writer.push()).attempts).toBe(1);
    expect(subjects(bare)[0]).toBe('kiln: late');
  });

  it('a rotated token file is read again: the same writer pushes with the new token, and scrubs both', async () => {
    const { name, bare } = servedRepo();
    const { lines, log } = capture();
    const file = join(tmp, `token-${name}`);
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const writer = await GitRepoWriter.open({
      url: `${server.url}/${name}`,
      allowInsecureHttp: true,
      branch: 'main',
      workDir: workDir(),
      basePath: 'clusters',
      auth: authFromFileWatched(file, {}),
      log,
    });
    await writer.writeTree(layoutTree([small('rotated', '1')], LAYOUT).files);
    await writer.commit('kiln: after rotation', AUTHOR);
    const next = testToken('next');
    // The Secret is rotated: the server takes only the new token, the file holds it.
    server.token = next;
    writeFileSync(file, `${next}\n`);
    const firstRequest = server.log.length;
    try {
      expect((await writer.push()).attempts).toBe(1);
      expect(subjects(bare)[0]).toBe('kiln: after rotation');
      expect(
        server.log
          .slice(firstRequest)
          .filter((r) => r.status !== 401)
          .every((r) => r.authorization === `Basic ${BASIC('x-access-token', next)}`),
      ).toBe(true);
      expect(writer.scrub(`old ${TOKEN} new ${next}`)).toBe('old *** new ***');
      expectNoSecret('logs', lines.join('\n'), [...secrets, ...secretForms(next, ['x-access-token'])]);
    } finally {
      server.token = TOKEN;
    }
  });

  it("another writer pushes between kiln's commit and push -> rejected, fetched, rebased and retried over HTTP; both writers' commits survive", async () => {
    const { name, bare } = servedRepo();
    const { lines, log } = capture();
    const writer = await GitRepoWriter.open({
      url: `${server.url}/${name}`,
      allowInsecureHttp: true,
      branch: 'main',
      workDir: workDir(),
      basePath: 'clusters',
      auth: { token: TOKEN, username: 'kiln' },
      log,
      retryDelayMs: { base: 5, max: 50 },
    });
    // The other writer also goes through the authenticating server.
    const other = join(tmp, `other-${name}`);
    await gitOk(tmp, ['clone', '--quiet', `${server.url}/${name}`, other], TOKEN);
    const firstRequest = server.log.length;
    let rebased = 0;
    let rewritten = 0;
    let lastFiles = new Map<string, string>();
    const rounds = 6;
    for (let i = 0; i < rounds; i++) {
      lastFiles = layoutTree([small('racer', `kiln ${i}`, i + 1), small('steady', 'same')], LAYOUT).files;
      await writer.writeTree(lastFiles);
      expect(await writer.commit(`kiln: round ${i}`, AUTHOR)).toBeDefined();
      await gitOk(other, ['pull', '--quiet', '--rebase', 'origin', 'main'], TOKEN);
      // Round 3 edits, inside kiln's base path, the file kiln just changed: the rebase conflicts and kiln re-writes its tree.
      otherWriterCommit(other, i, i === 3, git);
      await gitOk(other, ['push', '--quiet', 'origin', 'HEAD:main'], TOKEN);

      const result = await writer.push();
      expect(result.attempts, `round ${i}`).toBeGreaterThanOrEqual(2);
      rebased += result.rebased;
      rewritten += result.rewritten;
      expect(mainSha(bare)).toBe(result.sha);
    }
    expect(rebased).toBe(rounds - 1);
    expect(rewritten).toBe(1);
    const all = subjects(bare);
    for (let i = 0; i < rounds; i++) {
      expect(all).toContain(`kiln: round ${i}`);
      expect(all).toContain(`other: round ${i}`);
    }
    expect(git(bare, 'rev-list', '--merges', '--count', 'main').trim()).toBe('0');
    for (const [path, content] of lastFiles) expect(show(bare, path)).toBe(content);
    expect(treeFiles(bare).filter((f) => f.startsWith('apps/'))).toHaveLength(rounds - 1);
    // Each of kiln's pushes, the rejected ones included, asked the server for its refs with kiln's credentials:
    // git push learns from the ref advertisement that the branch moved and refuses before sending a pack.
    const kilnRequests = server.log.slice(firstRequest).filter((r) => r.authorization?.startsWith('Basic '));
    const advertisements = kilnRequests.filter((r) => r.method === 'GET' && r.query === '?service=git-receive-pack');
    expect(advertisements.length).toBeGreaterThanOrEqual(2 * rounds);
    expect(kilnRequests.filter((r) => r.method === 'POST' && r.path.endsWith('/git-receive-pack')).length).toBeGreaterThanOrEqual(rounds);
    for (const r of kilnRequests) expect(r).toMatchObject({ authorization: `Basic ${BASIC('kiln')}`, status: 200 });
    expect(lines.some((l) => l.includes('push rejected: fetching and rebasing'))).toBe(true);
    expectNoSecret('logs', lines.join('\n'), secrets);
  });
});
