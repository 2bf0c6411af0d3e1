/**
 * The git-mode controller against the real control plane and a real bare
 * repository on disk: a Manager in git mode watches a test namespace and
 * commits what it renders; status says which commit holds it. Then the
 * committed tree is applied (server-side dry run) the way Flux would apply it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { render } from '../../kinds/render.js';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { digest } from '../../controller/apply/applyset.js';
import { KubeClient } from '../../kube/client.js';
import { NOT_SUPPORTED_CONFIGMAPSYNC } from '../../kinds/config-map-sync/delivery.js';
import { Manager } from '../../controller/manager.js';
import type { FlushReport } from '../../gitops/batcher.js';
import { validate } from '../../validate/index.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor as waitUntil } from '../harness/wait.js';
import { exampleResources } from '../unit/fixtures.js';
import { initBareRepo, plainGit, plainGitEnv as gitEnv } from '../harness/git.js';

let cp: ControlPlaneClient;
let manager: Manager;
let reader: KubeClient;
const ns = `kiln-git-${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-controller-git-'));
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const reports: FlushReport[] = [];

const CLUSTER = 'test';
const AUTHOR = { name: 'kiln bot', email: 'kiln-bot@example.com' };
const LEAKED = 'correct-horse-battery-staple';

// ---------------------------------------------------------------- plain git

const git = (cwd: string, ...args: string[]): string => plainGit(cwd, args);

const root = new URL('../../', import.meta.url).pathname;
const bare = join(tmp, 'deploy.git');
const mainSha = (): string => git(bare, 'rev-parse', 'main').trim();
const commitCount = (): number => Number(git(bare, 'rev-list', '--count', 'main').trim());
const treeFiles = (ref = 'main'): string[] => git(bare, 'ls-tree', '-r', '--name-only', ref).trim().split('\n').filter(Boolean);
const touched = (sha: string): string[] => git(bare, 'diff-tree', '--no-commit-id', '--name-only', '-r', sha).trim().split('\n').filter(Boolean);
const subject = (ref = 'main'): string => git(bare, 'log', '-1', '--format=%s', ref).trim();
const show = (path: string, ref = 'main'): string => git(bare, 'show', `${ref}:${path}`);
const nsDir = `clusters/${CLUSTER}/${ns}`;

function seed(bareRepo = bare): void {
  initBareRepo(bareRepo, tmp);
}

// ---------------------------------------------------------------- resources

const kinds = ['DataGrid', 'CacheCluster', 'PostgresInstance'];
const examples = exampleResources()
  .map((e) => e.resource)
  .filter((r) => kinds.includes(r.kind))
  .map((r) => ({ ...r, metadata: { ...r.metadata, namespace: ns } }));

type Live = KilnResource & {
  metadata: { generation: number; resourceVersion: string };
  status?: { observedGeneration?: number; commit?: string; revision?: string; conditions?: { type: string; status: string; reason: string; message: string; observedGeneration?: number }[] };
};

async function getLive(kind: string, name: string): Promise<Live | undefined> {
  try {
    return await reader.get<Live>({ apiVersion: 'kiln.dev/v1alpha1', kind, namespace: ns, name });
  } catch {
    return undefined;
  }
}

const condition = (o: Live | undefined, type: string) => o?.status?.conditions?.find((c) => c.type === type);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-25).join('\n'));

async function readyAt(kind: string, name: string, generation?: number): Promise<Live> {
  return waitFor(`${kind}/${name} Ready`, async () => {
    const o = await getLive(kind, name);
    const ready = condition(o, 'Ready');
    const gen = generation ?? o?.metadata.generation;
    return ready?.status === 'True' && o!.status!.observedGeneration === gen && ready.observedGeneration === gen ? o : undefined;
  });
}

async function stalledWith(kind: string, name: string, reason: string): Promise<Live> {
  return waitFor(`${kind}/${name} Stalled ${reason}`, async () => {
    const o = await getLive(kind, name);
    const c = condition(o, 'Stalled');
    return c?.status === 'True' && c.reason === reason && o!.status!.observedGeneration === o!.metadata.generation ? o : undefined;
  });
}

/** What the controller computes: the revision of the live resource's render. */
function revisionOf(live: Live): string {
  const v = validate({ apiVersion: live.apiVersion, kind: live.kind, metadata: live.metadata, spec: live.spec });
  if (!v.ok) throw new Error('invalid');
  return `sha256:${digest(render(v.resource))}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Watch events in, reconciles done, the batch flushed, the status written. */
async function settle(m = manager): Promise<void> {
  await sleep(400);
  await m.queue.idle();
  await m.git!.flush();
  await m.queue.idle();
  await sleep(400);
  await m.queue.idle();
}

/** A render no chart produces: a Secret carrying a value, for the resource named `leaky`. */
function renderForTest(r: KilnResource): K8sObject[] {
  const objects = render(r);
  if (r.metadata.name !== 'leaky') return objects;
  return [...objects, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'leaky-admin', namespace: r.metadata.namespace }, stringData: { password: LEAKED } }];
}

let clones = 0;
function newManager(): Manager {
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  return new Manager({
    kc,
    namespaces: [ns],
    concurrency: 4,
    qps: 0,
    burst: 0,
    resyncSeconds: 2,
    version: 'test',
    log,
    sink: 'git',
    git: {
      repo: bare,
      branch: 'main',
      basePath: 'clusters',
      cluster: CLUSTER,
      workDir: join(tmp, `clone-${++clones}`),
      author: AUTHOR,
      debounceMs: 800,
      maxWaitMs: 5000,
      retryDelayMs: { base: 20, max: 200 },
      failureBackoffMs: { base: 500, max: 2000 },
      render: renderForTest,
      onFlush: (r) => reports.push(r),
    },
  });
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  reader = new KubeClient(kc, { qps: 0 });
  seed();
  await cp.kubectlOk(['create', 'namespace', ns]);
  manager = newManager();
  await manager.start();
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  rmSync(tmp, { recursive: true, force: true });
});

describe('git mode controller', () => {
  let first: string;

  it('three resources -> one commit with three directories; each is Ready naming that commit', async () => {
    expect(manager.children.size).toBe(0); // applies nothing, so watches no rendered objects
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: examples }) });
    const live = await Promise.all(examples.map((r) => readyAt(r.kind, r.metadata.name)));
    first = mainSha();
    expect(commitCount()).toBe(2);
    for (const o of live) {
      expect(o.status!.commit, `${o.kind} commit`).toBe(first);
      expect(o.status!.revision).toBe(revisionOf(o));
      expect(condition(o, 'Ready')).toMatchObject({ reason: 'Committed' });
      expect(condition(o, 'Stalled')?.status).toBe('False');
    }
    const manifests = treeFiles().filter((f) => f.endsWith('/manifest.yaml'));
    expect(manifests).toEqual([`${nsDir}/cachecluster/session-cache/manifest.yaml`, `${nsDir}/datagrid/sessions/manifest.yaml`, `${nsDir}/postgresinstance/orders-db/manifest.yaml`]);
    expect(treeFiles()).toContain('README.md');
    expect(subject()).toBe('kiln: 3 resources in test (3 added)');
    const body = git(bare, 'log', '-1', '--format=%B', 'main');
    for (const o of live) expect(body).toContain(`add ${o.kind} ${ns}/${o.metadata.name} generation ${o.metadata.generation}`);
    expect(git(bare, 'log', '-1', '--format=%an <%ae>', 'main').trim()).toBe('kiln bot <kiln-bot@example.com>');
    // The manifest is the resource's render, as kiln synth writes it.
    const cache = live.find((o) => o.kind === 'CacheCluster')!;
    expect(show(`${nsDir}/cachecluster/session-cache/manifest.yaml`)).toContain(`# Rendered by kiln from CacheCluster ${ns}/session-cache`);
    expect(show(`${nsDir}/cachecluster/session-cache/manifest.yaml`)).toContain(`replicas: ${(cache.spec as { size: number }).size}`);
  });

  it('a resync makes no commit and no status write', async () => {
    await settle();
    const before = mainSha();
    const reconciles = manager.reconciles;
    const flushes = reports.length;
    const writes: string[] = [];
    manager.client.onRequest = (verb, path) => {
      if (!['GET', 'LIST', 'WATCH'].includes(verb)) writes.push(`${verb} ${path}`);
    };
    try {
      // The informers resync every 2 s; a queued key is a resync too.
      await sleep(2500);
      for (const r of examples) manager.queue.add(`${r.kind}/${ns}/${r.metadata.name}`);
      await settle();
      expect(manager.reconciles - reconciles).toBeGreaterThanOrEqual(2 * examples.length);
      expect(writes).toEqual([]);
      expect(mainSha()).toBe(before);
      expect(reports.slice(flushes).filter((r) => r.commit)).toEqual([]);
    } finally {
      manager.client.onRequest = undefined;
    }
  });

  it('a restart (fresh clone) makes no commit and no API write', async () => {
    await manager.stop();
    const before = mainSha();
    manager = newManager();
    await manager.start();
    await settle();
    expect(manager.reconciles).toBeGreaterThanOrEqual(examples.length);
    expect(manager.client.counts).toMatchObject({ POST: 0, PUT: 0, PATCH: 0, DELETE: 0 });
    expect(mainSha()).toBe(before);
    for (const r of examples) expect((await getLive(r.kind, r.metadata.name))!.status!.commit).toBe(first);
  });

  it('one update -> one commit touching one manifest; only that resource names the new commit', async () => {
    const before = commitCount();
    const statusWrites: string[] = [];
    manager.client.onRequest = (verb, path) => {
      if (verb === 'PATCH' && path.endsWith('/status')) statusWrites.push(path);
    };
    await cp.kubectlOk(['patch', '-n', ns, 'cachecluster', 'session-cache', '--type=merge', '-p', JSON.stringify({ spec: { size: 6 } })]);
    const gen = (await getLive('CacheCluster', 'session-cache'))!.metadata.generation;
    const cache = await readyAt('CacheCluster', 'session-cache', gen);
    await settle();
    manager.client.onRequest = undefined;
    // One status write for the change: Ready with the new commit (none while it waited for the batch).
    expect(statusWrites).toEqual([`/apis/kiln.dev/v1alpha1/namespaces/${ns}/cacheclusters/session-cache/status`]);
    expect(commitCount()).toBe(before + 1);
    const sha = mainSha();
    expect(cache.status!.commit).toBe(sha);
    expect(cache.status!.revision).toBe(revisionOf(cache));
    expect(touched(sha)).toEqual(['clusters/hydrator.metadata', `${nsDir}/cachecluster/session-cache/manifest.yaml`]);
    expect(subject()).toBe(`kiln: update ${ns}/session-cache (CacheCluster, generation ${gen}) in test`);
    expect(show(`${nsDir}/cachecluster/session-cache/manifest.yaml`)).toContain('replicas: 6');
    for (const name of ['sessions', 'orders-db']) {
      const kind = name === 'sessions' ? 'DataGrid' : 'PostgresInstance';
      expect((await getLive(kind, name))!.status!.commit, name).toBe(first);
    }
  });

  it('the committed tree applies cleanly with kubectl apply --server-side --dry-run=server -k (what Flux does)', async () => {
    const clone = join(tmp, 'consumer');
    git(tmp, 'clone', '--quiet', '--branch', 'main', bare, clone);
    const r = await cp.kubectl(['apply', '--server-side', '--dry-run=server', '-k', join(clone, 'clusters', CLUSTER)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('statefulset.apps/session-cache serverside-applied (server dry run)');
    expect(r.stdout).toContain('statefulset.apps/orders-db serverside-applied (server dry run)');
    expect(r.stdout).toContain('configmap/session-cache-grid-sessions serverside-applied (server dry run)');
    // The base path's kustomization (all clusters) builds too.
    const all = await cp.kubectl(['kustomize', join(clone, 'clusters')]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toContain(`namespace: ${ns}`);
    // A dry run: nothing was created.
    expect((await cp.kubectl(['get', '-n', ns, 'statefulset', 'session-cache'])).code).not.toBe(0);
  });

  it('a push that fails -> Stalled with the reason; Ready with the commit once pushing works again', async () => {
    const hook = join(bare, 'hooks', 'pre-receive');
    writeFileSync(hook, '#!/bin/sh\necho "deploy repository frozen for the test" >&2\nexit 1\n');
    chmodSync(hook, 0o755);
    const before = mainSha();
    try {
      await cp.kubectlOk(['patch', '-n', ns, 'cachecluster', 'session-cache', '--type=merge', '-p', JSON.stringify({ spec: { size: 7 } })]);
      const stalled = await stalledWith('CacheCluster', 'session-cache', 'PushFailed');
      expect(condition(stalled, 'Ready')?.status).toBe('False');
      expect(condition(stalled, 'Stalled')!.message).toMatch(/pre-receive hook declined|frozen for the test/);
      // Still names what was delivered last.
      expect(stalled.status!.commit).toBe(before);
      expect(mainSha()).toBe(before);
    } finally {
      rmSync(hook);
    }
    const gen = (await getLive('CacheCluster', 'session-cache'))!.metadata.generation;
    const cache = await readyAt('CacheCluster', 'session-cache', gen);
    expect(cache.status!.commit).toBe(mainSha());
    expect(mainSha()).not.toBe(before);
    expect(show(`${nsDir}/cachecluster/session-cache/manifest.yaml`)).toContain('replicas: 7');
    expect(touched(mainSha())).toEqual(['clusters/hydrator.metadata', `${nsDir}/cachecluster/session-cache/manifest.yaml`]);
  });

  it('deleting a resource removes its directory in a new commit', async () => {
    const before = commitCount();
    await cp.kubectlOk(['delete', '-n', ns, 'postgresinstance', 'orders-db']);
    await waitFor('orders-db directory gone', () => !treeFiles().some((f) => f.startsWith(`${nsDir}/postgresinstance/`)));
    await settle();
    expect(commitCount()).toBe(before + 1);
    expect(subject()).toMatch(new RegExp(`^kiln: delete ${ns}/orders-db \\(PostgresInstance(, generation \\d+)?\\) in test$`));
    expect(show(`${nsDir}/kustomization.yaml`)).toMatch(/resources:\n {2}- cachecluster\n {2}- datagrid\n$/);
    expect(treeFiles()).toContain(`${nsDir}/datagrid/sessions/manifest.yaml`);
  });

  it('invalid, ConfigMapSync and a Secret with data in the render: Stalled with the reason, nothing committed', async () => {
    const before = mainSha();
    const sync = exampleResources()
      .map((e) => e.resource)
      .find((r) => r.kind === 'ConfigMapSync')!;
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'bad-grid', namespace: ns }, spec: { cache: 'session-cache', partitions: 12 } },
          { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'leaky', namespace: ns }, spec: { cache: 'session-cache' } },
          { ...sync, metadata: { ...sync.metadata, namespace: ns } },
        ],
      }),
    });
    const bad = await stalledWith('DataGrid', 'bad-grid', 'InvalidSpec');
    expect(condition(bad, 'Stalled')!.message).toContain('spec.partitions');
    const leaky = await stalledWith('DataGrid', 'leaky', 'SecretInRender');
    expect(condition(leaky, 'Stalled')!.message).toMatch(/Secret .*leaky-admin/);
    expect(condition(leaky, 'Stalled')!.message).not.toContain(LEAKED);
    const cms = await stalledWith('ConfigMapSync', sync.metadata.name, 'NotSupportedInGitMode');
    expect(condition(cms, 'Stalled')!.message).toBe(NOT_SUPPORTED_CONFIGMAPSYNC);
    await settle();
    expect(mainSha()).toBe(before);
    expect(treeFiles().some((f) => /bad-grid|leaky|configmapsync/.test(f))).toBe(false);
    expect(git(bare, 'log', '-p', '--all')).not.toContain(LEAKED);
  });
});

// ---------------------------------------------------------------- the command, over HTTP with a token

/**
 * Git over HTTP: `git http-backend` (CGI) behind a small server that accepts
 * only `Authorization: Basic base64(x-access-token:<token>)`.
 */
async function gitHttpServer(projectRoot: string, token: string): Promise<{ url: string; server: Server; authorized: () => number }> {
  const expected = `Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`;
  let authorized = 0;
  const server = createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="deploy"' }).end();
      return;
    }
    authorized++;
    const url = new URL(req.url ?? '/', 'http://localhost');
    const env: Record<string, string> = {
      ...gitEnv,
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      REMOTE_USER: 'kiln',
      REMOTE_ADDR: '127.0.0.1',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
    };
    if (req.headers['content-length']) env['CONTENT_LENGTH'] = req.headers['content-length'];
    if (req.headers['content-encoding']) env['HTTP_CONTENT_ENCODING'] = req.headers['content-encoding'];
    if (req.headers['git-protocol']) env['GIT_PROTOCOL'] = String(req.headers['git-protocol']);
    const cgi = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let body = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (body) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const crlf = head.indexOf('\r\n\r\n');
      const lf = head.indexOf('\n\n');
      const end = crlf >= 0 ? crlf + 4 : lf >= 0 ? lf + 2 : -1;
      if (end < 0) return;
      body = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/).filter(Boolean)) {
        const i = line.indexOf(':');
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
        else res.setHeader(name, value);
      }
      res.writeHead(status);
      res.write(head.subarray(end));
    });
    cgi.stdout.on('end', () => res.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, authorized: () => authorized };
}

describe('kiln controller --mode git (the command, a token, Git over HTTP)', () => {
  const token = `kiln-test-token-${randomBytes(12).toString('hex')}`;
  const basic = Buffer.from(`x-access-token:${token}`).toString('base64');
  const ns2 = `${ns}-cli`;
  const remote = join(tmp, 'http', 'deploy.git');
  let http: Awaited<ReturnType<typeof gitHttpServer>>;

  const run = (args: string[], tokenFile: string): { child: ChildProcess; output: () => string; exited: Promise<number | null> } => {
    let out = '';
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GIT_') && k !== 'KILN_GIT_TOKEN'));
    const child = spawn(
      process.execPath,
      [
        join(root, 'bin/kiln.js'),
        'controller',
        '--mode',
        'git',
        '--kubeconfig',
        cp.kubeconfig,
        '-n',
        ns2,
        '--repo',
        `${http.url}/deploy.git`,
        '--allow-insecure-http',
        '--branch',
        'main',
        '--cluster',
        'cli',
        '--git-token-file',
        tokenFile,
        '--author',
        'CLI bot <cli-bot@example.com>',
        '--debounce',
        '300',
        '--health-probe-bind-address',
        '0',
        '--metrics-bind-address',
        '0',
        ...args,
      ],
      { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    return { child, output: () => out, exited };
  };

  beforeAll(async () => {
    mkdirSync(join(tmp, 'http'), { recursive: true });
    seed(remote);
    http = await gitHttpServer(join(tmp, 'http'), token);
    await cp.kubectlOk(['create', 'namespace', ns2]);
  });

  afterAll(async () => {
    http?.server.close();
    await cp?.kubectl(['delete', 'namespace', ns2, '--wait=false']);
  });

  it('commits over HTTP with the token from --git-token-file; the token is in no log line', async () => {
    const tokenFile = join(tmp, 'token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const proc = run(['--work-dir', join(tmp, 'cli-clone')], tokenFile);
    try {
      await waitUntil('controller started', () => /leading; starting workers/.test(proc.output()) || (proc.child.exitCode !== null && 'exited'), 60_000, proc.output).then((v) => {
        if (v === 'exited') throw new Error(`controller exited:\n${proc.output()}`);
      });
      const cache = examples.find((r) => r.kind === 'CacheCluster')!;
      await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ ...cache, metadata: { ...cache.metadata, namespace: ns2 } }) });
      const live = await waitUntil(
        'CLI-committed cache Ready',
        async () => {
          const o = await reader.get<Live>({ apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', namespace: ns2, name: cache.metadata.name }).catch(() => undefined);
          return condition(o, 'Ready')?.status === 'True' ? o : undefined;
        },
        30_000,
        proc.output,
      );
      const tip = git(remote, 'rev-parse', 'main').trim();
      expect(live.status!.commit).toBe(tip);
      expect(git(remote, 'ls-tree', '-r', '--name-only', 'main')).toContain(`clusters/cli/${ns2}/cachecluster/session-cache/manifest.yaml`);
      expect(git(remote, 'log', '-1', '--format=%an <%ae>', 'main').trim()).toBe('CLI bot <cli-bot@example.com>');
      expect(http.authorized()).toBeGreaterThan(0);
      proc.child.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
    } finally {
      if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
    }
    const output = proc.output();
    expect(output).toContain('git batch committed');
    expect(output).not.toContain(token);
    expect(output).not.toContain(basic);
  });

  it('a wrong token: the command says why and exits 1, without printing the token', async () => {
    const wrong = `wrong-token-${randomBytes(12).toString('hex')}`;
    const tokenFile = join(tmp, 'wrong-token');
    writeFileSync(tokenFile, wrong, { mode: 0o600 });
    const proc = run(['--work-dir', join(tmp, 'cli-clone-wrong')], tokenFile);
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), 60_000);
    const code = await proc.exited;
    clearTimeout(timer);
    const output = proc.output();
    expect(code, output).toBe(1);
    expect(output).toMatch(/could not start/);
    expect(output).not.toContain(wrong);
    expect(output).not.toContain(Buffer.from(`x-access-token:${wrong}`).toString('base64'));
  });

  it('refuses git mode without a repository, or with a token file that cannot be read', async () => {
    const kiln = (args: string[]) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        const c = spawn(process.execPath, [join(root, 'bin/kiln.js'), 'controller', '--mode', 'git', ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.on('exit', (code) => resolve({ code, err }));
      });
    const noRepo = await kiln(['--branch', 'main']);
    expect(noRepo.code).toBe(2);
    expect(noRepo.err).toContain('--mode git needs --repo');
    const noFile = await kiln(['--repo', 'https://git.example.com/x.git', '--branch', 'main', '--cluster', 'x', '--git-token-file', join(tmp, 'missing')]);
    expect(noFile.code).toBe(2);
    expect(noFile.err).toContain('cannot read --git-token-file');
    // Trust boundary (issue #19): no shared default cluster directory, no token on the command line, no clear-text http.
    const noCluster = await kiln(['--repo', 'https://git.example.com/x.git', '--branch', 'main']);
    expect(noCluster.code).toBe(2);
    expect(noCluster.err).toContain('--mode git needs --cluster <name>');
    const inUrl = await kiln(['--repo', 'https://bot:ghp_0123456789@git.example.com/x.git', '--branch', 'main', '--cluster', 'x']);
    expect(inUrl.code).toBe(2);
    expect(inUrl.err).toMatch(/must not hold credentials.*--git-token-file/);
    expect(inUrl.err).not.toContain('ghp_0123456789');
    const clear = await kiln(['--repo', 'http://git.example.com/x.git', '--branch', 'main', '--cluster', 'x']);
    expect(clear.code).toBe(2);
    expect(clear.err).toMatch(/plain http:\/\/.*--allow-insecure-http/);
  });
});
