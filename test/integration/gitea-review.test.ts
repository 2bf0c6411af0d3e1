/**
 * Review mode against a real forge: Gitea (built by scripts/build-gitea.sh)
 * on loopback. kiln, wired exactly as `kiln controller --mode git --review
 * --pull-request-api <gitea>/api/v1 --git-token-file ... --allow-insecure-http`
 * wires it (gitOptions), pushes to main-next over Gitea's smart HTTP and opens
 * the pull request into main through Gitea's API; the next batch updates it;
 * after a merge through the API the next change opens a new one, and the
 * resources' status names whichever pull request carries their commit.
 * The GitHub-contract tests (controller-git-review, gitops-pull-request) stay:
 * they cover what Gitea does not do (GitHub's pagination, 422s, forks).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { gitOptions } from '../../cli/controller-command.js';
import { Manager } from '../../controller/manager.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { startGitea, type GiteaRepo, type GiteaServer } from '../harness/gitea.js';
import { plainGit } from '../harness/git.js';
import { waitFor } from '../harness/wait.js';

interface Pull {
  number: number;
  html_url: string;
  title: string;
  body: string;
  state: string;
  merged: boolean;
  head: { ref: string; sha: string };
  base: { ref: string };
}

let cp: ControlPlaneClient;
let gitea: GiteaServer;
let repo: GiteaRepo;
let manager: Manager | undefined;
const ns = `kiln-gitea-${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-gitea-review-'));
const logs: string[] = [];
const CLUSTER = 'gitea';
const TITLE = `kiln: rendered manifests for clusters/${CLUSTER}`;

const log = () => logs.slice(-15).join('\n') + `\nGitea log: ${gitea?.logFile}`;
const openPulls = () => gitea.api<Pull[]>('GET', `/repos/${repo.fullName}/pulls?state=open`);
const branchSha = async (branch: string) => (await gitea.api<{ commit: { id: string } }>('GET', `/repos/${repo.fullName}/branches/${branch}`)).commit.id;
const treeOf = async (ref: string) =>
  (await gitea.api<{ tree: { path: string; type: string }[] }>('GET', `/repos/${repo.fullName}/git/trees/${ref}?recursive=true&per_page=1000`)).tree
    .filter((e) => e.type === 'blob')
    .map((e) => e.path);
const manifestPath = (name: string) => `clusters/${CLUSTER}/${ns}/datagrid/${name}/manifest.yaml`;
const raw = async (ref: string, path: string) => {
  const r = await fetch(`${gitea.apiUrl}/repos/${repo.fullName}/raw/${path}?ref=${ref}`, { headers: { authorization: `token ${gitea.token}` } });
  return r.ok ? r.text() : undefined;
};

async function statusOf(name: string) {
  const r = await cp.kubectl(['get', '-n', ns, 'datagrid', name, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

const ready = (g: { status?: { conditions?: { type: string; status: string }[] } } | undefined) => g?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');

/** The one open pull request once kiln's latest push is in it: head at `sha`, body naming `sha`. */
async function pullAt(sha: string): Promise<Pull> {
  let seen: Pull[] = [];
  return waitFor(
    `one open pull request with head ${sha.slice(0, 12)}`,
    async () => {
      seen = await openPulls();
      return seen.length === 1 && seen[0]!.head.sha === sha && seen[0]!.body.includes(sha) ? seen[0] : undefined;
    },
    30_000,
    () => `open pull requests: ${JSON.stringify(seen.map((p) => ({ number: p.number, head: p.head, base: p.base.ref, body: p.body })))}\n${log()}`,
  );
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  gitea = await startGitea({ dir: join(tmp, 'gitea') });
  repo = await gitea.createRepo('deploy');
  await cp.kubectlOk(['create', 'namespace', ns]);
  const tokenFile = join(tmp, 'token');
  writeFileSync(tokenFile, `${gitea.repoToken}\n`, { mode: 0o600 });
  // The flags a deployment passes; env {}: no KILN_GIT_* of the caller.
  const git = await gitOptions(
    {
      repo: repo.cloneUrl,
      branch: 'main',
      review: true,
      pullRequestApi: gitea.apiUrl,
      allowInsecureHttp: true,
      gitTokenFile: tokenFile,
      basePath: 'clusters',
      cluster: CLUSTER,
      workDir: join(tmp, 'clone'),
      debounce: 500,
      maxWait: 5000,
    },
    {},
  );
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({
    kc,
    namespaces: [ns],
    concurrency: 4,
    qps: 0,
    burst: 0,
    // Resources are reconciled again every second, as every 300 s in a deployment: a resync must not move a status to a pull request that does not carry its commit.
    resyncSeconds: 1,
    version: 'test',
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
    sink: 'git',
    git,
  });
  await manager.start();
});

afterAll(async () => {
  await manager?.stop();
  await gitea?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  rmSync(tmp, { recursive: true, force: true });
});

it('opens a pull request on Gitea, updates it on the next batch, and opens a new one after the merge', async () => {
  const started = Date.now();
  const grids = ['g1', 'g2'].map((name) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name, namespace: ns }, spec: { cache: 'c' } }));
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: grids }) });
  const first = await waitFor(
    'g1 and g2 Ready with a pull request',
    async () => {
      const all = await Promise.all(['g1', 'g2'].map(statusOf));
      return all.every((g) => ready(g) && g.status.pullRequest) ? all : undefined;
    },
    60_000,
    log,
  );
  const sha1 = await branchSha('main-next');
  const pr1 = await pullAt(sha1);
  const openedMs = Date.now() - started;
  expect(pr1).toMatchObject({ head: { ref: 'main-next' }, base: { ref: 'main' }, title: TITLE, state: 'open' });
  expect(pr1.html_url).toBe(`${repo.htmlUrl}/pulls/${pr1.number}`);
  expect(pr1.body).toContain('merging this pull request hands them to `main`');
  for (const g of first) {
    expect(g.status.pullRequest).toBe(pr1.html_url);
    expect(g.status.commit).toBe(sha1);
  }
  // main waits for the review.
  expect(await treeOf('main')).toEqual(['README.md']);
  expect(await treeOf('main-next')).toContain(manifestPath('g1'));

  // The next batch goes into the same pull request.
  let t = Date.now();
  await cp.kubectlOk(['patch', '-n', ns, 'datagrid', 'g1', '--type=merge', '-p', '{"spec":{"partitions":17}}']);
  const g1v2 = await waitFor(
    'g1 Ready for generation 2',
    async () => {
      const g = await statusOf('g1');
      return ready(g) && g.status.observedGeneration === 2 ? g : undefined;
    },
    60_000,
    log,
  );
  const sha2 = await branchSha('main-next');
  expect(sha2).not.toBe(sha1);
  expect(g1v2.status.commit).toBe(sha2);
  const pr1b = await pullAt(sha2);
  const updatedMs = Date.now() - t;
  expect(pr1b.number).toBe(pr1.number);
  expect(g1v2.status.pullRequest).toBe(pr1.html_url);
  expect(await raw('main-next', manifestPath('g1'))).toContain('17');

  // A reviewer merges it: main now holds what kiln rendered.
  await waitFor(
    `pull request #${pr1.number} merged`,
    async () => {
      try {
        await gitea.api('POST', `/repos/${repo.fullName}/pulls/${pr1.number}/merge`, { Do: 'merge' });
        return true;
      } catch (err) {
        // Gitea answers 405 "Please try again later" while it is still checking whether the pull request merges.
        if (/HTTP 405 .*try again later/i.test(String(err))) return undefined;
        throw err;
      }
    },
    30_000,
    log,
  );
  const merged = await gitea.api<Pull>('GET', `/repos/${repo.fullName}/pulls/${pr1.number}`);
  expect(merged).toMatchObject({ state: 'closed', merged: true });
  expect(await treeOf('main')).toEqual(expect.arrayContaining([manifestPath('g1'), manifestPath('g2')]));
  expect(await raw('main', manifestPath('g1'))).toBe(await raw('main-next', manifestPath('g1')));
  expect(await openPulls()).toEqual([]);

  // The next change needs a new pull request, and g1's status follows it.
  t = Date.now();
  await cp.kubectlOk(['patch', '-n', ns, 'datagrid', 'g1', '--type=merge', '-p', '{"spec":{"partitions":19}}']);
  const g1v3 = await waitFor(
    'g1 Ready for generation 3',
    async () => {
      const g = await statusOf('g1');
      return ready(g) && g.status.observedGeneration === 3 ? g : undefined;
    },
    60_000,
    log,
  );
  const sha3 = await branchSha('main-next');
  const pr2 = await pullAt(sha3);
  const reopenedMs = Date.now() - t;
  expect(pr2.number).not.toBe(pr1.number);
  expect(pr2).toMatchObject({ head: { ref: 'main-next' }, base: { ref: 'main' }, title: TITLE });
  expect(g1v3.status.commit).toBe(sha3);
  expect(g1v3.status.pullRequest).toBe(pr2.html_url);
  expect(await gitea.api<Pull>('GET', `/repos/${repo.fullName}/pulls/${pr1.number}`)).toMatchObject({ state: 'closed', merged: true });
  // g2 did not change since the merge: after resyncs its status still names the pull request that carried its commit.
  const mark = manager!.reconciles;
  await waitFor('two resyncs of g1 and g2', () => manager!.reconciles >= mark + 4, 30_000, log);
  const g2 = await statusOf('g2');
  expect(g2.status.commit).toBe(sha1);
  expect(g2.status.pullRequest).toBe(pr1.html_url);
  // The merged state is on main; the new change is not.
  expect(await raw('main', manifestPath('g1'))).toContain('17');
  expect(await raw('main', manifestPath('g1'))).not.toContain('19');

  // The token kiln used (for Git and for the API) is in no log line, status or commit.
  const secrets = [gitea.repoToken, Buffer.from(`x-access-token:${gitea.repoToken}`).toString('base64')];
  const statuses = JSON.stringify(await Promise.all(['g1', 'g2'].map(statusOf)));
  const history = join(tmp, 'history');
  mkdirSync(history);
  plainGit(history, ['init', '--quiet']);
  plainGit(history, [...gitea.gitAuthArgs(), 'fetch', '--quiet', repo.cloneUrl, '+refs/heads/*:refs/remotes/gitea/*']);
  const committed = plainGit(history, ['log', '-p', '--all', '--format=%H %an <%ae>%n%B']);
  expect(committed).toContain(manifestPath('g1'));
  for (const secret of secrets) {
    expect(logs.join('\n')).not.toContain(secret);
    expect(statuses).not.toContain(secret);
    expect(committed).not.toContain(secret);
  }
  console.log(`gitea review: PR ${pr1.html_url} opened ${openedMs} ms after apply, updated ${updatedMs} ms after the patch; after the merge ${pr2.html_url} opened ${reopenedMs} ms after the patch`);
});
