/**
 * The Git boundary, attacked (issue #19): what someone with push access, or an
 * operator's slip, can make kiln commit, read or delete. Real bare
 * repositories and real git; `kiln synth --git` runs as a process.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { GitBatcher, type ResourceResult } from '../../gitops/batcher.js';
import type { LayoutOptions, RenderedResource } from '../../gitops/layout.js';
import { GitRepoWriter } from '../../gitops/repo.js';
import { GitSink } from '../../controller/git/sink.js';
import { initBareRepo, plainGit } from '../harness/git.js';

const root = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-git-boundary-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const LAYOUT: LayoutOptions = { basePath: 'clusters', cluster: 'dev' };
const git = (cwd: string, ...args: string[]): string => plainGit(cwd, args);
let n = 0;
const fresh = (what: string): string => join(tmp, `${what}-${++n}`);

function remote(): string {
  const bare = fresh('remote') + '.git';
  initBareRepo(bare, tmp);
  return bare;
}

/** Someone with push access: a clone of the remote, changed by `edit`, committed and pushed. */
function push(bare: string, edit: (clone: string) => void, message = 'other: change'): void {
  const clone = fresh('pusher');
  git(tmp, 'clone', '--quiet', bare, clone);
  edit(clone);
  git(clone, 'add', '-A', '--force');
  git(clone, 'commit', '--quiet', '-m', message);
  git(clone, 'push', '--quiet', 'origin', 'HEAD:main');
}

const resource = (name: string, value = name): RenderedResource => ({
  kind: 'CacheCluster',
  namespace: 'web',
  name,
  generation: 1,
  objects: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'web' }, data: { value } }],
});

const writerFor = (bare: string): GitRepoWriter => new GitRepoWriter({ url: bare, branch: 'main', workDir: fresh('clone'), basePath: LAYOUT.basePath, retryDelayMs: { base: 10, max: 50 } });
const treeModes = (bare: string): Map<string, string> =>
  new Map(
    git(bare, 'ls-tree', '-r', 'main')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.split('\t')[1]!, l.split(' ')[0]!]),
  );

describe('a hostile repository', () => {
  it('a manifest committed as a symbolic link to a secret file: kiln never reads it, replaces the link and says so', async () => {
    const secretFile = join(fresh('secrets'), 'token');
    mkdirSync(join(secretFile, '..'), { recursive: true });
    const SECRET = `eyJhbGciOi-${Math.random().toString(36).slice(2)}-SERVICE-ACCOUNT-TOKEN`;
    writeFileSync(secretFile, `${SECRET}\n`);
    const bare = remote();
    push(
      bare,
      (clone) => {
        for (const name of ['a', 'b']) {
          mkdirSync(join(clone, 'clusters/dev/web/cachecluster', name), { recursive: true });
          symlinkSync(secretFile, join(clone, 'clusters/dev/web/cachecluster', name, 'manifest.yaml'));
        }
        symlinkSync(secretFile, join(clone, 'clusters/hydrator.metadata'));
      },
      'attacker: links to the token',
    );
    expect(treeModes(bare).get('clusters/dev/web/cachecluster/a/manifest.yaml')).toBe('120000');

    const writer = writerFor(bare);
    const batcher = await GitBatcher.start({ writer, layout: LAYOUT, debounceMs: 20 });
    // `b` is not a resource of this cluster: only `a` is upserted.
    const pending = batcher.upsert(resource('a'));
    await batcher.flush();
    const result: ResourceResult = await pending;

    expect(git(bare, 'log', '-p', '--all')).not.toContain(SECRET);
    expect(writer.readFile('clusters/dev/web/cachecluster/b/manifest.yaml')).toBeUndefined();
    const modes = treeModes(bare);
    expect(modes.get('clusters/dev/web/cachecluster/a/manifest.yaml')).toBe('100644');
    expect([...modes.values()]).not.toContain('120000');
    expect(modes.has('clusters/dev/web/cachecluster/b/manifest.yaml')).toBe(false);
    expect(result.state).toBe('committed');
    expect(result.warning).toMatch(/clusters\/dev\/web\/cachecluster\/a\/manifest\.yaml \(git mode 120000\).*did not read it/);
  });

  it("the base path itself pushed as a link to a directory of secrets: replaced by kiln's tree, nothing read", async () => {
    const secrets = fresh('secret-dir');
    mkdirSync(join(secrets, 'dev/web/cachecluster/a'), { recursive: true });
    const SECRET = `db-password-${Math.random().toString(36).slice(2)}`;
    writeFileSync(join(secrets, 'dev/web/cachecluster/a/manifest.yaml'), `${SECRET}\n`);
    const bare = remote();
    push(bare, (clone) => symlinkSync(secrets, join(clone, 'clusters')));
    const writer = writerFor(bare);
    const batcher = await GitBatcher.start({ writer, layout: LAYOUT, debounceMs: 20 });
    expect(batcher.resources()).toEqual([]);
    const pending = batcher.upsert(resource('b'));
    await batcher.flush();
    const result = await pending;
    expect(result.state).toBe('committed');
    expect(result.warning).toMatch(/clusters \(git mode 120000\)/);
    expect(git(bare, 'log', '-p', '--all')).not.toContain(SECRET);
    const modes = treeModes(bare);
    expect(modes.get('clusters/dev/web/cachecluster/b/manifest.yaml')).toBe('100644');
    expect([...modes.values()]).not.toContain('120000');
  });

  it('a symbolic link above the base path: the controller refuses to start, naming it, and writes nothing', async () => {
    const outside = fresh('outside');
    mkdirSync(outside);
    const bare = remote();
    push(bare, (clone) => symlinkSync(outside, join(clone, 'deploy')));
    const writer = new GitRepoWriter({ url: bare, branch: 'main', workDir: fresh('clone'), basePath: 'deploy/clusters' });
    const err = await GitBatcher.start({ writer, layout: { basePath: 'deploy/clusters', cluster: 'dev' } }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/deploy in main is a symbolic link \(git mode 120000\)/);
    expect(readdirSync(outside)).toEqual([]);
  });

  it('kiln synth --git with a symlinked parent of the base path: nothing written or deleted outside the work tree', () => {
    const tree = fresh('tree');
    const outside = fresh('outside');
    mkdirSync(tree);
    mkdirSync(join(outside, 'kiln/c/old/cachecluster/x'), { recursive: true });
    writeFileSync(join(outside, 'kiln/c/old/cachecluster/x/manifest.yaml'), 'precious: true\n');
    symlinkSync(outside, join(tree, 'deploy'));
    const run = spawnSync(process.execPath, [join(root, 'bin/kiln.js'), 'synth', 'examples/cache', '--git', tree, '--base-path', 'deploy/kiln', '--cluster', 'c', '-q'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/refusing deploy: it is a symbolic link/);
    expect(readFileSync(join(outside, 'kiln/c/old/cachecluster/x/manifest.yaml'), 'utf8')).toBe('precious: true\n');
    expect(readdirSync(join(outside, 'kiln/c'))).toEqual(['old']);
  });
});

describe('operator error', () => {
  async function seeded(names: string[], identity?: string): Promise<string> {
    const bare = remote();
    const sink = new GitSink({ repo: bare, branch: 'main', basePath: 'clusters', cluster: 'prod', workDir: fresh('clone'), debounceMs: 10 }, () => undefined);
    await sink.start([], [], identity);
    await Promise.all([...names.map((name) => sink.upsert(resource(name))), sink.flush()]);
    await sink.close();
    return bare;
  }
  const manifests = (bare: string): string[] => [...treeModes(bare).keys()].filter((p) => p.endsWith('/manifest.yaml'));

  it("a second cluster (another identity) with the same --cluster: refused naming both identities, the first cluster's tree stays", async () => {
    const bare = await seeded(['a', 'b', 'c'], 'uid-of-cluster-one');
    expect(git(bare, 'show', 'main:clusters/prod/.kiln-cluster').trim()).toBe('uid-of-cluster-one');
    const before = git(bare, 'rev-parse', 'main').trim();
    const second = new GitSink({ repo: bare, branch: 'main', basePath: 'clusters', cluster: 'prod', workDir: fresh('clone'), debounceMs: 10 }, () => undefined);
    // It has one of the three (so the mass-delete guard alone would let it through).
    const err = await second.start([{ kind: 'CacheCluster', namespace: 'web', name: 'a' }], [], 'uid-of-cluster-two').catch((e: unknown) => e);
    expect(String(err)).toMatch(/clusters\/prod belongs to cluster "uid-of-cluster-one".*runs against cluster uid-of-cluster-two/);
    await second.flush().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    expect(git(bare, 'rev-parse', 'main').trim()).toBe(before);
    expect(manifests(bare)).toHaveLength(3);
  });

  it("start-up that would delete most of the cluster's resources is refused without --allow-mass-delete", async () => {
    const bare = await seeded(['a', 'b']);
    const before = git(bare, 'rev-parse', 'main').trim();
    const sink = new GitSink({ repo: bare, branch: 'main', basePath: 'clusters', cluster: 'prod', workDir: fresh('clone'), debounceMs: 10 }, () => undefined);
    const err = await sink.start([], []).catch((e: unknown) => e);
    expect(String(err)).toMatch(/would delete 2 of the 2 resources under clusters\/prod .*--allow-mass-delete/);
    await sink.flush().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    expect(git(bare, 'rev-parse', 'main').trim()).toBe(before);

    const allowed = new GitSink({ repo: bare, branch: 'main', basePath: 'clusters', cluster: 'prod', workDir: fresh('clone'), debounceMs: 10, allowMassDelete: true }, () => undefined);
    await allowed.start([], []);
    await allowed.close();
    expect(manifests(bare)).toEqual([]);
  });

  it("a .gitignore covering kiln's paths: the manifest is committed anyway (never Committed without it)", async () => {
    const bare = remote();
    push(bare, (clone) => writeFileSync(join(clone, '.gitignore'), 'clusters/\n*.yaml\n'));
    const writer = writerFor(bare);
    const batcher = await GitBatcher.start({ writer, layout: LAYOUT, debounceMs: 20 });
    const pending = batcher.upsert(resource('a'));
    await batcher.flush();
    const result = await pending;
    expect(result.state).toBe('committed');
    expect(result.sha).toBe(git(bare, 'rev-parse', 'main').trim());
    expect(git(bare, 'show', 'main:clusters/dev/web/cachecluster/a/manifest.yaml')).toContain('value: a');
    expect(treeModes(bare).has('clusters/dev/web/cachecluster/a/kustomization.yaml')).toBe(true);
  });

  it('a stalled transfer fails: the clone has http.lowSpeedLimit and lowSpeedTime', async () => {
    const writer = writerFor(remote());
    await writer.sync();
    const config = readFileSync(join(writer.workDir, '.git', 'config'), 'utf8');
    expect(config).toMatch(/lowSpeedLimit = "?1024"?/);
    expect(config).toMatch(/lowSpeedTime = "?60"?/);
    expect(config).toMatch(/symlinks = "?false"?/);
    expect(existsSync(writer.workDir)).toBe(true);
  });
});
