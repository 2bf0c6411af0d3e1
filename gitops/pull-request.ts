/**
 * Review mode's pull requests: after kiln pushes its review branch, a
 * provider opens the pull request into the target branch, or finds the one
 * already open and brings its title and body up to date.
 *
 * GitHubPullRequests speaks the GitHub REST API (v3), which Gitea (and
 * Forgejo) implement with the same paths and bodies under `/api/v1`:
 *
 * - `GET  /repos/{owner}/{repo}/pulls?state=open&head={owner}:{head}&base={base}`
 *   Gitea ignores `head`, and GitHub's filter is only a filter: the answer is
 *   always checked client-side (head.ref, base.ref, the head repository), and
 *   followed through `Link: rel="next"` pages.
 * - `POST /repos/{owner}/{repo}/pulls` {title, head, base, body}. A 422 saying
 *   one already exists (another replica won the race) is answered by listing
 *   again.
 * - `PATCH /repos/{owner}/{repo}/pulls/{number}` with the fields that differ,
 *   only when the title or the body changed.
 *
 * The token goes in `Authorization: <scheme> <token>` (`token` by default;
 * GitHub and Gitea take `Bearer` too) and nowhere else: errors carry the
 * HTTP status, the method and path, and the server's message, with the token
 * scrubbed should a server echo it. Requests go to the API base URL only: a
 * `Link` to another origin is not followed, and without an explicit API URL
 * only a github.com repository is accepted (a token for a Gitea host must not
 * be sent to api.github.com).
 */
import type { Log } from '../lib/log.js';
import { redact } from '../kube/redact.js';

export interface PullRequestOptions {
  /** The branch with kiln's commits (the review branch). */
  head: string;
  /** The branch it is merged into (the target branch). */
  base: string;
  title: string;
  body: string;
}

export interface PullRequestResult {
  /** Web URL of the pull request (html_url). */
  url: string;
  number: number;
  /** True when this call opened it; false when one was already open. */
  created: boolean;
}

export interface PullRequestProvider {
  ensurePullRequest(opts: PullRequestOptions): Promise<PullRequestResult>;
}

export interface GitHubPullRequestsOptions {
  /** The token, or where to get the current one before each call (a rotated token file). */
  token: string | (() => string);
  /** Accept a plain http:// API URL (the token travels unencrypted): loopback test servers. */
  allowInsecureHttp?: boolean;
  /** `token` (default) or `Bearer`. */
  scheme?: 'token' | 'Bearer';
  /** API base URL: https://api.github.com (default), https://<ghe-host>/api/v3, https://<gitea-host>/api/v1. */
  apiUrl?: string;
  /** Owner and repository name; parsed from `repositoryUrl` when not given. */
  owner?: string;
  repo?: string;
  /** The Git remote URL (https, ssh or scp-like); gives owner/repo when they are not set. */
  repositoryUrl?: string;
  /** Per request (default 30 s). */
  timeoutMs?: number;
  userAgent?: string;
  /** Pages of open pull requests read at most while looking for kiln's (default 10). */
  maxPages?: number;
  log?: Log;
  /** Replaces global fetch (tests). */
  fetch?: typeof fetch;
}

/** A failed API call. `status` is the HTTP status (undefined when no response came back); the message never holds the token. */
export class PullRequestError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly method: string,
    readonly path: string,
  ) {
    super(message);
    this.name = 'PullRequestError';
  }
}

/** GitHub caps a pull request body at 65,536 characters. */
export const MAX_BODY_CHARS = 65_536;
const TRUNCATED = '\n\n… (truncated)';

const DEFAULT_API = 'https://api.github.com';

/** owner/repo of a Git remote URL: https://host[/prefix]/owner/repo(.git), ssh://git@host/owner/repo.git, git@host:owner/repo.git. */
export function parseRepositoryUrl(url: string): { host: string; owner: string; repo: string } {
  let host: string;
  let path: string;
  const scp = /^(?:[^@/\s]+@)?([^:/\s]+):(?!\/)(.+)$/.exec(url);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    const u = new URL(url);
    host = u.hostname.toLowerCase();
    path = decodeURIComponent(u.pathname);
  } else if (scp) {
    host = scp[1]!.toLowerCase();
    path = scp[2]!;
  } else {
    throw new Error(`cannot tell owner and repository from ${JSON.stringify(redact(url))}`);
  }
  const parts = path
    .replace(/\/+$/, '')
    .replace(/\.git$/, '')
    .split('/')
    .filter(Boolean);
  if (parts.length < 2) throw new Error(`cannot tell owner and repository from the path ${JSON.stringify(path)}`);
  return { host, owner: parts[parts.length - 2]!, repo: parts[parts.length - 1]! };
}

/** A pull request as GitHub and Gitea return it (the fields kiln reads). */
export interface GitHubPullRequest {
  number: number;
  html_url: string;
  title: string;
  body: string | null;
  state: string;
  head: { ref: string; label?: string; repo?: { full_name?: string } | null };
  base: { ref: string };
}

const SEGMENT = /^[A-Za-z0-9_.-]+$/;

function normalizeText(text: string | null | undefined): string {
  return (text ?? '').replace(/\r\n/g, '\n').trimEnd();
}

export class GitHubPullRequests implements PullRequestProvider {
  readonly apiUrl: string;
  readonly owner: string;
  readonly repo: string;
  private readonly scheme: 'token' | 'Bearer';
  private readonly tokenSource: () => string;
  /** Every token used so far, scrubbed from messages. */
  private readonly tokens = new Set<string>();
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly maxPages: number;
  private readonly log: Log;
  private readonly fetch: typeof fetch;

  constructor(options: GitHubPullRequestsOptions) {
    const given = options.token;
    this.tokenSource = typeof given === 'function' ? given : () => given;
    const scheme = options.scheme ?? 'token';
    if (scheme !== 'token' && scheme !== 'Bearer') throw new Error(`unknown authorization scheme ${JSON.stringify(scheme)} (token or Bearer)`);
    this.scheme = scheme;
    this.currentToken();

    let owner = options.owner;
    let repo = options.repo;
    let host: string | undefined;
    if (options.repositoryUrl) {
      const parsed = parseRepositoryUrl(options.repositoryUrl);
      host = parsed.host;
      owner ??= parsed.owner;
      repo ??= parsed.repo;
    }
    if (!owner || !repo) throw new Error('owner and repo are needed (or a repositoryUrl to take them from)');
    if (!SEGMENT.test(owner) || !SEGMENT.test(repo) || owner === '..' || repo === '..' || owner === '.' || repo === '.') {
      throw new Error(`invalid owner/repo ${JSON.stringify(`${owner}/${repo}`)}`);
    }
    this.owner = owner;
    this.repo = repo;

    if (options.apiUrl === undefined && host !== undefined && host !== 'github.com' && host !== 'www.github.com') {
      throw new Error(`the repository is on ${host}, not github.com: give the API URL (Gitea: https://${host}/api/v1, GitHub Enterprise: https://${host}/api/v3)`);
    }
    const api = new URL(options.apiUrl ?? DEFAULT_API);
    if (api.protocol !== 'https:' && api.protocol !== 'http:') throw new Error(`the API URL must be http(s) (got ${api.protocol})`);
    if (api.protocol === 'http:' && !options.allowInsecureHttp) {
      throw new Error(`plain http:// sends the token unencrypted: use an https:// API URL, or pass --allow-insecure-http (got ${api.origin})`);
    }
    if (api.username || api.password) throw new Error('the API URL must not hold credentials: pass the token');
    this.apiUrl = `${api.origin}${api.pathname.replace(/\/+$/, '')}`;

    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'kiln';
    this.maxPages = Math.max(1, options.maxPages ?? 10);
    this.log = options.log ?? (() => undefined);
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  private currentToken(): string {
    const token = this.tokenSource();
    if (!token || /[\r\n]/.test(token)) throw new Error('a pull request provider needs a token (one line)');
    this.tokens.add(token);
    return token;
  }

  private scrub(text: string): string {
    return redact(text, this.tokens);
  }

  private get repoPath(): string {
    return `/repos/${encodeURIComponent(this.owner)}/${encodeURIComponent(this.repo)}`;
  }

  /** One API call; returns the parsed JSON body and the Link header. `pathOrUrl`: a path under the API base, or an absolute URL on its origin. */
  private async call<T>(method: string, pathOrUrl: string, body?: unknown): Promise<{ data: T; status: number; next: string | undefined }> {
    const url = pathOrUrl.startsWith('/') ? `${this.apiUrl}${pathOrUrl}` : pathOrUrl;
    // Errors name the path under the API base, without the query.
    const apiPath = new URL(`${this.apiUrl}/`).pathname.replace(/\/$/, '');
    const { pathname } = new URL(url);
    const shown = apiPath && pathname.startsWith(`${apiPath}/`) ? pathname.slice(apiPath.length) : pathname;
    const headers: Record<string, string> = {
      accept: 'application/vnd.github+json',
      authorization: `${this.scheme} ${this.currentToken()}`,
      'user-agent': this.userAgent,
      'x-github-api-version': '2022-11-28',
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'follow',
      });
    } catch (err) {
      const e = err as Error & { cause?: unknown };
      const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
      const what = e.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : `${e.message}${cause}`;
      throw new PullRequestError(this.scrub(`${method} ${shown} failed: ${what}`), undefined, method, shown);
    }
    const text = await response.text().catch(() => '');
    if (!response.ok) {
      throw new PullRequestError(this.scrub(`${method} ${shown} failed: HTTP ${response.status}${describeError(text, response.statusText)}`), response.status, method, shown);
    }
    let data: T;
    try {
      data = (text ? JSON.parse(text) : undefined) as T;
    } catch {
      throw new PullRequestError(`${method} ${shown}: HTTP ${response.status} with a body that is not JSON`, response.status, method, shown);
    }
    return { data, status: response.status, next: this.nextLink(response.headers.get('link')) };
  }

  /** The `rel="next"` URL of a Link header, when it stays on the API's origin and under its path. */
  private nextLink(link: string | null): string | undefined {
    if (!link) return undefined;
    for (const part of link.split(',')) {
      const m = /<([^>]+)>\s*;\s*rel="?([^";]+)"?/.exec(part);
      if (!m || !m[2]!.split(/\s+/).includes('next')) continue;
      try {
        const next = new URL(m[1]!, `${this.apiUrl}/`);
        if (`${next.origin}${next.pathname}`.startsWith(`${this.apiUrl}/`)) return next.toString();
        this.log('warn', 'not following a pagination link off the API origin', { api: this.apiUrl });
      } catch {
        // an unparsable link ends the listing
      }
    }
    return undefined;
  }

  private isOurs(pr: GitHubPullRequest, head: string, base: string): boolean {
    if (pr.state !== undefined && pr.state !== 'open') return false;
    if (pr.head?.ref !== head || pr.base?.ref !== base) return false;
    // A pull request from a fork (or a deleted fork: repo null) with the same branch name is not kiln's.
    const repo = pr.head.repo;
    if (repo === null) return false;
    if (repo?.full_name && repo.full_name.toLowerCase() !== `${this.owner}/${this.repo}`.toLowerCase()) return false;
    return true;
  }

  /** The open pull request from `head` into `base`, if any. */
  async findPullRequest(head: string, base: string): Promise<GitHubPullRequest | undefined> {
    // per_page: GitHub's page size; limit: Gitea's.
    const query = new URLSearchParams({ state: 'open', head: `${this.owner}:${head}`, base, per_page: '100', limit: '50' });
    let next: string | undefined = `${this.repoPath}/pulls?${query.toString()}`;
    for (let page = 0; next && page < this.maxPages; page++) {
      const { data, next: following }: { data: GitHubPullRequest[]; next: string | undefined } = await this.call<GitHubPullRequest[]>('GET', next);
      if (!Array.isArray(data)) throw new PullRequestError(`GET ${this.repoPath}/pulls: expected a list`, 200, 'GET', `${this.repoPath}/pulls`);
      const found = data.find((pr) => this.isOurs(pr, head, base));
      if (found) return found;
      next = following;
    }
    return undefined;
  }

  async ensurePullRequest(opts: PullRequestOptions): Promise<PullRequestResult> {
    const { head, base } = opts;
    if (!head || !base || head === base) throw new Error(`a pull request needs two different branches (head ${JSON.stringify(head)}, base ${JSON.stringify(base)})`);
    const title = opts.title.trim() || `kiln: ${head} into ${base}`;
    const body = truncate(opts.body);

    let existing = await this.findPullRequest(head, base);
    if (!existing) {
      try {
        const { data } = await this.call<GitHubPullRequest>('POST', `${this.repoPath}/pulls`, { title, head, base, body });
        this.log('info', 'pull request opened', { number: data.number, url: data.html_url, head, base });
        return { url: data.html_url, number: data.number, created: true };
      } catch (err) {
        // Opened meanwhile by someone else (another replica): use that one.
        // GitHub: 422 "A pull request already exists for owner:branch."; Gitea: 409 "pull request already exists for these targets".
        if (!(err instanceof PullRequestError && (err.status === 422 || err.status === 409) && /already exists/i.test(err.message))) throw err;
        existing = await this.findPullRequest(head, base);
        if (!existing) throw err;
      }
    }
    const changes: { title?: string; body?: string } = {};
    if (existing.title !== title) changes.title = title;
    if (normalizeText(existing.body) !== normalizeText(body)) changes.body = body;
    if (Object.keys(changes).length > 0) {
      const { data } = await this.call<GitHubPullRequest>('PATCH', `${this.repoPath}/pulls/${existing.number}`, changes);
      this.log('info', 'pull request updated', { number: existing.number, url: data?.html_url ?? existing.html_url, fields: Object.keys(changes) });
      return { url: data?.html_url ?? existing.html_url, number: existing.number, created: false };
    }
    return { url: existing.html_url, number: existing.number, created: false };
  }
}

/** The body within GitHub's limit, cut at a character boundary. */
function truncate(body: string): string {
  if (body.length <= MAX_BODY_CHARS) return body;
  let cut = MAX_BODY_CHARS - TRUNCATED.length;
  const code = body.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut--;
  return body.slice(0, cut) + TRUNCATED;
}

/** `: message (detail; detail)` from a GitHub/Gitea error body, or the status text. */
function describeError(text: string, statusText: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown; errors?: unknown };
    const parts: string[] = [];
    if (typeof parsed.message === 'string' && parsed.message) parts.push(parsed.message);
    if (Array.isArray(parsed.errors)) {
      const details = parsed.errors
        .map((e: unknown) => (typeof e === 'string' ? e : e && typeof e === 'object' && 'message' in e && typeof e.message === 'string' ? e.message : undefined))
        .filter((e): e is string => !!e);
      if (details.length > 0) parts.push(`(${details.join('; ')})`);
    }
    if (parts.length > 0) return `: ${parts.join(' ').slice(0, 500)}`;
  } catch {
    // not JSON
  }
  const plain = text.trim().split('\n')[0]?.slice(0, 200);
  return plain ? `: ${plain}` : statusText ? ` ${statusText}` : '';
}
