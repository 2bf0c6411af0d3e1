/**
 * Review mode's pull-request provider (gitops/pull-request.ts) against a
 * local HTTP server.
 *
 * THIS IS A CONTRACT TEST. Neither GitHub nor a Gitea instance is reachable
 * from where kiln's tests run, so the server below stands in for them: it
 * implements the three endpoints kiln calls the way GitHub documents them
 * (https://docs.github.com/rest/pulls/pulls: list with state/head/base
 * filters and Link pagination through /repositories/{id}/pulls, create -> 201,
 * 422 "A pull request already exists", update -> 200, 401 "Bad credentials")
 * and, in its Gitea flavour, the way Gitea differs (API under /api/v1, the
 * `head` and `base` filters ignored, `limit` paging). It proves kiln sends
 * what those documents ask for and reads what they answer; it cannot prove
 * that github.com or a given Gitea version still answers that way.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GitHubPullRequests, MAX_BODY_CHARS, parseRepositoryUrl, PullRequestError, type GitHubPullRequestsOptions } from '../../gitops/pull-request.js';
import { testToken } from '../harness/secrets.js';

const TOKEN = testToken('pr');
const OWNER = 'octo-org';
const REPO = 'deploy';
const REPO_ID = 1296269;

// ---------------------------------------------------------------- the stand-in for GitHub / Gitea

interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | undefined>;
  body: unknown;
}

interface Pull {
  number: number;
  title: string;
  body: string | null;
  state: 'open' | 'closed';
  head: { ref: string; owner: string | null };
  base: string;
}

interface FakeForgeOptions {
  flavor: 'github' | 'gitea';
  /** Open pull requests per page (GitHub default 30, Gitea 50; small here to exercise paging). */
  pageSize?: number;
  /** A 401 body that echoes the Authorization header, as a careless proxy might. */
  echoAuthorization?: boolean;
  /** List every open pull request whatever `head` and `base` say (Gitea always does). */
  ignoreFilters?: boolean;
  /** Origin of the Link header's URLs (default: this server). */
  linkOrigin?: string;
  /** Called before a create is handled (a race: someone else opens the same pull request first). */
  beforeCreate?: (forge: FakeForge) => void;
}

class FakeForge {
  readonly requests: Recorded[] = [];
  readonly pulls: Pull[] = [];
  private nextNumber = 1;
  url = '';
  private server = createServer((req, res) => void this.handle(req, res));

  constructor(readonly options: FakeForgeOptions) {}

  get prefix(): string {
    return this.options.flavor === 'gitea' ? '/api/v1' : '';
  }

  /** The API base URL kiln is given. */
  get apiUrl(): string {
    return `${this.url}${this.prefix}`;
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  add(pull: Omit<Pull, 'number'> & { number?: number }): Pull {
    const p: Pull = { ...pull, number: pull.number ?? this.nextNumber };
    this.nextNumber = Math.max(this.nextNumber, p.number) + 1;
    this.pulls.push(p);
    return p;
  }

  /** A pull request as the API returns it (GitHub's fields; Gitea's are a superset of what kiln reads). */
  render(p: Pull): Record<string, unknown> {
    const web = this.options.flavor === 'gitea' ? this.url : 'https://github.com';
    const repo = (owner: string) => ({ id: owner === OWNER ? REPO_ID : 999, name: REPO, full_name: `${owner}/${REPO}`, private: false, html_url: `${web}/${owner}/${REPO}` });
    return {
      url: `${this.apiUrl}/repos/${OWNER}/${REPO}/pulls/${p.number}`,
      id: 1_000_000 + p.number,
      node_id: `PR_kwDO${p.number}`,
      html_url: `${web}/${OWNER}/${REPO}/pull/${p.number}`,
      number: p.number,
      state: p.state,
      locked: false,
      title: p.title,
      body: p.body,
      user: { login: 'kiln-bot', id: 42, type: 'Bot' },
      created_at: '2025-01-01T00:00:00Z',
      updated_at: '2025-01-01T00:00:00Z',
      draft: false,
      merged: false,
      head: {
        label: this.options.flavor === 'gitea' ? p.head.ref : `${p.head.owner ?? 'ghost'}:${p.head.ref}`,
        ref: p.head.ref,
        sha: '6dcb09b5b57875f334f61aebed695e2e4193db5e',
        repo: p.head.owner === null ? null : repo(p.head.owner),
      },
      base: { label: `${OWNER}:${p.base}`, ref: p.base, sha: 'e5bd3914e2e596debea16f433f57875b5b90bcd6', repo: repo(OWNER) },
    };
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(body === undefined ? '' : JSON.stringify(body));
  }

  private error(res: ServerResponse, status: number, message: string, extra: Record<string, unknown> = {}): void {
    this.send(
      res,
      status,
      this.options.flavor === 'gitea'
        ? { message, url: `${this.url}/api/swagger`, ...extra }
        : { message, documentation_url: 'https://docs.github.com/rest/pulls/pulls', status: String(status), ...extra },
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const rec: Recorded = {
      method: req.method ?? '',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: {
        authorization: req.headers.authorization,
        accept: req.headers.accept,
        'content-type': req.headers['content-type'],
        'user-agent': req.headers['user-agent'],
        'x-github-api-version': req.headers['x-github-api-version'] as string | undefined,
      },
      body: raw ? JSON.parse(raw) : undefined,
    };
    this.requests.push(rec);

    // Both forges take `token <t>` and `Bearer <t>`.
    const m = /^(token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!m || m[2] !== TOKEN) {
      const message = this.options.echoAuthorization ? `Bad credentials: ${req.headers.authorization ?? ''}` : 'Bad credentials';
      this.error(res, 401, message);
      return;
    }

    const repoPath = `${this.prefix}/repos/${OWNER}/${REPO}/pulls`;
    const listPath = [repoPath, `${this.prefix}/repositories/${REPO_ID}/pulls`];
    if (req.method === 'GET' && listPath.includes(url.pathname)) {
      const q = url.searchParams;
      const state = q.get('state') ?? 'open';
      let list = this.pulls.filter((p) => state === 'all' || p.state === state);
      if (this.options.flavor === 'github' && !this.options.ignoreFilters) {
        // GitHub: head is "user:ref-name" (or "organization:ref-name"); base is the branch name.
        const head = q.get('head');
        if (head) list = list.filter((p) => `${p.head.owner}:${p.head.ref}` === head);
        const base = q.get('base');
        if (base) list = list.filter((p) => p.base === base);
      }
      // Newest first, as both forges list by default.
      list = [...list].sort((a, b) => b.number - a.number);
      const size = this.options.pageSize ?? (this.options.flavor === 'gitea' ? Math.min(Number(q.get('limit') ?? 50), 50) : Math.min(Number(q.get('per_page') ?? 30), 100));
      const page = Number(q.get('page') ?? 1);
      const items = list.slice((page - 1) * size, page * size);
      const headers: Record<string, string> = {};
      if (page * size < list.length) {
        // GitHub's Link URLs name the repository by id; Gitea's keep the request path.
        const next = new URL(this.options.flavor === 'github' ? `/repositories/${REPO_ID}/pulls` : url.pathname, this.options.linkOrigin ?? this.url);
        for (const [k, v] of q) if (k !== 'page') next.searchParams.set(k, v);
        next.searchParams.set('page', String(page + 1));
        const last = new URL(next);
        last.searchParams.set('page', String(Math.ceil(list.length / size)));
        headers['link'] = `<${next.href}>; rel="next", <${last.href}>; rel="last"`;
      }
      if (this.options.flavor === 'gitea') headers['x-total-count'] = String(list.length);
      this.send(
        res,
        200,
        items.map((p) => this.render(p)),
        headers,
      );
      return;
    }
    if (req.method === 'POST' && url.pathname === repoPath) {
      this.options.beforeCreate?.(this);
      const body = rec.body as { title?: string; head?: string; base?: string; body?: string };
      if (!body?.title || !body.head || !body.base) {
        this.error(res, 422, 'Validation Failed', { errors: [{ resource: 'PullRequest', code: 'missing_field', field: !body?.title ? 'title' : !body.head ? 'head' : 'base' }] });
        return;
      }
      const [owner, ref] = body.head.includes(':') ? (body.head.split(':', 2) as [string, string]) : [OWNER, body.head];
      if (this.pulls.some((p) => p.state === 'open' && p.head.owner === owner && p.head.ref === ref && p.base === body.base)) {
        if (this.options.flavor === 'gitea') this.error(res, 409, 'pull request already exists for these targets');
        else this.error(res, 422, 'Validation Failed', { errors: [{ resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${owner}:${ref}.` }] });
        return;
      }
      const p = this.add({ title: body.title, body: body.body ?? null, state: 'open', head: { ref, owner }, base: body.base });
      this.send(res, 201, this.render(p), { location: `${this.apiUrl}/repos/${OWNER}/${REPO}/pulls/${p.number}` });
      return;
    }
    const patch = new RegExp(`^${repoPath}/(\\d+)$`).exec(url.pathname);
    if (req.method === 'PATCH' && patch) {
      const p = this.pulls.find((x) => x.number === Number(patch[1]));
      if (!p) {
        this.error(res, 404, 'Not Found');
        return;
      }
      const body = rec.body as { title?: string; body?: string; state?: 'open' | 'closed' };
      if (body.title !== undefined) p.title = body.title;
      if (body.body !== undefined) p.body = body.body;
      if (body.state !== undefined) p.state = body.state;
      this.send(res, 200, this.render(p));
      return;
    }
    this.error(res, 404, 'Not Found');
  }
}

const forges: FakeForge[] = [];
afterEach(async () => {
  await Promise.all(forges.splice(0).map((f) => f.close()));
});

async function forge(options: FakeForgeOptions): Promise<FakeForge> {
  const f = await new FakeForge(options).start();
  forges.push(f);
  return f;
}

function provider(f: FakeForge, extra: Partial<GitHubPullRequestsOptions> = {}): GitHubPullRequests {
  return new GitHubPullRequests({ token: TOKEN, allowInsecureHttp: true, apiUrl: f.apiUrl, repositoryUrl: `https://github.com/${OWNER}/${REPO}.git`, ...extra });
}

const REVIEW = { head: 'main-next', base: 'main', title: 'kiln: rendered changes for main', body: 'update ConfigMapSync bulk/web generation 2\n' };

function expectNoToken(err: unknown): void {
  expect(err).toBeInstanceOf(PullRequestError);
  const e = err as PullRequestError;
  expect(`${e.message}\n${e.stack ?? ''}\n${JSON.stringify(e)}`).not.toContain(TOKEN);
}

// ---------------------------------------------------------------- tests

describe('pull requests (contract test against a local stand-in for GitHub / Gitea)', () => {
  it('GitHub: opens one when none is open (created: true) with the documented request', async () => {
    const f = await forge({ flavor: 'github' });
    // Noise: a closed one for the same branches, and an open one for another branch.
    f.add({ title: 'old', body: '', state: 'closed', head: { ref: 'main-next', owner: OWNER }, base: 'main' });
    f.add({ title: 'feature', body: '', state: 'open', head: { ref: 'feature', owner: OWNER }, base: 'main' });
    const logs: string[] = [];
    const result = await provider(f, { log: (level, msg, fields) => logs.push(JSON.stringify({ level, msg, ...fields })) }).ensurePullRequest(REVIEW);
    expect(result).toEqual({ url: `https://github.com/${OWNER}/${REPO}/pull/3`, number: 3, created: true });

    expect(f.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /repos/${OWNER}/${REPO}/pulls`, `POST /repos/${OWNER}/${REPO}/pulls`]);
    const [list, create] = f.requests as [Recorded, Recorded];
    expect(list.query).toMatchObject({ state: 'open', head: `${OWNER}:main-next`, base: 'main' });
    expect(list.body).toBeUndefined();
    expect(create.body).toEqual({ title: REVIEW.title, head: 'main-next', base: 'main', body: REVIEW.body });
    for (const r of f.requests) {
      expect(r.headers).toMatchObject({ authorization: `token ${TOKEN}`, accept: 'application/vnd.github+json', 'user-agent': 'kiln', 'x-github-api-version': '2022-11-28' });
    }
    expect(create.headers['content-type']).toBe('application/json');
    expect(f.pulls.find((p) => p.number === 3)).toMatchObject({ state: 'open', title: REVIEW.title, head: { ref: 'main-next', owner: OWNER } });
    expect(logs.join('\n')).toContain('pull request opened');
    expect(logs.join('\n')).not.toContain(TOKEN);
  });

  it('GitHub: reuses the open one (created: false); PATCHes only when the title or body changed, only those fields', async () => {
    const f = await forge({ flavor: 'github' });
    const open = f.add({ number: 17, title: REVIEW.title, body: REVIEW.body.replace(/\n/g, '\r\n'), state: 'open', head: { ref: 'main-next', owner: OWNER }, base: 'main' });
    const prs = provider(f);

    // Same title and body (GitHub hands bodies back with CRLF line ends): nothing to update.
    expect(await prs.ensurePullRequest(REVIEW)).toEqual({ url: `https://github.com/${OWNER}/${REPO}/pull/17`, number: 17, created: false });
    expect(f.requests.map((r) => r.method)).toEqual(['GET']);

    // A new batch: the body changed.
    const body2 = 'update ConfigMapSync bulk/web generation 3\n';
    expect(await prs.ensurePullRequest({ ...REVIEW, body: body2 })).toMatchObject({ number: 17, created: false });
    expect(f.requests.map((r) => r.method)).toEqual(['GET', 'GET', 'PATCH']);
    expect(f.requests[2]).toMatchObject({ path: `/repos/${OWNER}/${REPO}/pulls/17`, body: { body: body2 }, headers: { authorization: `token ${TOKEN}`, 'content-type': 'application/json' } });
    expect(open.body).toBe(body2);

    // The title changed.
    await prs.ensurePullRequest({ ...REVIEW, title: 'kiln: 2 resources for main', body: body2 });
    expect(f.requests.at(-1)).toMatchObject({ method: 'PATCH', body: { title: 'kiln: 2 resources for main' } });
    expect(open.title).toBe('kiln: 2 resources for main');
    expect(f.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
  });

  it("GitHub: a listing that is not narrowed is checked client-side and paged through GitHub's /repositories/{id} Link URLs", async () => {
    // As if the head/base filters were dropped (a proxy, an older GitHub Enterprise): the client must still pick the right one.
    const f = await forge({ flavor: 'github', pageSize: 2, ignoreFilters: true });
    f.add({ number: 5, title: 'ours', body: REVIEW.body, state: 'open', head: { ref: 'main-next', owner: OWNER }, base: 'main' });
    f.add({ number: 6, title: "a fork's branch of the same name", body: '', state: 'open', head: { ref: 'main-next', owner: 'forker' }, base: 'main' });
    for (let i = 0; i < 3; i++) f.add({ title: `other ${i}`, body: '', state: 'open', head: { ref: `feature-${i}`, owner: OWNER }, base: 'main' });
    const result = await provider(f).ensurePullRequest({ ...REVIEW, title: 'ours' });
    expect(result).toMatchObject({ number: 5, created: false });
    expect(f.requests.map((r) => `${r.method} ${r.path} ${r.query['page'] ?? 1}`)).toEqual([
      `GET /repos/${OWNER}/${REPO}/pulls 1`,
      `GET /repositories/${REPO_ID}/pulls 2`,
      `GET /repositories/${REPO_ID}/pulls 3`,
    ]);
    // The filters travel along with the pages.
    for (const r of f.requests) expect(r.query).toMatchObject({ state: 'open', head: `${OWNER}:main-next`, base: 'main' });
  });

  it('a Link to another origin is not followed: the token stays with the API', async () => {
    const elsewhere = await forge({ flavor: 'github' });
    const f = await forge({ flavor: 'github', pageSize: 1, ignoreFilters: true, linkOrigin: elsewhere.url });
    for (let i = 0; i < 3; i++) f.add({ title: `other ${i}`, body: '', state: 'open', head: { ref: `feature-${i}`, owner: OWNER }, base: 'main' });
    const result = await provider(f).ensurePullRequest(REVIEW);
    expect(result.created).toBe(true);
    expect(f.requests.map((r) => r.method)).toEqual(['GET', 'POST']);
    expect(elsewhere.requests).toHaveLength(0);
  });

  it('Gitea: API under /api/v1, Bearer, owner/repo from the remote URL; head filter ignored -> filtered client-side across Link pages', async () => {
    const f = await forge({ flavor: 'gitea', pageSize: 3 });
    const ours = f.add({ number: 2, title: 'stale title', body: 'stale body', state: 'open', head: { ref: 'main-next', owner: OWNER }, base: 'main' });
    // Newer open pull requests come first in the listing: other branches, the same branch into another base, a fork's main-next, a deleted fork.
    f.add({ number: 3, title: 'same head, other base', body: '', state: 'open', head: { ref: 'main-next', owner: OWNER }, base: 'release' });
    f.add({ number: 4, title: 'from a fork', body: '', state: 'open', head: { ref: 'main-next', owner: 'forker' }, base: 'main' });
    f.add({ number: 5, title: 'from a deleted fork', body: '', state: 'open', head: { ref: 'main-next', owner: null }, base: 'main' });
    for (let i = 0; i < 4; i++) f.add({ number: 6 + i, title: `feature ${i}`, body: '', state: 'open', head: { ref: `feature-${i}`, owner: OWNER }, base: 'main' });

    const prs = new GitHubPullRequests({ token: TOKEN, allowInsecureHttp: true, scheme: 'Bearer', apiUrl: f.apiUrl, repositoryUrl: `${f.url}/${OWNER}/${REPO}.git` });
    expect([prs.owner, prs.repo, prs.apiUrl]).toEqual([OWNER, REPO, `${f.url}/api/v1`]);
    const result = await prs.ensurePullRequest(REVIEW);
    expect(result).toEqual({ url: `${f.url}/${OWNER}/${REPO}/pull/2`, number: 2, created: false });

    const lists = f.requests.filter((r) => r.method === 'GET');
    expect(lists.map((r) => r.query['page'] ?? '1')).toEqual(['1', '2', '3']);
    for (const r of lists) expect(r.path).toBe(`/api/v1/repos/${OWNER}/${REPO}/pulls`);
    expect(f.requests.at(-1)).toMatchObject({ method: 'PATCH', path: `/api/v1/repos/${OWNER}/${REPO}/pulls/2`, body: { title: REVIEW.title, body: REVIEW.body } });
    for (const r of f.requests) expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(ours).toMatchObject({ title: REVIEW.title, body: REVIEW.body });

    // Closed meanwhile: the next call opens a new one.
    ours.state = 'closed';
    const again = await prs.ensurePullRequest(REVIEW);
    expect(again).toMatchObject({ created: true, number: 10 });
    expect(f.requests.at(-1)).toMatchObject({ method: 'POST', body: { head: 'main-next', base: 'main', title: REVIEW.title, body: REVIEW.body } });
  });

  it('opened by someone else between the list and the create (422 on GitHub, 409 on Gitea) -> that one is used', async () => {
    for (const flavor of ['github', 'gitea'] as const) {
      const f = await forge({
        flavor,
        beforeCreate: (forge) => {
          if (!forge.pulls.some((p) => p.head.ref === 'main-next'))
            forge.add({ number: 40, title: 'by another replica', body: REVIEW.body, state: 'open', head: { ref: 'main-next', owner: OWNER }, base: 'main' });
        },
      });
      const result = await provider(f).ensurePullRequest(REVIEW);
      expect(result, flavor).toMatchObject({ number: 40, created: false });
      expect(
        f.requests.map((r) => r.method),
        flavor,
      ).toEqual(['GET', 'POST', 'GET', 'PATCH']);
      expect(f.requests[3]!.body).toEqual({ title: REVIEW.title });
    }
  });

  it("a wrong token: PullRequestError with the status and the server's message, never the token (even when the server echoes it)", async () => {
    const f = await forge({ flavor: 'github' });
    const wrong = testToken('wrong');
    const err = await new GitHubPullRequests({ token: wrong, allowInsecureHttp: true, apiUrl: f.apiUrl, owner: OWNER, repo: REPO }).ensurePullRequest(REVIEW).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PullRequestError);
    expect(err).toMatchObject({ status: 401, method: 'GET', path: `/repos/${OWNER}/${REPO}/pulls` });
    expect((err as Error).message).toMatch(/^GET \/repos\/octo-org\/deploy\/pulls failed: HTTP 401: Bad credentials$/);
    expect((err as Error).message).not.toContain(wrong);

    const echo = await forge({ flavor: 'github', echoAuthorization: true });
    // The right token, refused by a server that echoes the header (here: a provider with a token the server does not know).
    const other = testToken('echoed');
    const err2 = await new GitHubPullRequests({ token: other, allowInsecureHttp: true, apiUrl: echo.apiUrl, owner: OWNER, repo: REPO }).ensurePullRequest(REVIEW).catch((e: unknown) => e);
    expect(err2).toMatchObject({ status: 401 });
    expect((err2 as Error).message).toContain('Bad credentials');
    expect((err2 as Error).message).not.toContain(other);
    expect(echo.requests[0]!.headers.authorization).toBe(`token ${other}`);
  });

  it('other failures carry status and message: a validation error on create, a repository that is not there, no server at all', async () => {
    const f = await forge({ flavor: 'github' });
    const missing = await new GitHubPullRequests({ token: TOKEN, allowInsecureHttp: true, apiUrl: f.apiUrl, owner: OWNER, repo: 'nope' }).ensurePullRequest(REVIEW).catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 404 });
    expect((missing as Error).message).toBe('GET /repos/octo-org/nope/pulls failed: HTTP 404: Not Found');
    expectNoToken(missing);

    await expect(provider(f).ensurePullRequest({ ...REVIEW, head: 'main' })).rejects.toThrow(/two different branches/);

    const url = f.apiUrl;
    await f.close();
    forges.pop();
    const down = await new GitHubPullRequests({ token: TOKEN, allowInsecureHttp: true, apiUrl: url, owner: OWNER, repo: REPO, timeoutMs: 5000 }).ensurePullRequest(REVIEW).catch((e: unknown) => e);
    expect(down).toMatchObject({ status: undefined, method: 'GET' });
    expect((down as Error).message).toMatch(/^GET \/repos\/octo-org\/deploy\/pulls failed: fetch failed: .*ECONNREFUSED/);
    expectNoToken(down);
  });

  it("a body over GitHub's 65,536 characters is cut (and compared cut, so it is not PATCHed every time)", async () => {
    const f = await forge({ flavor: 'github' });
    const long = `${'update ConfigMapSync bulk/r generation 1\n'.repeat(3000)}`;
    expect(long.length).toBeGreaterThan(MAX_BODY_CHARS);
    await provider(f).ensurePullRequest({ ...REVIEW, body: long });
    const sent = (f.requests.at(-1)!.body as { body: string }).body;
    expect(sent.length).toBeLessThanOrEqual(MAX_BODY_CHARS);
    expect(sent).toMatch(/… \(truncated\)$/);
    await provider(f).ensurePullRequest({ ...REVIEW, body: long });
    expect(f.requests.map((r) => r.method)).toEqual(['GET', 'POST', 'GET']);
  });
});

describe('pull requests: repository and API URLs', () => {
  it('parses owner/repo from https, ssh and scp-like remotes', () => {
    expect(parseRepositoryUrl('https://github.com/octo-org/deploy.git')).toEqual({ host: 'github.com', owner: 'octo-org', repo: 'deploy' });
    expect(parseRepositoryUrl('https://x-access-token:abc@github.com/octo-org/deploy')).toEqual({ host: 'github.com', owner: 'octo-org', repo: 'deploy' });
    expect(parseRepositoryUrl('git@github.com:octo-org/deploy.git')).toEqual({ host: 'github.com', owner: 'octo-org', repo: 'deploy' });
    expect(parseRepositoryUrl('ssh://git@gitea.example.com:2222/team/deploy.git')).toEqual({ host: 'gitea.example.com', owner: 'team', repo: 'deploy' });
    expect(parseRepositoryUrl('https://code.example.com/gitea/team/deploy.git/')).toEqual({ host: 'code.example.com', owner: 'team', repo: 'deploy' });
    expect(() => parseRepositoryUrl('https://github.com/only-owner')).toThrow(/owner and repository/);
    expect(() => parseRepositoryUrl('/srv/git/deploy.git')).toThrow(/owner and repository/);
  });

  it('defaults to api.github.com for github.com only: a token for another host is not sent to GitHub', () => {
    const gh = new GitHubPullRequests({ token: TOKEN, repositoryUrl: 'git@github.com:octo-org/deploy.git' });
    expect([gh.apiUrl, gh.owner, gh.repo]).toEqual(['https://api.github.com', 'octo-org', 'deploy']);
    expect(() => new GitHubPullRequests({ token: TOKEN, repositoryUrl: 'https://gitea.example.com/team/deploy.git' })).toThrow(/gitea\.example\.com\/api\/v1/);
    const gitea = new GitHubPullRequests({ token: TOKEN, apiUrl: 'https://gitea.example.com/api/v1/', repositoryUrl: 'https://gitea.example.com/team/deploy.git' });
    expect([gitea.apiUrl, gitea.owner, gitea.repo]).toEqual(['https://gitea.example.com/api/v1', 'team', 'deploy']);
    // Explicit owner/repo win over the URL.
    expect(new GitHubPullRequests({ token: TOKEN, owner: 'a', repo: 'b', repositoryUrl: 'https://github.com/c/d' }).owner).toBe('a');
    expect(() => new GitHubPullRequests({ token: TOKEN })).toThrow(/owner and repo/);
    expect(() => new GitHubPullRequests({ token: TOKEN, owner: '..', repo: 'x' })).toThrow(/invalid owner/);
    expect(() => new GitHubPullRequests({ token: '', owner: 'a', repo: 'b' })).toThrow(/token/);
    expect(() => new GitHubPullRequests({ token: TOKEN, owner: 'a', repo: 'b', apiUrl: 'https://u:p@api.example.com' })).toThrow(/credentials/);
    // A clear-text API URL would carry the token unencrypted: only when asked for (loopback test servers).
    expect(() => new GitHubPullRequests({ token: TOKEN, owner: 'a', repo: 'b', apiUrl: 'http://api.example.com' })).toThrow(/plain http:\/\/.*--allow-insecure-http/);
  });
});
