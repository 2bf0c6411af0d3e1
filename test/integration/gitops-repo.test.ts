/**
 * Git mode against real Git: bare repositories on disk (made with
 * `git init --bare --initial-branch=main`, seeded with one commit), kiln's
 * writer and batcher pushing to them, another writer racing it, and
 * `kiln synth --git` run as a process. No cluster is involved (the
 * integration project's global setup starts one anyway; it is not used here).
 */
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { render } from '../../kinds/render.js';
import type { KilnResource } from '../../kinds/types.js';
import { validate } from '../../validate/index.js';
import { contextFromObjects, type PlainObject } from '../../lib/context.js';
import { renderDocument } from '../../lib/render-document.js';
import { parseYamlStream } from '../../lib/yaml.js';
import { GitBatcher, type FlushReport } from '../../gitops/batcher.js';
import { layoutTree, refKey, type LayoutOptions, type RenderedResource } from '../../gitops/layout.js';
import { GitRepoWriter, GitWriterError } from '../../gitops/repo.js';
import { testToken } from '../harness/secrets.js';
import { initBareRepo, otherWriterCommit, plainGit } from '../harness/git.js';

const root = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-gitops-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const LAYOUT: LayoutOptions = { basePath: 'clusters', cluster: 'dev' };
const AUTHOR = { name: 'kiln bot', email: 'kiln-bot@example.com' };

// ---------------------------------------------------------------- plain git helpers

const OTHER = { name: 'other writer', email: 'other@example.com' };
const git = (cwd: string, ...args: string[]): string => plainGit(cwd, args, OTHER);

let repos = 0;
/** A bare repository with one seed commit (README.md), and its path. */
function seededRemote(seed = true): string {
  const n = ++repos;
  const bare = join(tmp, `remote-${n}.git`);
  initBareRepo(bare, tmp, { seed, identity: OTHER });
  return bare;
}

/** Subjects on main, newest first. */
const subjects = (bare: string): string[] => git(bare, 'log', '--format=%s', 'main').trim().split('\n');
const commitCount = (bare: string): number => Number(git(bare, 'rev-list', '--count', 'main').trim());
const treeFiles = (bare: string, ref = 'main'): string[] => git(bare, 'ls-tree', '-r', '--name-only', ref).trim().split('\n').filter(Boolean);
const show = (bare: string, path: string, ref = 'main'): string => git(bare, 'show', `${ref}:${path}`);
const touched = (bare: string, sha: string): string[] => git(bare, 'diff-tree', '--no-commit-id', '--name-only', '-r', sha).trim().split('\n').filter(Boolean);
const mainSha = (bare: string): string => git(bare, 'rev-parse', 'main').trim();

let clones = 0;
const workDir = (): string => join(tmp, `kiln-clone-${++clones}`);

// ---------------------------------------------------------------- resources

function validated(doc: unknown): KilnResource {
  const v = validate(doc);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.resource;
}

function renderDoc(doc: object): RenderedResource {
  const r = validated(doc);
  const namespace = r.metadata.namespace ?? 'default';
  return { kind: r.kind, namespace, name: r.metadata.name, generation: r.metadata.generation, objects: render({ ...r, metadata: { ...r.metadata, namespace } }) };
}

const cache = (name: string, size = 3, generation = 1, namespace = 'web'): RenderedResource =>
  renderDoc({
    apiVersion: 'kiln.dev/v1alpha1',
    kind: 'CacheCluster',
    metadata: { name, namespace, generation },
    spec: { size, catalogServers: 1, capacity: '1Gi', image: 'registry.example.com/cache/xsld:8.6.1', entrypointConfigMap: `${name}-entrypoint` },
  });

const pgInstance = (name: string, generation = 1): RenderedResource =>
  renderDoc({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name, namespace: 'shop', generation }, spec: { version: 16, storage: { size: '10Gi' } } });

const pgDatabase = (name: string): RenderedResource =>
  renderDoc({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name, namespace: 'shop', generation: 1 }, spec: { instance: 'orders-db', name, owner: `${name}_app` } });

/** A cheap resource for bulk tests: one ConfigMap. */
const small = (name: string, value: string, generation = 1): RenderedResource => ({
  kind: 'ConfigMapSync',
  namespace: 'bulk',
  name,
  generation,
  objects: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'bulk' }, data: { value } }],
});

const kustomizationResources = (text: string): string[] => {
  const m = /resources:\n((?: {2}- .*\n)*)/.exec(text);
  if (/resources: \[\]/.test(text)) return [];
  return (m?.[1] ?? '')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(/^ {2}- /, ''));
};

async function startBatcher(bare: string, extra: Partial<Parameters<typeof GitBatcher.start>[0]> = {}): Promise<{ batcher: GitBatcher; writer: GitRepoWriter; reports: FlushReport[] }> {
  const writer = new GitRepoWriter({ url: bare, branch: 'main', workDir: workDir(), basePath: LAYOUT.basePath, retryDelayMs: { base: 20, max: 200 } });
  const reports: FlushReport[] = [];
  const batcher = await GitBatcher.start({ writer, layout: LAYOUT, author: AUTHOR, debounceMs: 150, maxWaitMs: 2000, onFlush: (r) => reports.push(r), ...extra });
  return { batcher, writer, reports };
}

// ---------------------------------------------------------------- layout (pure)

describe('gitops layout', () => {
  it('lays out manifests and a kustomization.yaml at every level, sorted; no directory for a resource rendering nothing', () => {
    const tree = layoutTree([cache('b'), cache('a'), pgInstance('orders-db'), pgDatabase('orders')], LAYOUT);
    expect(tree.errors).toEqual([]);
    expect(tree.empty.map(refKey)).toEqual(['PostgresDatabase/shop/orders']);
    expect([...tree.files.keys()]).toEqual([
      'clusters/dev/kustomization.yaml',
      'clusters/dev/shop/kustomization.yaml',
      'clusters/dev/shop/postgresinstance/kustomization.yaml',
      'clusters/dev/shop/postgresinstance/orders-db/kustomization.yaml',
      'clusters/dev/shop/postgresinstance/orders-db/manifest.yaml',
      'clusters/dev/web/cachecluster/a/kustomization.yaml',
      'clusters/dev/web/cachecluster/a/manifest.yaml',
      'clusters/dev/web/cachecluster/b/kustomization.yaml',
      'clusters/dev/web/cachecluster/b/manifest.yaml',
      'clusters/dev/web/cachecluster/kustomization.yaml',
      'clusters/dev/web/kustomization.yaml',
      'clusters/kustomization.yaml',
    ]);
    const k = (p: string): string[] => kustomizationResources(tree.files.get(`clusters/${p}kustomization.yaml`)!);
    expect(k('')).toEqual(['dev']);
    expect(k('dev/')).toEqual(['shop', 'web']);
    expect(k('dev/web/cachecluster/')).toEqual(['a', 'b']);
    expect(k('dev/web/cachecluster/a/')).toEqual(['manifest.yaml']);
    expect(tree.files.get('clusters/dev/web/kustomization.yaml')).toMatch(
      /^# Generated by kiln; do not edit\.\napiVersion: kustomize\.config\.k8s\.io\/v1beta1\nkind: Kustomization\nresources:\n {2}- cachecluster\n$/,
    );
    const manifest = tree.files.get('clusters/dev/web/cachecluster/a/manifest.yaml')!;
    expect(manifest.startsWith('# Rendered by kiln from CacheCluster web/a; do not edit.\n')).toBe(true);
    // Deterministic: the same input gives the same bytes.
    expect(layoutTree([cache('a'), cache('b'), pgInstance('orders-db')], LAYOUT).files).toEqual(layoutTree([pgInstance('orders-db'), cache('b'), cache('a')], LAYOUT).files);
    // Nothing at all still gives a base and a cluster kustomization (consumers keep working).
    expect([...layoutTree([], LAYOUT).files.keys()]).toEqual(['clusters/dev/kustomization.yaml', 'clusters/kustomization.yaml']);
  });

  it('refuses a rendered Secret carrying data or stringData', () => {
    const secret = (field: 'data' | 'stringData'): RenderedResource => ({
      kind: 'DirectoryService',
      namespace: 'id',
      name: `leaky-${field.toLowerCase()}`,
      generation: 1,
      objects: [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'id' }, [field]: { password: 'hunter2' } }],
    });
    const tree = layoutTree([secret('data'), secret('stringData'), cache('fine')], LAYOUT);
    expect(tree.errors.map((e) => refKey(e.resource))).toEqual(['DirectoryService/id/leaky-data', 'DirectoryService/id/leaky-stringdata']);
    expect(tree.errors[0]!.reason).toMatch(/Secret id\/creds carries data/);
    expect([...tree.files.keys()].some((p) => p.includes('leaky'))).toBe(false);
    expect([...tree.files.values()].some((c) => c.includes('hunter2'))).toBe(false);
  });
});

// ---------------------------------------------------------------- batcher + writer

describe('git mode: batched commits to a bare repository', () => {
  const bare = seededRemote();
  let ctx: Awaited<ReturnType<typeof startBatcher>>;

  it('three resources -> one commit with three directories and kustomization.yaml files at each level', async () => {
    ctx = await startBatcher(bare);
    const results = await Promise.all([
      ctx.batcher.upsert(cache('session-cache', 3, 4)),
      ctx.batcher.upsert(cache('catalog', 5, 2)),
      ctx.batcher.upsert(pgInstance('orders-db', 7)),
      ctx.batcher.upsert(pgDatabase('orders')), // renders nothing: no directory
    ]);
    expect(commitCount(bare)).toBe(2);
    const sha = mainSha(bare);
    expect(results.map((r) => [r.state, r.sha])).toEqual(Array(4).fill(['committed', sha]));
    const files = treeFiles(bare);
    expect(files).toContain('README.md');
    const kiln = files.filter((f) => f.startsWith('clusters/'));
    expect(kiln.filter((f) => f.endsWith('/manifest.yaml'))).toEqual([
      'clusters/dev/shop/postgresinstance/orders-db/manifest.yaml',
      'clusters/dev/web/cachecluster/catalog/manifest.yaml',
      'clusters/dev/web/cachecluster/session-cache/manifest.yaml',
    ]);
    // A kustomization.yaml in every directory from the base path down.
    const dirs = new Set(
      kiln.flatMap((f) =>
        f
          .split('/')
          .slice(0, -1)
          .map((_, i, parts) => parts.slice(0, i + 1).join('/')),
      ),
    );
    for (const d of dirs) expect(kiln, d).toContain(`${d}/kustomization.yaml`);
    expect(dirs.size).toBe(9);
    expect(kiln).toContain('clusters/hydrator.metadata');
    expect(kustomizationResources(show(bare, 'clusters/dev/kustomization.yaml'))).toEqual(['shop', 'web']);

    const message = git(bare, 'log', '-1', '--format=%B', 'main');
    expect(message.split('\n')[0]).toBe('kiln: 3 resources in dev (3 added)');
    expect(message).toContain('add CacheCluster web/session-cache generation 4');
    expect(message).toContain('add CacheCluster web/catalog generation 2');
    expect(message).toContain('add PostgresInstance shop/orders-db generation 7');
    expect(git(bare, 'log', '-1', '--format=%an <%ae>|%cn', 'main').trim()).toBe('kiln bot <kiln-bot@example.com>|kiln');

    const meta = JSON.parse(show(bare, 'clusters/hydrator.metadata')) as Record<string, unknown> & { kiln: { resources: { name: string; generation: number; action: string; path: string }[] } };
    expect(meta).toMatchObject({ repoURL: bare, author: 'kiln bot <kiln-bot@example.com>', subject: 'kiln: 3 resources in dev (3 added)' });
    expect(meta['body']).toContain('add CacheCluster web/catalog generation 2');
    expect(Date.parse(meta['date'] as string)).toBeGreaterThan(0);
    expect(meta.kiln.resources.map((r) => `${r.action} ${r.name}@${r.generation} ${r.path}`)).toEqual([
      'add catalog@2 clusters/dev/web/cachecluster/catalog',
      'add session-cache@4 clusters/dev/web/cachecluster/session-cache',
      'add orders-db@7 clusters/dev/shop/postgresinstance/orders-db',
    ]);
  });

  it('a second flush with nothing changed -> no commit', async () => {
    const before = mainSha(bare);
    const results = await Promise.all([
      ctx.batcher.upsert(cache('session-cache', 3, 4)),
      ctx.batcher.upsert(cache('catalog', 5, 3)), // a new generation that renders the same objects
      ctx.batcher.upsert(pgInstance('orders-db', 7)),
    ]);
    expect(mainSha(bare)).toBe(before);
    expect(results.every((r) => r.state === 'committed' && r.sha === before && r.changed === false)).toBe(true);
    expect(ctx.reports.at(-1)!.commit).toBeUndefined();
    // An explicit flush with nothing pending does nothing either.
    expect((await ctx.batcher.flush()).results).toEqual([]);
    expect(mainSha(bare)).toBe(before);
  });

  it('one update -> one commit touching one manifest', async () => {
    const before = commitCount(bare);
    const r = await ctx.batcher.upsert(cache('catalog', 6, 5));
    expect(commitCount(bare)).toBe(before + 1);
    expect(r).toMatchObject({ state: 'committed', changed: true, sha: mainSha(bare), generation: 5 });
    expect(touched(bare, r.sha!)).toEqual(['clusters/dev/web/cachecluster/catalog/manifest.yaml', 'clusters/hydrator.metadata']);
    expect(git(bare, 'log', '-1', '--format=%s', 'main').trim()).toBe('kiln: update web/catalog (CacheCluster, generation 5) in dev');
    expect(show(bare, 'clusters/dev/web/cachecluster/catalog/manifest.yaml')).toContain('replicas: 6');
  });

  it('a deletion -> its directory is gone, and the kustomization above no longer lists it', async () => {
    const r = await ctx.batcher.delete({ kind: 'PostgresInstance', namespace: 'shop', name: 'orders-db', generation: 8 });
    expect(r).toMatchObject({ state: 'committed', changed: true, sha: mainSha(bare) });
    const files = treeFiles(bare);
    expect(files.some((f) => f.startsWith('clusters/dev/shop/'))).toBe(false);
    expect(kustomizationResources(show(bare, 'clusters/dev/kustomization.yaml'))).toEqual(['web']);
    expect(git(bare, 'log', '-1', '--format=%s', 'main').trim()).toBe('kiln: delete shop/orders-db (PostgresInstance, generation 8) in dev');
    expect(files).toContain('README.md');
  });

  it('a rendered Secret with data is refused and not committed; the rest of its batch is', async () => {
    const before = commitCount(bare);
    const leaky: RenderedResource = {
      kind: 'DirectoryService',
      namespace: 'identity',
      name: 'leaky',
      generation: 1,
      objects: [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'leaky-admin', namespace: 'identity' }, stringData: { password: 'correct-horse-battery-staple' } }],
    };
    const alone = await ctx.batcher.upsert(leaky);
    expect(alone).toMatchObject({ state: 'refused' });
    expect(alone.reason).toMatch(/Secret identity\/leaky-admin carries data/);
    expect(commitCount(bare)).toBe(before);
    const [refused, fine] = await Promise.all([ctx.batcher.upsert(leaky), ctx.batcher.upsert(cache('fine'))]);
    expect(refused.state).toBe('refused');
    expect(fine.state).toBe('committed');
    expect(commitCount(bare)).toBe(before + 1);
    expect(treeFiles(bare).some((f) => f.includes('leaky'))).toBe(false);
    expect(git(bare, 'log', '-p', '--all')).not.toContain('correct-horse-battery-staple');
  });

  it('500 changes in one burst -> at most 3 commits', async () => {
    const before = commitCount(bare);
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 500; i++) {
      pending.push(ctx.batcher.upsert(small(`item-${String(i).padStart(3, '0')}`, `v${i}`)));
      if (i % 25 === 24) await new Promise((r) => setTimeout(r, 5)); // arriving over ~100 ms, as a controller would
    }
    await Promise.all(pending);
    const commits = commitCount(bare) - before;
    expect(commits).toBeGreaterThanOrEqual(1);
    expect(commits).toBeLessThanOrEqual(3);
    const manifests = treeFiles(bare).filter((f) => f.startsWith('clusters/dev/bulk/') && f.endsWith('manifest.yaml'));
    expect(manifests).toHaveLength(500);
    expect(kustomizationResources(show(bare, 'clusters/dev/bulk/configmapsync/kustomization.yaml'))).toHaveLength(500);
  });

  it('flushes at most maxWait after the first change while changes keep coming', async () => {
    const { batcher } = await startBatcher(bare, { debounceMs: 400, maxWaitMs: 600 });
    const before = commitCount(bare);
    const pending: Promise<unknown>[] = [];
    const started = Date.now();
    for (let i = 0; Date.now() - started < 1500; i++) {
      pending.push(batcher.upsert(small('ticker', `tick ${i}`, i + 1)));
      await new Promise((r) => setTimeout(r, 50));
    }
    await Promise.all(pending);
    await batcher.close();
    const commits = commitCount(bare) - before;
    expect(commits).toBeGreaterThanOrEqual(2); // a debounce alone would have waited for the end
    expect(commits).toBeLessThanOrEqual(5);
  });

  it('a restarted writer starts from the tree in the repository: one change touches one directory', async () => {
    const { batcher } = await startBatcher(bare);
    expect(batcher.resources().map(refKey)).toContain('CacheCluster/web/session-cache');
    const manifests = treeFiles(bare).filter((f) => f.endsWith('manifest.yaml')).length;
    expect(manifests).toBeGreaterThan(500);
    const r = await batcher.upsert(cache('session-cache', 4, 9));
    expect(touched(bare, r.sha!)).toEqual(['clusters/dev/web/cachecluster/session-cache/manifest.yaml', 'clusters/hydrator.metadata']);
    expect(treeFiles(bare).filter((f) => f.endsWith('manifest.yaml'))).toHaveLength(manifests);
    // A full resync naming only some resources deletes the others.
    const deleted = await batcher.retain([{ kind: 'CacheCluster', namespace: 'web', name: 'session-cache' }]);
    expect(deleted).toHaveLength(manifests - 1);
    expect(new Set(deleted.map((d) => d.sha)).size).toBe(1);
    expect(treeFiles(bare).filter((f) => f.endsWith('manifest.yaml'))).toEqual(['clusters/dev/web/cachecluster/session-cache/manifest.yaml']);
    await batcher.close();
    await ctx.batcher.close();
  });
});

describe('git mode: failures', () => {
  it('a push that fails reports the batch failed; the next flush starts from the remote and carries it', async () => {
    const bare = seededRemote();
    const { batcher } = await startBatcher(bare);
    await batcher.upsert(small('kept', '1'));
    const away = `${bare}.away`;
    renameSync(bare, away);
    const failed = await batcher.upsert(small('late', '1', 3));
    expect(failed).toMatchObject({ state: 'failed', name: 'late' });
    expect(failed.reason).toMatch(/push to main failed/);
    renameSync(away, bare);
    const next = await batcher.upsert(small('later', '1'));
    expect(next.state).toBe('committed');
    expect(treeFiles(bare).filter((f) => f.endsWith('manifest.yaml'))).toEqual([
      'clusters/dev/bulk/configmapsync/kept/manifest.yaml',
      'clusters/dev/bulk/configmapsync/late/manifest.yaml',
      'clusters/dev/bulk/configmapsync/later/manifest.yaml',
    ]);
    const message = git(bare, 'log', '-1', '--format=%B', 'main');
    expect(message).toContain('add ConfigMapSync bulk/late generation 3');
    expect(message).toContain('add ConfigMapSync bulk/later generation 1');
    expect(commitCount(bare)).toBe(3);
    await batcher.close();
  });
});

describe('git mode: the repository writer', () => {
  it('review branch: starts from the target branch, pushes to <branch>-next, leaves the target alone', async () => {
    const bare = seededRemote();
    const target = mainSha(bare);
    const writer = await GitRepoWriter.open({ url: bare, branch: 'main-next', baseBranch: 'main', workDir: workDir(), basePath: 'clusters' });
    expect(await writer.head()).toBe(target);
    await writer.writeTree(layoutTree([small('reviewed', '1')], LAYOUT).files);
    const sha = await writer.commit('kiln: for review', AUTHOR);
    expect((await writer.push()).sha).toBe(sha);
    expect(mainSha(bare)).toBe(target);
    expect(git(bare, 'rev-parse', 'main-next').trim()).toBe(sha);
    expect(git(bare, 'rev-parse', 'main-next~1').trim()).toBe(target);
  });

  it('creates the branch on the first push when the remote is empty', async () => {
    const bare = seededRemote(false);
    const writer = await GitRepoWriter.open({ url: bare, branch: 'main', workDir: workDir(), basePath: 'clusters' });
    expect(await writer.head()).toBeUndefined();
    const { files } = layoutTree([cache('first')], LAYOUT);
    expect((await writer.writeTree(files)).changed).toBe(true);
    const sha = await writer.commit('kiln: first', AUTHOR);
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    expect(await writer.commit('kiln: nothing', AUTHOR)).toBeUndefined();
    expect((await writer.push()).sha).toBe(sha);
    expect(mainSha(bare)).toBe(sha);
    // Writing outside the owned path is refused.
    await expect(writer.writeTree(new Map([['README.md', 'x']]))).rejects.toThrow(/not a plain path under clusters\//);
    await expect(writer.writeTree(new Map(), 'elsewhere')).rejects.toThrow(/only writes under clusters\//);
  });

  it("another writer pushes between kiln's commit and push, 50 times -> kiln rebases and pushes every time; no commit is lost", async () => {
    const bare = seededRemote();
    const writer = await GitRepoWriter.open({ url: bare, branch: 'main', workDir: workDir(), basePath: 'clusters', retryDelayMs: { base: 10, max: 100 } });
    const other = join(tmp, 'other-writer');
    git(tmp, 'clone', '--quiet', bare, other);
    const started = Date.now();
    let rebased = 0;
    let rewritten = 0;
    let lastFiles = new Map<string, string>();
    for (let i = 0; i < 50; i++) {
      lastFiles = layoutTree([small('racer', `kiln ${i}`, i + 1), small('steady', 'same')], LAYOUT).files;
      await writer.writeTree(lastFiles);
      expect(await writer.commit(`kiln: round ${i}`, AUTHOR)).toBeDefined();

      // The other writer, up to date with the remote, pushes first.
      git(other, 'pull', '--quiet', '--rebase', 'origin', 'main');
      // Every tenth round edits, inside kiln's base path, the very file kiln just changed: the rebase conflicts.
      otherWriterCommit(other, i, i % 10 === 5, git);
      git(other, 'push', '--quiet', 'origin', 'HEAD:main');

      const result = await writer.push();
      expect(result.attempts, `round ${i}`).toBeGreaterThanOrEqual(2);
      rebased += result.rebased;
      rewritten += result.rewritten;
      expect(mainSha(bare)).toBe(result.sha);
    }
    const all = subjects(bare);
    for (let i = 0; i < 50; i++) {
      expect(all, `kiln round ${i}`).toContain(`kiln: round ${i}`);
      expect(all, `other round ${i}`).toContain(`other: round ${i}`);
    }
    expect(all).toContain('seed');
    expect(rewritten).toBe(5);
    expect(rebased).toBe(45);
    // History is linear: every commit of both writers is on main, none merged away.
    expect(git(bare, 'rev-list', '--merges', '--count', 'main').trim()).toBe('0');
    // kiln's tree is kiln's; the other writer's files outside it are untouched.
    for (const [path, content] of lastFiles) expect(show(bare, path)).toBe(content);
    expect(treeFiles(bare).filter((f) => f.startsWith('apps/'))).toHaveLength(45);
    console.log(`[gitops] 50 raced pushes in ${Date.now() - started} ms (${rebased} rebased, ${rewritten} re-written after a conflict)`);
  });

  it("a clean rebase that brings another writer's edit to kiln's tree is followed by a commit restoring it", async () => {
    const bare = seededRemote();
    const writer = await GitRepoWriter.open({ url: bare, branch: 'main', workDir: workDir(), basePath: 'clusters', retryDelayMs: { base: 1, max: 5 } });
    const files = layoutTree([small('a', '1'), small('b', '1')], LAYOUT).files;
    await writer.writeTree(files);
    await writer.commit('kiln: a and b', AUTHOR);
    await writer.push();
    const files2 = layoutTree([small('a', '2'), small('b', '1')], LAYOUT).files;
    await writer.writeTree(files2);
    await writer.commit('kiln: a to 2', AUTHOR);
    const other = join(tmp, 'other-writer-2');
    git(tmp, 'clone', '--quiet', bare, other);
    writeFileSync(join(other, 'clusters/dev/bulk/configmapsync/b/manifest.yaml'), '# edited by hand\n');
    git(other, 'commit', '--quiet', '-am', 'other: edit b');
    git(other, 'push', '--quiet', 'origin', 'HEAD:main');
    const result = await writer.push();
    expect(result.rebased).toBe(1);
    expect(subjects(bare).slice(0, 3)).toEqual(['kiln: restore the rendered tree under clusters/ after a rebase', 'kiln: a to 2', 'other: edit b']);
    for (const [path, content] of files2) expect(show(bare, path)).toBe(content);
  });

  it('a conflict outside the base path is reported, not resolved', async () => {
    const bare = seededRemote();
    const writer = await GitRepoWriter.open({ url: bare, branch: 'main', workDir: workDir(), basePath: 'clusters', maxPushAttempts: 3, retryDelayMs: { base: 1, max: 5 } });
    // A local commit outside kiln's path cannot come from kiln; make one by hand to provoke it.
    writeFileSync(join(writer.workDir, 'README.md'), '# kiln side\n');
    git(writer.workDir, 'commit', '--quiet', '-am', 'local edit outside');
    await writer.writeTree(layoutTree([small('x', '1')], LAYOUT).files);
    await writer.commit('kiln: x', AUTHOR);
    const other = join(tmp, 'other-writer-3');
    git(tmp, 'clone', '--quiet', bare, other);
    writeFileSync(join(other, 'README.md'), '# other side\n');
    git(other, 'commit', '--quiet', '-am', 'other: readme');
    git(other, 'push', '--quiet', 'origin', 'HEAD:main');
    const err = await writer.push().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitWriterError);
    expect((err as GitWriterError).reason).toBe('conflict');
    expect((err as Error).message).toMatch(/conflicts outside clusters\/ \(README\.md\)/);
    expect(subjects(bare)[0]).toBe('other: readme');
    // The clone is left usable: no rebase in progress.
    expect(existsSync(join(writer.workDir, '.git', 'rebase-merge'))).toBe(false);
  });

  it("sends the token only as an http.extraHeader: never in errors, logs, the clone's config", async () => {
    const token = testToken('repo');
    const seen: (string | undefined)[] = [];
    const server: Server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end(`forbidden for ${req.headers.authorization ?? 'nobody'}\n`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const logs: string[] = [];
    const dir = workDir();
    try {
      const writer = new GitRepoWriter({
        url: `http://127.0.0.1:${port}/org/deploy.git`,
        allowInsecureHttp: true,
        branch: 'main',
        workDir: dir,
        basePath: 'clusters',
        auth: { token },
        log: (level, msg, fields) => logs.push(JSON.stringify({ level, msg, ...fields })),
      });
      const err = await writer.sync().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GitWriterError);
      const text = `${(err as Error).message}\n${(err as Error).stack}`;
      expect(seen.length).toBeGreaterThan(0);
      const basic = Buffer.from(`x-access-token:${token}`).toString('base64');
      expect(seen[0]).toBe(`Basic ${basic}`);
      for (const s of [token, basic]) {
        expect(text).not.toContain(s);
        expect(logs.join('\n')).not.toContain(s);
        expect(readFileSync(join(dir, '.git', 'config'), 'utf8')).not.toContain(s);
      }
      // Credentials written into the URL are refused (they would show in the process list), without echoing them.
      const fromUrl = (() => {
        try {
          return new GitRepoWriter({ url: `http://bot:${token}@127.0.0.1:${port}/org/deploy.git`, allowInsecureHttp: true, branch: 'main', workDir: workDir(), basePath: 'clusters' });
        } catch (e) {
          return e as Error;
        }
      })();
      expect(fromUrl).toBeInstanceOf(Error);
      expect((fromUrl as Error).message).toMatch(/must not hold credentials/);
      expect((fromUrl as Error).message).not.toContain(token);
      const writer2 = new GitRepoWriter({ url: `http://127.0.0.1:${port}/org/deploy.git`, allowInsecureHttp: true, branch: 'main', workDir: workDir(), basePath: 'clusters', auth: { token } });
      expect(writer2.scrub(`x https://bot:${token}@h/x Authorization: Basic ${basic} ${token}`)).not.toMatch(new RegExp(`${token}|${basic}`));
    } finally {
      server.close();
    }
  });
});

describe('kiln synth --git', () => {
  it('writes the layout into a working tree: same manifests as synth, kustomizations, nothing outside the base path touched', () => {
    const tree = join(tmp, 'preview');
    mkdirSync(join(tree, 'clusters/default/old/cachecluster/gone'), { recursive: true });
    writeFileSync(join(tree, 'clusters/default/old/cachecluster/gone/manifest.yaml'), 'stale\n');
    writeFileSync(join(tree, 'README.md'), 'mine\n');
    const run = spawnSync(process.execPath, [join(root, 'bin/kiln.js'), 'synth', 'examples', '--git', tree], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    const files = readdirSync(tree, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => join(d.parentPath, d.name).slice(tree.length + 1))
      .sort();
    expect(files.filter((f) => f.endsWith('manifest.yaml'))).toEqual([
      // examples/grids: its GridTemplate renders nothing, so has no directory.
      'clusters/default/catalog/cachecluster/catalog-cache/manifest.yaml',
      'clusters/default/catalog/datagrid/prices/manifest.yaml',
      'clusters/default/catalog/datagrid/products/manifest.yaml',
      'clusters/default/identity/directorybackup/idrepo-nightly/manifest.yaml',
      'clusters/default/identity/directoryrestore/idrepo-restore/manifest.yaml',
      'clusters/default/identity/directoryservice/ds-idrepo/manifest.yaml',
      'clusters/default/platform/configmapsync/ca-bundle/manifest.yaml',
      'clusters/default/platform/etcdcluster/config-store/manifest.yaml',
      'clusters/default/quickstart/configmapsync/app-settings/manifest.yaml',
      'clusters/default/quickstart/postgresinstance/app-db/manifest.yaml',
      'clusters/default/shop/postgresinstance/orders-db/manifest.yaml',
      'clusters/default/web/cachecluster/session-cache/manifest.yaml',
      'clusters/default/web/datagrid/sessions/manifest.yaml',
      'clusters/default/web/memcached/session-memcached/manifest.yaml',
    ]);
    expect(files).toContain('README.md');
    expect(readFileSync(join(tree, 'README.md'), 'utf8')).toBe('mine\n');
    expect(files.some((f) => f.includes('/old/'))).toBe(false);
    expect(files.filter((f) => f.endsWith('kustomization.yaml'))).toHaveLength(files.filter((f) => f.startsWith('clusters/')).length - 14);
    expect(kustomizationResources(readFileSync(join(tree, 'clusters/default/kustomization.yaml'), 'utf8'))).toEqual(['catalog', 'identity', 'platform', 'quickstart', 'shop', 'web']);

    // The manifests are byte-for-byte what plain `kiln synth` writes, and what the batcher commits.
    const doc = parseYamlStream(readFileSync(join(root, 'examples/cache/cache.yaml'), 'utf8'))[0]!.value;
    // Its members mount the DataGrid that names it (kinds/kind.ts reads): synth passes it as an input.
    const grid = parseYamlStream(readFileSync(join(root, 'examples/cache/grid.yaml'), 'utf8'))[0]!.value as PlainObject;
    const context = contextFromObjects(validated(doc), [grid]);
    const synthOutcome = renderDocument(doc, context);
    if (!('yaml' in synthOutcome)) throw new Error('example does not render');
    const previewed = readFileSync(join(tree, 'clusters/default/web/cachecluster/session-cache/manifest.yaml'), 'utf8');
    expect(previewed).toBe(synthOutcome.yaml);
    const committed = layoutTree([{ kind: 'CacheCluster', namespace: 'web', name: 'session-cache', objects: render(validated(doc), context) }], { basePath: 'clusters', cluster: 'default' });
    expect(committed.files.get('clusters/default/web/cachecluster/session-cache/manifest.yaml')).toBe(previewed);

    // --cluster and --base-path.
    const tree2 = join(tmp, 'preview-2');
    const run2 = spawnSync(process.execPath, [join(root, 'bin/kiln.js'), 'synth', 'examples/cache', '--git', tree2, '--cluster', 'prod-eu', '--base-path', 'deploy/kiln', '-q'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run2.status, run2.stderr).toBe(0);
    expect(existsSync(join(tree2, 'deploy/kiln/prod-eu/web/cachecluster/session-cache/manifest.yaml'))).toBe(true);
    expect(kustomizationResources(readFileSync(join(tree2, 'deploy/kiln/kustomization.yaml'), 'utf8'))).toEqual(['prod-eu']);
    const bad = spawnSync(process.execPath, [join(root, 'bin/kiln.js'), 'synth', 'examples', '--git', tree2, '--base-path', '../escape'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(2);
  });
});
