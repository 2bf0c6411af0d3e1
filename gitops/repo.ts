/**
 * One writer per repository and branch: a local clone in a work directory
 * (simple-git), kiln's tree written under the base path it owns, commits only
 * when something changed, and a push that survives other writers.
 *
 * - sync(): fetch and hard-reset to origin/<branch>. When the branch does not
 *   exist on the remote yet (an empty repository), the local branch starts
 *   from `baseBranch` if given and present, or empty, and the first push
 *   creates it.
 * - writeTree(): replaces everything under the owned prefix, nothing outside.
 * - commit(): only when `git status` shows a change under the base path.
 * - push(): a rejected push (non-fast-forward, or a lost race for the ref) is
 *   fetched, rebased and retried with full jitter, `maxPushAttempts` times in
 *   all. When the rebase conflicts inside the base path, the rebase is aborted,
 *   the clone reset to the remote and kiln's last tree written again on top of
 *   it (the rendered output is deterministic, so this is a re-render) and
 *   committed. A conflict outside the base path, or any other failure, is an
 *   error: kiln never resolves other writers' files.
 *
 * Review mode is this writer with `branch` = the review branch
 * (`<target>-next` or a named one) and `baseBranch` = the target branch; the
 * pull request is opened by a provider after push().
 *
 * Credentials: an HTTPS token travels only in an `http.<url>.extraHeader`
 * configuration passed through the environment of the network commands
 * (GIT_CONFIG_COUNT/KEY/VALUE): never on a command line (visible in the
 * process table), never in .git/config, and scrubbed from every error and log
 * message. Credentials written into the URL are moved there too.
 *
 * simple-git 4 strips ambient GIT_* (and EDITOR, PAGER, ...) variables and
 * refuses explicit ones unless allowed: the writer hands git an environment
 * built from process.env without them, plus the few it needs, each named in
 * `allowEnvironment`.
 *
 * simple-git waits 50 ms after a git process that printed nothing before
 * it settles (its completion plugin), so the commands run on every batch are
 * chosen to print something (no --quiet; `status --branch`; `add --verbose`):
 * a flush costs a handful of git processes, not a handful of 50 ms waits.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { simpleGit, type SimpleGit } from 'simple-git';
import type { Log } from '../lib/log.js';
import { normalizeBasePath } from './layout.js';
import { listTree, readRegularFile, writeOwnedTree, type TreeChange } from './tree.js';
import { redact } from '../kube/redact.js';

export interface GitIdentity {
  name: string;
  email: string;
}

export interface GitAuth {
  /** A personal access token, an app installation token, or a password. */
  token: string;
  /** `Basic` (default; what GitHub and Gitea accept for Git over HTTPS) or `Bearer`. */
  scheme?: 'Basic' | 'Bearer';
  /** For Basic: the user name sent with the token (default `x-access-token`). */
  username?: string;
}

export interface GitRepoWriterOptions {
  /** Remote URL: https://..., ssh, file:// or a local path. Credentials in the URL are refused (pass `auth`); http:// needs `allowInsecureHttp`. */
  url: string;
  /** Accept a plain http:// URL (tokens and content travel unencrypted): loopback test servers. */
  allowInsecureHttp?: boolean;
  /** The branch kiln syncs from and pushes to. */
  branch: string;
  /** When `branch` is missing on the remote, start it from this branch (review mode: the target branch). */
  baseBranch?: string;
  /** The local clone. Created if missing; an existing non-empty directory must already be a clone. */
  workDir: string;
  /** The directory kiln owns in the repository (relative). Nothing outside it is ever written. */
  basePath: string;
  /** A token, or where to get the current one before each network command (a rotated token file is read again). */
  auth?: GitAuth | (() => GitAuth | undefined);
  /** Committer of every commit (default kiln <noreply@kiln.dev>); the author is given per commit. */
  committer?: GitIdentity;
  /** Push attempts in all, the first included (default 10). */
  maxPushAttempts?: number;
  /** Full-jitter backoff between attempts: random in [0, min(max, base * 2^(attempt-1))) ms. */
  retryDelayMs?: { base: number; max: number };
  /** Kill a git command that prints nothing for this long (default 120 s). */
  commandTimeoutMs?: number;
  /** A transfer slower than 1 KiB/s for this long fails (http.lowSpeedLimit/lowSpeedTime; default 60 s). */
  lowSpeedSeconds?: number;
  /** Ambient GIT_* variables to hand through to git (default: GIT_SSL_CAINFO, GIT_SSL_CAPATH when set). */
  passEnvironment?: string[];
  log?: Log;
}

export interface PushResult {
  /** The commit now at the tip of the remote branch. */
  sha: string;
  /** Push commands run (0 when there was nothing to push). */
  attempts: number;
  /** Rejections resolved by a clean rebase. */
  rebased: number;
  /** Rejections resolved by resetting to the remote and writing kiln's tree again. */
  rewritten: number;
}

export type GitFailure = 'rejected' | 'conflict' | 'failed';

/** A Git operation that failed; its message never holds a credential. */
export class GitWriterError extends Error {
  constructor(
    message: string,
    readonly reason: GitFailure,
  ) {
    super(message);
    this.name = 'GitWriterError';
  }
}

export const DEFAULT_COMMITTER: GitIdentity = { name: 'kiln', email: 'noreply@kiln.dev' };

/** A token from the environment: KILN_GIT_TOKEN, with KILN_GIT_USERNAME and KILN_GIT_AUTH_SCHEME (Basic|Bearer). */
export function authFromEnv(env: NodeJS.ProcessEnv = process.env): GitAuth | undefined {
  const token = env['KILN_GIT_TOKEN'];
  if (!token) return undefined;
  const scheme = env['KILN_GIT_AUTH_SCHEME'];
  return { token, scheme: scheme === 'Bearer' ? 'Bearer' : 'Basic', username: env['KILN_GIT_USERNAME'] || undefined };
}

/** Moves `user:password@` out of an https URL. */
export function splitCredentials(url: string): { url: string; auth?: GitAuth } {
  if (!/^https?:\/\//i.test(url)) return { url };
  const u = new URL(url);
  if (!u.username && !u.password) return { url };
  const username = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  u.username = '';
  u.password = '';
  const auth: GitAuth = password ? { scheme: 'Basic', username: username || undefined, token: password } : { scheme: 'Basic', token: username };
  return { url: u.toString(), auth };
}

/**
 * Why a repository URL is refused, if it is: credentials in it (they would be
 * visible in the process list and in shell history), or plain http:// without
 * the operator saying so (the token and the manifests would travel in clear).
 */
export function repositoryUrlProblem(url: string, allowInsecureHttp = false): string | undefined {
  if (/^https?:\/\//i.test(url)) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return 'the repository URL is not a valid URL';
    }
    if (u.username || u.password) {
      return 'the repository URL must not hold credentials (they show in the process list): put the token in a file and pass --git-token-file, or set $KILN_GIT_TOKEN';
    }
    if (u.protocol === 'http:' && !allowInsecureHttp) {
      return `plain http:// sends the token and the manifests unencrypted: use https://, or pass --allow-insecure-http (got ${u.origin})`;
    }
  }
  return undefined;
}

/** The URL without credentials: what may be shown, logged and written to hydrator.metadata. */
export function displayUrl(url: string): string {
  return splitCredentials(url).url;
}

function authorizationHeader(auth: GitAuth): string {
  if (auth.scheme === 'Bearer') return `Authorization: Bearer ${auth.token}`;
  return `Authorization: Basic ${Buffer.from(`${auth.username ?? 'x-access-token'}:${auth.token}`).toString('base64')}`;
}

/** Variables simple-git guards besides GIT_* (its environment check). */
const GUARDED = new Set(['editor', 'pager', 'prefix', 'ssh_askpass', 'visual']);

function isGuarded(name: string): boolean {
  const l = name.toLowerCase().trim();
  return l.startsWith('git') || GUARDED.has(l);
}

const BRANCH = /^(?!-)(?!.*\.\.)(?!.*\/\/)(?!.*\.lock$)[A-Za-z0-9._/-]+(?<![/.])$/;

function checkIdentity(who: GitIdentity, role: string): void {
  if (!who.name || !who.email || /[<>\n\r\0]/.test(who.name + who.email)) throw new Error(`invalid ${role} identity ${JSON.stringify(who)}`);
}

const ident = (who: GitIdentity): string => `${who.name} <${who.email}>`;

const describeMode = (mode: string): string => (mode === '120000' ? 'a symbolic link' : mode === '160000' ? 'a submodule' : 'not a plain file or directory');

interface PendingCommit {
  message: string;
  author: GitIdentity;
}

export class GitRepoWriter {
  readonly url: string;
  readonly branch: string;
  readonly baseBranch: string | undefined;
  readonly workDir: string;
  readonly basePath: string;
  /** Committer of every commit, and the author when none is given. */
  readonly committer: GitIdentity;
  private readonly maxPushAttempts: number;
  private readonly retry: { base: number; max: number };
  private readonly log: Log;
  private readonly secrets: string[] = [];
  private local!: SimpleGit;
  private remoteClient!: SimpleGit;
  private authHeader: string | undefined;
  private readonly authSource: () => GitAuth | undefined;
  private readonly passEnvironment: string[];
  private readonly timeoutMs: number;
  private readonly lowSpeedSeconds: number;
  /** Entries of HEAD at or above the base path that are not plain files or directories (links, submodules): never read. */
  private irregular = new Map<string, string>();
  /** Commits made since the last successful push or sync. */
  private pending: PendingCommit[] = [];
  /** The last tree written, written again when a rebase conflicts inside the base path. */
  private lastTree: { files: Map<string, string>; prefix: string } | undefined;
  private remoteExists = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(options: GitRepoWriterOptions) {
    const url = options.url;
    const problem = repositoryUrlProblem(url, options.allowInsecureHttp);
    if (problem) throw new Error(problem);
    // eslint-disable-next-line no-control-regex -- matching control characters is the point: they are refused.
    if (url.startsWith('-') || /[\0-\x1f\x7f]/.test(url)) throw new Error('repository URL must not start with "-" or hold control characters');
    if (!BRANCH.test(options.branch)) throw new Error(`invalid branch name ${JSON.stringify(options.branch)}`);
    if (options.baseBranch !== undefined && !BRANCH.test(options.baseBranch)) throw new Error(`invalid base branch name ${JSON.stringify(options.baseBranch)}`);
    this.url = url;
    this.branch = options.branch;
    this.baseBranch = options.baseBranch;
    this.workDir = options.workDir;
    this.basePath = normalizeBasePath(options.basePath);
    this.committer = options.committer ?? DEFAULT_COMMITTER;
    checkIdentity(this.committer, 'committer');
    this.maxPushAttempts = Math.max(1, options.maxPushAttempts ?? 10);
    this.retry = options.retryDelayMs ?? { base: 100, max: 2000 };
    this.log = options.log ?? (() => undefined);
    this.timeoutMs = options.commandTimeoutMs ?? 120_000;
    this.lowSpeedSeconds = Math.max(1, Math.round(options.lowSpeedSeconds ?? 60));
    this.passEnvironment = (options.passEnvironment ?? ['GIT_SSL_CAINFO', 'GIT_SSL_CAPATH']).filter((n) => process.env[n] !== undefined);
    const given = options.auth;
    this.authSource = typeof given === 'function' ? given : () => given;
    this.authHeader = this.currentAuthHeader();
  }

  /** The Authorization header for the token the source gives now; every token seen is scrubbed from messages from then on. */
  private currentAuthHeader(): string | undefined {
    const auth = this.authSource();
    if (!auth) return undefined;
    if (!/^https?:\/\//i.test(this.url)) throw new Error('a token can only be used with an http(s) repository URL');
    if (/[\r\n]/.test(auth.token) || auth.token === '') throw new Error('invalid token');
    const header = authorizationHeader(auth);
    if (header !== this.authHeader) {
      const basic = header.replace(/^Authorization: \S+ /, '');
      this.secrets.push(auth.token, basic, encodeURIComponent(auth.token));
    }
    return header;
  }

  /** The client for fetch and push, rebuilt when the token changed (a rotated token file). */
  private get remote(): SimpleGit {
    const header = this.currentAuthHeader();
    if (header !== this.authHeader || !this.remoteClient) {
      this.authHeader = header;
      this.makeRemote();
    }
    return this.remoteClient;
  }

  /** Creates the writer and its clone, and syncs it. */
  static async open(options: GitRepoWriterOptions): Promise<GitRepoWriter> {
    const writer = new GitRepoWriter(options);
    await writer.sync();
    return writer;
  }

  /** Replaces every credential in a text (for errors and logs). */
  scrub(text: string): string {
    return redact(text, this.secrets);
  }

  private fail(err: unknown, what: string, reason: GitFailure = 'failed'): GitWriterError {
    if (err instanceof GitWriterError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    // A refused token makes git fall back to asking for a user name, which it
    // may not do here: say what actually happened.
    const hint = /could not read Username|Authentication failed|HTTP 401|HTTP 403|The requested URL returned error: 40[13]/i.test(msg)
      ? ' (authentication failed: check the token, --git-token-file or $KILN_GIT_TOKEN)'
      : '';
    return new GitWriterError(`${what}: ${this.scrub(msg).trim()}${hint}`, reason);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private environment(extra: Record<string, string>): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && (!isGuarded(k) || this.passEnvironment.includes(k))) env[k] = v;
    }
    // Stable English messages (push rejections are recognised by them); never prompt.
    return { ...env, LC_ALL: 'C', LANGUAGE: 'C', GIT_TERMINAL_PROMPT: '0', ...extra };
  }

  private makeClients(): void {
    const base = {
      baseDir: this.workDir,
      maxConcurrentProcesses: 1,
      timeout: { block: this.timeoutMs },
    };
    const allow = ['GIT_TERMINAL_PROMPT', ...this.passEnvironment];
    this.local = simpleGit({ ...base, allowEnvironment: allow }).env(this.environment({}));
    this.makeRemote();
  }

  private makeRemote(): void {
    if (!this.local) return;
    const base = { baseDir: this.workDir, maxConcurrentProcesses: 1, timeout: { block: this.timeoutMs } };
    const allow = ['GIT_TERMINAL_PROMPT', ...this.passEnvironment];
    if (this.authHeader) {
      // The header is scoped to the repository's URL, so it is never sent elsewhere (redirects, submodules).
      const header = { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: `http.${this.url}.extraHeader`, GIT_CONFIG_VALUE_0: this.authHeader };
      this.remoteClient = simpleGit({
        ...base,
        allowEnvironment: [...allow, 'GIT_CONFIG_COUNT', 'GIT_CONFIG_KEY_0', 'GIT_CONFIG_VALUE_0'],
        unsafe: { allowUnsafeConfigEnvCount: true },
      }).env(this.environment(header));
    } else {
      this.remoteClient = this.local;
    }
  }

  private async git(args: string[], what = `git ${args[0]}`): Promise<string> {
    try {
      return await this.local.raw(args);
    } catch (err) {
      throw this.fail(err, what);
    }
  }

  private async ensureClone(): Promise<void> {
    const hasGit = existsSync(join(this.workDir, '.git'));
    if (!hasGit) {
      mkdirSync(this.workDir, { recursive: true });
      if (readdirSync(this.workDir).length > 0) throw new GitWriterError(`work directory ${this.workDir} is not empty and not a Git clone`, 'failed');
    }
    if (!this.local) this.makeClients();
    const settings: [string, string][] = [
      ['user.name', this.committer.name],
      ['user.email', this.committer.email],
      ['core.autocrlf', 'false'],
      ['core.safecrlf', 'false'],
      ['commit.gpgSign', 'false'],
      ['rebase.autoStash', 'false'],
      ['rebase.autoSquash', 'false'],
      ['gc.autoDetach', 'false'],
      // A link committed to the repository is checked out as a plain file holding its target's
      // name, so nothing in the clone points outside it (kiln also refuses links it finds: sync()).
      ['core.symlinks', 'false'],
      // A transfer that stalls (an answer trickling in) fails instead of holding the batch forever.
      ['http.lowSpeedLimit', '1024'],
      ['http.lowSpeedTime', String(this.lowSpeedSeconds)],
    ];
    if (!hasGit) {
      await this.git(['init', `--initial-branch=${this.branch}`]);
      // One file write instead of a `git config` process per setting.
      const q = (v: string): string => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
      const sections = new Map<string, string[]>();
      for (const [k, v] of settings) {
        const [section, name] = k.split('.') as [string, string];
        sections.set(section, [...(sections.get(section) ?? []), `\t${name} = ${q(v)}`]);
      }
      const text = [...sections].map(([section, lines]) => `[${section}]\n${lines.join('\n')}\n`).join('');
      appendFileSync(join(this.workDir, '.git', 'config'), `[remote "origin"]\n\turl = ${q(this.url)}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n${text}`);
    }
    // `config --list` always prints (core.* at least): read what is set, write only what differs.
    const current = new Map(
      (await this.git(['config', '--local', '--list']))
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf('=')).toLowerCase(), l.slice(l.indexOf('=') + 1)] as const),
    );
    if (!current.has('remote.origin.url')) await this.git(['remote', 'add', 'origin', this.url]);
    else if (current.get('remote.origin.url') !== this.url) await this.git(['remote', 'set-url', 'origin', this.url]);
    for (const [k, v] of settings) if (current.get(k.toLowerCase()) !== v) await this.git(['config', '--local', k, v]);
  }

  /** Fetches one branch into refs/remotes/origin/<branch>; false when the remote has no such branch. */
  private async fetch(branch: string): Promise<boolean> {
    try {
      await this.remote.raw(['fetch', '--verbose', '--no-tags', 'origin', `+refs/heads/${branch}:refs/remotes/origin/${branch}`]);
      return true;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (/couldn't find remote ref/i.test(msg)) {
        await this.local.raw(['update-ref', '-d', `refs/remotes/origin/${branch}`]).catch(() => undefined);
        return false;
      }
      throw this.fail(err, `fetch ${branch} from ${this.url}`);
    }
  }

  /**
   * The clone is kiln's alone: whatever an interrupted run left behind (a
   * rebase in progress, a lock of a killed git process) is abandoned.
   */
  private async recover(): Promise<void> {
    const dotGit = join(this.workDir, '.git');
    if (existsSync(join(dotGit, 'rebase-merge')) || existsSync(join(dotGit, 'rebase-apply'))) {
      this.log('warn', 'abandoning a rebase left in progress in the clone', { workDir: this.workDir });
      await this.local.raw(['rebase', '--abort']).catch(() => undefined);
      rmSync(join(dotGit, 'rebase-merge'), { recursive: true, force: true });
      rmSync(join(dotGit, 'rebase-apply'), { recursive: true, force: true });
    }
    rmSync(join(dotGit, 'index.lock'), { force: true });
  }

  /** Branch, index and working tree at `ref` (untracked files stay: writeTree replaces the owned path anyway). */
  private async resetTo(ref: string): Promise<void> {
    await this.git(['checkout', '--force', '--no-track', '-B', this.branch, ref]);
  }

  /** Fetch and hard reset to origin/<branch> (or the start of a new branch). Drops unpushed commits. Returns HEAD, if any. */
  sync(): Promise<string | undefined> {
    return this.exclusive(async () => {
      await this.ensureClone();
      await this.recover();
      if (await this.fetch(this.branch)) {
        await this.resetTo(`refs/remotes/origin/${this.branch}`);
        await this.git(['clean', '--force', '-d']);
        this.remoteExists = true;
      } else {
        this.remoteExists = false;
        if (this.baseBranch && (await this.fetch(this.baseBranch))) {
          await this.resetTo(`refs/remotes/origin/${this.baseBranch}`);
          await this.git(['clean', '--force', '-d']);
        } else {
          // An empty repository (or a new branch with nothing to start from): an unborn branch, empty tree.
          await this.git(['symbolic-ref', 'HEAD', `refs/heads/${this.branch}`]);
          await this.local.raw(['update-ref', '-d', `refs/heads/${this.branch}`]).catch(() => undefined);
          await this.git(['read-tree', '--empty']);
          await this.git(['clean', '--force', '-d']);
        }
      }
      this.pending = [];
      const head = await this.headNow();
      await this.scanIrregular(head);
      this.log('info', 'git clone synced', { repo: this.url, branch: this.branch, head: head ?? null, remoteBranch: this.remoteExists });
      return head;
    });
  }

  /**
   * Entries of the commit at or under the base path, and above it, that are
   * not plain files or directories: git mode 120000 (a symbolic link), 160000
   * (a submodule). Above the base path kiln refuses to work at all (its files
   * would go where the link points); at or under it, such an entry is never
   * read and is replaced by kiln's tree (kiln owns that path).
   */
  private async scanIrregular(head: string | undefined): Promise<void> {
    this.irregular = new Map();
    if (!head) return;
    const parts = this.basePath.split('/');
    const above = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    const entries = (await this.git(['ls-tree', '-z', head, '--', ...above])) + (await this.git(['ls-tree', '-r', '-z', head, '--', `${this.basePath}/`]));
    for (const entry of entries.split('\0')) {
      const m = /^(\d+) \S+ \S+\t(.*)$/s.exec(entry);
      if (!m || m[1] === '100644' || m[1] === '100755' || m[1] === '040000') continue;
      const [, mode, path] = m as unknown as [string, string, string];
      if (path !== this.basePath && !this.inBasePath(path)) {
        throw new GitWriterError(
          `${path} in ${this.branch} is ${describeMode(mode)} (git mode ${mode}) above kiln's base path ${this.basePath}: kiln never writes through links; make it a plain directory`,
          'failed',
        );
      }
      this.irregular.set(path, mode);
    }
    if (this.irregular.size > 0) {
      this.log('warn', 'the repository holds links or submodules under the base path: kiln does not read them and replaces them with its own files', {
        paths: [...this.irregular.keys()].slice(0, 20),
      });
    }
  }

  /** Paths at or under the base path that HEAD holds as a link or submodule (path -> git mode), as of the last sync. */
  irregularEntries(): ReadonlyMap<string, string> {
    return this.irregular;
  }

  private async headNow(): Promise<string | undefined> {
    try {
      return (await this.local.raw(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'])).trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /** The local HEAD commit, if the branch has one. */
  head(): Promise<string | undefined> {
    return this.exclusive(() => this.headNow());
  }

  /**
   * Whether commit `a` is `b` or one of its ancestors; undefined when the
   * clone does not hold both. `fetchBranch`: when `b` is missing, fetch that
   * branch once and ask again (someone else pushed after kiln).
   */
  async isAncestor(a: string, b: string, fetchBranch?: string): Promise<boolean | undefined> {
    const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
    if (!COMMIT.test(a) || !COMMIT.test(b)) return undefined;
    if (a === b) return true;
    const has = (sha: string) =>
      this.local.raw(['cat-file', '-e', `${sha}^{commit}`]).then(
        () => true,
        () => false,
      );
    if (!(await has(b)) && fetchBranch) await this.exclusive(() => this.fetch(fetchBranch)).catch(() => false);
    if (!(await has(a)) || !(await has(b))) return undefined;
    try {
      return (await this.local.raw(['merge-base', a, b])).trim() === a;
    } catch {
      return false; // no common history
    }
  }

  /** Commits made locally and not pushed yet. */
  hasUnpushed(): boolean {
    return this.pending.length > 0;
  }

  /** A regular file of the working tree (repository-relative), if present; never a link's target, nor what a link was checked out as. */
  readFile(path: string): string | undefined {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) if (this.irregular.has(parts.slice(0, i).join('/'))) return undefined;
    return readRegularFile(this.workDir, path);
  }

  /** Files of the working tree under a prefix (repository-relative, sorted). */
  listFiles(prefix: string = this.basePath): string[] {
    return listTree(this.workDir, prefix);
  }

  private checkPrefix(prefix: string): string {
    const p = normalizeBasePath(prefix);
    if (p !== this.basePath && !p.startsWith(`${this.basePath}/`)) throw new Error(`kiln only writes under ${this.basePath}/ (asked for ${p})`);
    return p;
  }

  /** Whether `git status` shows a change (staged, unstaged or untracked) under the prefix. */
  private async changedUnder(prefix: string): Promise<boolean> {
    // --branch: the first entry is always the `## branch` line, so git always prints something.
    // --ignored: a .gitignore covering kiln's paths must not hide kiln's files (they are added with --force).
    const status = await this.git(['status', '--porcelain=v1', '--branch', '-z', '--untracked-files=all', '--ignored=matching', '--', prefix]);
    return status.split('\0').some((e) => e.length > 0 && !e.startsWith('## '));
  }

  private async writeTreeNow(files: ReadonlyMap<string, string>, prefix: string): Promise<TreeChange & { changed: boolean }> {
    const change = writeOwnedTree(this.workDir, files, prefix);
    this.lastTree = { files: new Map(files), prefix };
    const changed = await this.changedUnder(prefix);
    if (!changed) await this.verifyHead();
    return { ...change, changed };
  }

  /**
   * Checks that the commit at HEAD holds exactly kiln's last tree under its
   * prefix, byte for byte (blob ids computed here): what is reported as
   * committed is really in the commit, whatever a .gitignore, a
   * .gitattributes filter or a hook would have done.
   */
  private async verifyHead(): Promise<void> {
    if (!this.lastTree) return;
    const head = await this.headNow();
    const { files, prefix } = this.lastTree;
    if (!head) {
      if (files.size === 0) return;
      throw new GitWriterError(`the branch ${this.branch} has no commit holding kiln's files under ${prefix}/`, 'failed');
    }
    const committed = new Map<string, string>();
    for (const entry of (await this.git(['ls-tree', '-r', '-z', head, '--', `${prefix}/`])).split('\0')) {
      const m = /^(\d+) \S+ (\S+)\t(.*)$/s.exec(entry);
      if (m) committed.set(m[3]!, `${m[1]} ${m[2]}`);
    }
    const hashLength = committed.values().next().value?.split(' ')[1]?.length ?? 40;
    const algorithm = hashLength === 64 ? 'sha256' : 'sha1';
    const wrong: string[] = [];
    for (const [path, content] of files) {
      const bytes = Buffer.from(content);
      const blob = createHash(algorithm).update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
      if (committed.get(path) !== `100644 ${blob}`) wrong.push(committed.has(path) ? `${path} (different content)` : `${path} (missing)`);
    }
    for (const path of committed.keys()) if (!files.has(path)) wrong.push(`${path} (not kiln's)`);
    if (wrong.length > 0) {
      throw new GitWriterError(
        `commit ${head.slice(0, 12)} does not hold kiln's tree under ${prefix}/: ${wrong.slice(0, 5).join(', ')}${wrong.length > 5 ? `, and ${wrong.length - 5} more` : ''} (a .gitignore, .gitattributes filter or hook?)`,
        'failed',
      );
    }
  }

  /**
   * Makes the owned prefix (the base path, or a directory under it) hold
   * exactly `files` (repository-relative paths). `changed`: `git status`
   * shows a difference from HEAD under the prefix.
   */
  writeTree(files: ReadonlyMap<string, string>, ownedPrefix: string = this.basePath): Promise<TreeChange & { changed: boolean }> {
    return this.exclusive(() => this.writeTreeNow(files, this.checkPrefix(ownedPrefix)));
  }

  private async commitNow(message: string, author: GitIdentity): Promise<string | undefined> {
    checkIdentity(author, 'author');
    if (!(await this.changedUnder(this.basePath))) return undefined;
    // Stages additions, changes and deletions under the base path only (--verbose: one line per path);
    // --force: a .gitignore does not get to drop a file kiln owns.
    // A link checked out as a plain file (core.symlinks=false) keeps its mode in the index unless it leaves the index first.
    const links = [...this.irregular.keys()];
    if (links.length > 0) await this.git(['rm', '-r', '--cached', '--ignore-unmatch', '--', ...links]);
    await this.git(['add', '--all', '--force', '--verbose', '--', this.basePath]);
    const file = join(this.workDir, '.git', 'KILN_COMMIT_MSG');
    writeFileSync(file, message.endsWith('\n') ? message : `${message}\n`);
    await this.git(['commit', '--no-verify', '--cleanup=whitespace', `--author=${ident(author)}`, '-F', file]);
    this.pending.push({ message, author });
    await this.verifyHead();
    this.irregular = new Map();
    return this.headNow();
  }

  /** Commits the staged change under the base path; undefined (and no commit) when there is none. */
  commit(message: string, author: GitIdentity = this.committer): Promise<string | undefined> {
    return this.exclusive(() => this.commitNow(message, author));
  }

  private async conflictedPaths(): Promise<string[]> {
    const out = await this.local.raw(['diff', '--name-only', '--diff-filter=U', '-z']).catch(() => '');
    return out.split('\0').filter((p) => p.length > 0);
  }

  private inBasePath(path: string): boolean {
    return path === this.basePath || path.startsWith(`${this.basePath}/`);
  }

  /** After a rejected push and a fetch: put the local commits on top of the remote. */
  private async integrate(): Promise<'rebased' | 'rewritten'> {
    const upstream = `refs/remotes/origin/${this.branch}`;
    try {
      await this.local.raw(['rebase', '--no-verify', '--no-autostash', upstream]);
    } catch (err) {
      const conflicted = await this.conflictedPaths();
      await this.local.raw(['rebase', '--abort']).catch(() => undefined);
      if (conflicted.length === 0) throw this.fail(err, `rebase onto origin/${this.branch}`);
      const outside = conflicted.filter((p) => !this.inBasePath(p));
      if (outside.length > 0) {
        throw new GitWriterError(`rebase onto origin/${this.branch} conflicts outside ${this.basePath}/ (${outside.join(', ')}): kiln does not resolve other writers' files`, 'conflict');
      }
      if (!this.lastTree) throw new GitWriterError(`rebase onto origin/${this.branch} conflicts in ${conflicted.join(', ')} and there is no tree to write again`, 'conflict');
      this.log('warn', 'rebase conflicts inside the base path: writing the rendered tree again on top of the remote', { branch: this.branch, files: conflicted.slice(0, 10) });
      const pending = this.pending;
      await this.resetTo(upstream);
      this.pending = [];
      const { files, prefix } = this.lastTree;
      await this.writeTreeNow(files, prefix);
      if (pending.length > 0) {
        const message =
          pending.length === 1 ? pending[0]!.message : `kiln: ${pending.length} batches written again on top of origin/${this.branch}\n\n${pending.map((p) => p.message.trim()).join('\n\n')}`;
        await this.commitNow(message, pending[pending.length - 1]!.author);
      }
      return 'rewritten';
    }
    // A clean rebase can still carry another writer's change to a file kiln owns: put kiln's tree back.
    if (this.lastTree) {
      const { files, prefix } = this.lastTree;
      const { changed } = await this.writeTreeNow(files, prefix);
      if (changed) await this.commitNow(`kiln: restore the rendered tree under ${prefix}/ after a rebase`, this.pending.at(-1)?.author ?? this.committer);
    }
    return 'rebased';
  }

  private isLostRace(msg: string): boolean {
    return /\[rejected\]|non-fast-forward|fetch first|cannot lock ref|incorrect old value|stale info|failed to update ref/i.test(msg);
  }

  private jitter(attempt: number): number {
    return Math.floor(Math.random() * Math.min(this.retry.max, this.retry.base * 2 ** (attempt - 1)));
  }

  /**
   * Pushes HEAD to origin/<branch>. On rejection: fetch, rebase (or re-write
   * kiln's tree on a conflict inside the base path), retry after a jittered
   * delay; at most `maxPushAttempts` pushes.
   */
  push(): Promise<PushResult> {
    return this.exclusive(async () => {
      let rebased = 0;
      let rewritten = 0;
      for (let attempt = 1; ; attempt++) {
        const head = await this.headNow();
        if (!head) throw new GitWriterError(`nothing to push: branch ${this.branch} has no commit`, 'failed');
        if (this.pending.length === 0 && this.remoteExists) {
          const remoteHead = (await this.local.raw(['rev-parse', '--verify', '--quiet', `refs/remotes/origin/${this.branch}`]).catch(() => '')).trim();
          if (remoteHead === head) return { sha: head, attempts: attempt - 1, rebased, rewritten };
        }
        try {
          // Pushing to `origin` also moves refs/remotes/origin/<branch> (the remote's fetch refspec maps it).
          await this.remote.raw(['push', '--porcelain', '--no-verify', 'origin', `HEAD:refs/heads/${this.branch}`]);
          this.pending = [];
          this.remoteExists = true;
          return { sha: head, attempts: attempt, rebased, rewritten };
        } catch (err) {
          const msg = this.scrub(err instanceof Error ? err.message : String(err));
          if (!this.isLostRace(msg)) throw new GitWriterError(`push to ${this.branch} failed: ${msg.trim()}`, 'failed');
          if (attempt >= this.maxPushAttempts) {
            throw new GitWriterError(`push to ${this.branch} still rejected after ${attempt} attempts (other writers keep pushing)`, 'rejected');
          }
          this.log('info', 'push rejected: fetching and rebasing', { branch: this.branch, attempt });
        }
        await sleep(this.jitter(attempt));
        if (await this.fetch(this.branch)) {
          this.remoteExists = true;
          if ((await this.integrate()) === 'rebased') rebased++;
          else rewritten++;
        }
      }
    });
  }

  /** The last tree written (for callers that need to compare). */
  lastWritten(): ReadonlyMap<string, string> | undefined {
    return this.lastTree?.files;
  }
}
