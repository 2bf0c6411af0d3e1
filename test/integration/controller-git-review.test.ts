/**
 * Git mode with review: kiln pushes to <branch>-next and opens (then updates)
 * one pull request into <branch>; each resource's status names the commit and
 * the pull request. The pull-request API is a local stand-in that answers as
 * GitHub's REST API does (github.com is not reachable here); the Git side is a
 * real bare repository.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { Manager } from '../../controller/manager.js';
import { GitHubPullRequests } from '../../gitops/pull-request.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor } from '../harness/wait.js';
import { testToken } from '../harness/secrets.js';
import { initBareRepo, plainGit } from '../harness/git.js';

let cp: ControlPlaneClient;
let manager: Manager;
let api: Server;
const ns = `kiln-review-${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-review-'));
const bare = join(tmp, 'deploy.git');
const TOKEN = testToken('review');
const logs: string[] = [];
const requests: { method: string; url: string; auth?: string; body?: Record<string, unknown> }[] = [];
const pulls: { number: number; html_url: string; title: string; body: string; state: string; head: { ref: string; label: string; repo: { full_name: string } }; base: { ref: string } }[] = [];

const git = (cwd: string, ...args: string[]) => plainGit(cwd, args);

/** GET/POST /repos/o/r/pulls and PATCH /repos/o/r/pulls/:n, answered as GitHub documents them. */
function startApi(): Promise<string> {
  api = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
      requests.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body });
      const json = (status: number, v: unknown) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(v));
      if (req.headers.authorization !== `token ${TOKEN}`) return json(401, { message: 'Bad credentials' });
      const url = new URL(req.url!, 'http://x');
      const m = /^\/repos\/platform\/deploy\/pulls(?:\/(\d+))?$/.exec(url.pathname);
      if (!m) return json(404, { message: 'Not Found' });
      if (req.method === 'GET') {
        const head = url.searchParams.get('head')?.split(':')[1];
        return json(
          200,
          pulls.filter((p) => p.state === 'open' && (!head || p.head.ref === head) && p.base.ref === (url.searchParams.get('base') ?? p.base.ref)),
        );
      }
      if (req.method === 'POST') {
        const n = pulls.length + 1;
        const pr = {
          number: n,
          html_url: `https://git.example.com/platform/deploy/pull/${n}`,
          title: String(body!['title']),
          body: String(body!['body']),
          state: 'open',
          head: { ref: String(body!['head']), label: `platform:${String(body!['head'])}`, repo: { full_name: 'platform/deploy' } },
          base: { ref: String(body!['base']) },
        };
        pulls.push(pr);
        return json(201, pr);
      }
      if (req.method === 'PATCH' && m[1]) {
        const pr = pulls.find((p) => p.number === Number(m[1]))!;
        Object.assign(pr, body);
        return json(200, pr);
      }
      return json(405, { message: 'Method Not Allowed' });
    });
  });
  return new Promise((resolve) => api.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(api.address() as AddressInfo).port}`)));
}

async function statusOf(name: string) {
  const r = await cp.kubectl(['get', '-n', ns, 'datagrid', name, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  initBareRepo(bare, tmp);
  const apiUrl = await startApi();
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({
    kc,
    namespaces: [ns],
    concurrency: 4,
    qps: 0,
    burst: 0,
    resyncSeconds: 0,
    version: 'test',
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
    sink: 'git',
    git: {
      repo: bare,
      branch: 'main',
      reviewBranch: 'main-next',
      basePath: 'clusters',
      cluster: 'review',
      workDir: join(tmp, 'clone'),
      debounceMs: 500,
      maxWaitMs: 5000,
      pullRequests: new GitHubPullRequests({ token: TOKEN, allowInsecureHttp: true, apiUrl, owner: 'platform', repo: 'deploy' }),
    },
  });
  await manager.start();
});

afterAll(async () => {
  await manager?.stop();
  api?.close();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  rmSync(tmp, { recursive: true, force: true });
});

it('pushes to the review branch, opens one pull request, updates it, and names it in status', async () => {
  // One apply for both, so they land in one batch (two applies on a loaded machine can be further apart than the debounce).
  const grids = ['g1', 'g2'].map((name) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name, namespace: ns }, spec: { cache: 'c' } }));
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: grids }) });
  const ready = await waitFor(
    'g1 and g2 Ready with a pull request',
    async () => {
      const all = await Promise.all(['g1', 'g2'].map(statusOf));
      return all.every((g) => g?.status?.pullRequest && g.status.conditions?.find((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True')) ? all : undefined;
    },
    30_000,
    () => logs.slice(-15).join('\n'),
  );
  const next = git(bare, 'rev-parse', 'main-next').trim();
  for (const g of ready) {
    expect(g.status.pullRequest).toBe('https://git.example.com/platform/deploy/pull/1');
    expect(g.status.commit).toBe(next);
  }
  // main is untouched: the change waits for review.
  expect(git(bare, 'ls-tree', '-r', '--name-only', 'main').trim()).toBe('README.md');
  expect(git(bare, 'ls-tree', '-r', '--name-only', 'main-next')).toContain(`clusters/review/${ns}/datagrid/g1/manifest.yaml`);
  expect(pulls).toHaveLength(1);
  expect(pulls[0]).toMatchObject({ head: { ref: 'main-next' }, base: { ref: 'main' }, state: 'open' });

  // A later change reuses the open pull request.
  await cp.kubectlOk(['patch', '-n', ns, 'datagrid', 'g1', '--type=merge', '-p', '{"spec":{"partitions":17}}']);
  await waitFor(
    'g1 Ready for generation 2',
    async () => {
      const g = await statusOf('g1');
      return g?.status?.observedGeneration === 2 && g.status.commit === git(bare, 'rev-parse', 'main-next').trim() ? g : undefined;
    },
    30_000,
    () => logs.slice(-15).join('\n'),
  );
  expect(pulls).toHaveLength(1);
  expect(requests.filter((r) => r.method === 'POST')).toHaveLength(1);
  expect(requests.every((r) => r.auth === `token ${TOKEN}`)).toBe(true);
  expect(logs.join('\n')).not.toContain(TOKEN);
});
