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
 * Review mode (to come) is this writer with `branch` = the review branch
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
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { simpleGit, type SimpleGit } from 'simple-git';
import type { Log } from '../lib/log.js';
import { normalizeBasePath } from './layout.js';
import { listTree, writeOwnedTree, type TreeChange } from './tree.js';

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
  /** Remote URL: https://..., ssh, file:// or a local path. Credentials in an https URL are moved to `auth`. */
  url: string;
  /** The branch kiln syncs from and pushes to. */
  branch: string;
  /** When `branch` is missing on the remote, start it from this branch (review mode: the target branch). */
  baseBranch?: string;
  /** The local clone. Created if missing; an existing non-empty directory must already be a clone. */
  workDir: string;
  /** The directory kiln owns in the repository (relative). Nothing outside it is ever written. */
  basePath: string;
  auth?: GitAuth;
  /** Committer of every commit (default kiln <noreply@kiln.dev>); the author is given per commit. */
  committer?: GitIdentity;
  /** Push attempts in all, the first included (default 10). */
  maxPushAttempts?: number;
  /** Full-jitter backoff between attempts: random in [0, min(max, base * 2^(attempt-1))) ms. */
  retryDelayMs?: { base: number; max: number };
  /** Kill a git command that prints nothing for this long (default 120 s). */
  commandTimeoutMs?: number;
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
  constructor(message: string, readonly reason: GitFailure) {
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
  private remote!: SimpleGit;
  private readonly authHeader: string | undefined;
  private readonly passEnvironment: string[];
  private readonly timeoutMs: number;
  /** Commits made since the last successful push or sync. */
  private pending: PendingCommit[] = [];
  /** The last tree written, written again when a rebase conflicts inside the base path. */
  private lastTree: { files: Map<string, string>; prefix: string } | undefined;
  private remoteExists = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(options: GitRepoWriterOptions) {
    const { url, auth: fromUrl } = splitCredentials(options.url);
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
    this.passEnvironment = (options.passEnvironment ?? ['GIT_SSL_CAINFO', 'GIT_SSL_CAPATH']).filter((n) => process.env[n] !== undefined);
    const auth = options.auth ?? fromUrl;
    if (auth) {
      if (!/^https?:\/\//i.test(url)) throw new Error('a token can only be used with an http(s) repository URL');
      if (/[\r\n]/.test(auth.token) || auth.token === '') throw new Error('invalid token');
      this.authHeader = authorizationHeader(auth);
      const basic = this.authHeader.replace(/^Authorization: \S+ /, '');
      this.secrets.push(auth.token, basic, encodeURIComponent(auth.token));
    }
  }

  /** Creates the writer and its clone, and syncs it. */
  static async open(options: GitRepoWriterOptions): Promise<GitRepoWriter> {
    const writer = new GitRepoWriter(options);
    await writer.sync();
    return writer;
  }

  /** Replaces every credential in a text (for errors and logs). */
  scrub(text: string): string {
    let out = text;
    for (const s of this.secrets) if (s.length >= 4) out = out.split(s).join('***');
    return out.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1***@').replace(/(authorization:\s*\S+\s+)\S+/gi, '$1***');
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
    if (this.authHeader) {
      // The header is scoped to the repository's URL, so it is never sent elsewhere (redirects, submodules).
      const header = { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: `http.${this.url}.extraHeader`, GIT_CONFIG_VALUE_0: this.authHeader };
      this.remote = simpleGit({
        ...base,
        allowEnvironment: [...allow, 'GIT_CONFIG_COUNT', 'GIT_CONFIG_KEY_0', 'GIT_CONFIG_VALUE_0'],
        unsafe: { allowUnsafeConfigEnvCount: true },
      }).env(this.environment(header));
    } else {
      this.remote = this.local;
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
      (await this.git(['config', '--local', '--list'])).split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')).toLowerCase(), l.slice(l.indexOf('=') + 1)] as const),
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
      this.log('info', 'git clone synced', { repo: this.url, branch: this.branch, head: head ?? null, remoteBranch: this.remoteExists });
      return head;
    });
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

  /** Commits made locally and not pushed yet. */
  hasUnpushed(): boolean {
    return this.pending.length > 0;
  }

  /** A file of the working tree (repository-relative), if present. */
  readFile(path: string): string | undefined {
    try {
      return readFileSync(join(this.workDir, path), 'utf8');
    } catch {
      return undefined;
    }
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
    const status = await this.git(['status', '--porcelain=v1', '--branch', '-z', '--untracked-files=all', '--', prefix]);
    return status.split('\0').some((e) => e.length > 0 && !e.startsWith('## '));
  }

  private async writeTreeNow(files: ReadonlyMap<string, string>, prefix: string): Promise<TreeChange & { changed: boolean }> {
    const change = writeOwnedTree(this.workDir, files, prefix);
    this.lastTree = { files: new Map(files), prefix };
    return { ...change, changed: await this.changedUnder(prefix) };
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
    // Stages additions, changes and deletions under the base path only (--verbose: one line per path).
    await this.git(['add', '--all', '--verbose', '--', this.basePath]);
    const file = join(this.workDir, '.git', 'KILN_COMMIT_MSG');
    writeFileSync(file, message.endsWith('\n') ? message : `${message}\n`);
    await this.git(['commit', '--no-verify', '--cleanup=whitespace', `--author=${ident(author)}`, '-F', file]);
    this.pending.push({ message, author });
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
        const message = pending.length === 1 ? pending[0]!.message : `kiln: ${pending.length} batches written again on top of origin/${this.branch}\n\n${pending.map((p) => p.message.trim()).join('\n\n')}`;
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

