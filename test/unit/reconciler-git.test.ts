/**
 * The git-mode reconciler's decisions, on the in-memory API server
 * (kube/fake-client.ts) with real informers, committing through the real
 * GitSink into a bare repository in a temporary directory (plain git, no
 * network): what it commits, what it refuses, and what its status says.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KILN_API_VERSION, KILN_KINDS } from '../../kinds/api.js';
import { GitReconciler } from '../../controller/git/reconciler.js';
import { GitSink } from '../../controller/git/sink.js';
import { EventRecorder } from '../../kube/events.js';
import { FakeKubeClient, type FakeObject } from '../../kube/fake-client.js';
import { Informer, slim } from '../../kube/informer.js';
import type { Condition } from '../../kube/status.js';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { initBareRepo, plainGit } from '../harness/git.js';
import { conditionsOnly, parseApplyAfter } from '../../controller/apply-after.js';
import { APPLY_AFTER_ANNOTATION } from '../../kinds/api.js';
import { kindDefinition } from '../../kinds/registry.js';
import { render } from '../../kinds/render.js';
import { validate } from '../../validate/index.js';
import { exampleResources } from './fixtures.js';

type Live = FakeObject & { status?: { observedGeneration?: number; conditions?: Condition[]; commit?: string; revision?: string } };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function harness(seed: FakeObject[], opts: { render?: (r: KilnResource) => K8sObject[]; clone?: string; dir?: string; present?: { kind: string; namespace: string; name: string }[] } = {}) {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'kiln-git-reconciler-'));
  const bare = join(dir, 'remote.git');
  if (!opts.dir) {
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    initBareRepo(bare, dir);
  }
  const fake = new FakeKubeClient(seed);
  const resources = new Map<string, Informer>();
  for (const k of KILN_KINDS) resources.set(k.kind, new Informer(fake, { ...k, resyncSeconds: 0, transform: slim }));
  // The Jobs Flux applied, as the manager watches them in git mode.
  const jobs = new Informer(fake, { apiVersion: 'batch/v1', kind: 'Job', labelSelector: 'app.kubernetes.io/managed-by=kiln', resyncSeconds: 0, transform: conditionsOnly });
  const waited = new Map([['batch/v1/Job', jobs]]);
  await Promise.all([...resources.values(), jobs].map((i) => i.start()));
  const log = () => undefined;
  const sink = new GitSink(
    { repo: bare, branch: 'main', basePath: 'clusters', cluster: 'prod', workDir: join(dir, opts.clone ?? 'clone'), debounceMs: 10, maxPushAttempts: 1, retryDelayMs: { base: 1, max: 1 } },
    log,
  );
  await sink.start(opts.present ?? [], []);
  cleanups.push(async () => {
    [...resources.values(), jobs].forEach((i) => i.stop());
    await sink.close().catch(() => undefined);
  });
  // The queue: each requeue of a key resolves the next `requeued()`.
  const waiting: ((key: string) => void)[] = [];
  const requeued = () => new Promise<string>((resolve) => waiting.push(resolve));
  const reconciler = new GitReconciler({
    client: fake,
    resources,
    sink,
    log,
    events: new EventRecorder(fake, 'kiln-controller', 'test', log),
    requeue: (key) => waiting.shift()?.(key),
    failureBackoffMs: { base: 60_000, max: 60_000 },
    ...(opts.render ? { render: opts.render } : {}),
    waited,
  });
  jobs.on((_event, obj) => reconciler.waitedChanged(obj));
  const main = () => plainGit(dir, ['--git-dir', bare, 'rev-parse', 'main']).trim();
  const show = (path: string) => plainGit(dir, ['--git-dir', bare, 'show', `main:${path}`]);
  const files = () => plainGit(dir, ['--git-dir', bare, 'ls-tree', '-r', '--name-only', 'main']).split('\n').filter(Boolean);
  return { fake, reconciler, requeued, main, show, files, bare, dir };
}

const GRID = { apiVersion: KILN_API_VERSION, kind: 'DataGrid', metadata: { name: 'sessions', namespace: 'web' }, spec: { cache: 'session-cache', gridType: 'Session', partitions: 31 } };
const GRID_KEY = 'DataGrid/web/sessions';
const gridRef = { apiVersion: KILN_API_VERSION, kind: 'DataGrid', namespace: 'web', name: 'sessions' };
const MANIFEST = 'clusters/prod/web/datagrid/sessions/manifest.yaml';
const condition = (live: Live | undefined, type: string) => live?.status?.conditions?.find((c) => c.type === type);

describe('git reconciler on the fake API server and a real repository', () => {
  it('hands the render to the batcher, and once pushed says the commit in the status: Ready, reason Committed', async () => {
    const { fake, reconciler, requeued, main, show } = await harness([GRID]);
    const flushed = requeued();
    const first = await reconciler.reconcile(GRID_KEY);
    expect(first).toMatchObject({ queued: true, statusWritten: false });
    expect(await flushed).toBe(GRID_KEY);
    expect(show(MANIFEST)).toContain('name: session-cache-grid-sessions');
    const second = await reconciler.reconcile(GRID_KEY);
    expect(second).toMatchObject({ queued: false, statusWritten: true });
    const grid = fake.peek<Live>(gridRef)!;
    expect(grid.status?.commit).toBe(main());
    expect(grid.status?.revision).toMatch(/^sha256:/);
    expect(condition(grid, 'Ready')).toMatchObject({ status: 'True', reason: 'Committed', observedGeneration: 1 });
    expect(condition(grid, 'Ready')!.message).toContain(`in ${main().slice(0, 12)}`);
  });

  it('an unchanged resource: no commit and no status write on the next reconciles', async () => {
    const { fake, reconciler, requeued, main } = await harness([GRID]);
    const flushed = requeued();
    await reconciler.reconcile(GRID_KEY);
    await flushed;
    expect(await reconciler.reconcile(GRID_KEY)).toMatchObject({ statusWritten: true });
    const head = main();
    const since = fake.actions.length;
    // At once (the cache does not hold the status just written yet), and once the watch brought it.
    expect(await reconciler.reconcile(GRID_KEY)).toMatchObject({ queued: false, statusWritten: false });
    await fake.settled();
    expect(await reconciler.reconcile(GRID_KEY)).toMatchObject({ queued: false, statusWritten: false });
    await fake.settled();
    const writes = fake.actions.slice(since).filter((a) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(a.verb) && a.resource !== 'events');
    expect(writes).toEqual([]);
    expect(main()).toBe(head);
  });

  it('an invalid spec: Stalled InvalidSpec naming the field, nothing committed', async () => {
    const bad = { apiVersion: KILN_API_VERSION, kind: 'DirectoryService', metadata: { name: 'bad-replicas', namespace: 'web' }, spec: { replicas: -1, image: 'ds:7' } };
    const { fake, reconciler, main, files } = await harness([bad]);
    const head = main();
    const r = await reconciler.reconcile('DirectoryService/web/bad-replicas');
    expect(r).toMatchObject({ queued: false, statusWritten: true });
    const stalled = condition(fake.peek<Live>({ apiVersion: KILN_API_VERSION, kind: 'DirectoryService', namespace: 'web', name: 'bad-replicas' }), 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect(stalled.message).toContain('spec.replicas');
    expect(main()).toBe(head);
    expect(files()).toEqual(['README.md']);
  });

  it('a render carrying Secret data: Stalled SecretInRender, nothing committed', async () => {
    const withSecret = (r: KilnResource): K8sObject[] => [
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: `${r.metadata.name}-creds`, namespace: r.metadata.namespace }, data: { password: 'c2VjcmV0' } },
    ];
    const { fake, reconciler, main } = await harness([GRID], { render: withSecret });
    const head = main();
    const r = await reconciler.reconcile(GRID_KEY);
    expect(r.queued).toBe(false);
    expect(condition(fake.peek<Live>(gridRef), 'Stalled')).toMatchObject({ status: 'True', reason: 'SecretInRender' });
    expect(main()).toBe(head);
  });

  it('ConfigMapSync: Stalled NotSupportedInGitMode', async () => {
    const sync = {
      apiVersion: KILN_API_VERSION,
      kind: 'ConfigMapSync',
      metadata: { name: 'settings', namespace: 'web' },
      spec: { source: { name: 'x' }, targets: { namespaces: ['a'] }, serviceAccountName: 'sync' },
    };
    const { fake, reconciler } = await harness([sync]);
    await reconciler.reconcile('ConfigMapSync/web/settings');
    const stalled = condition(fake.peek<Live>({ apiVersion: KILN_API_VERSION, kind: 'ConfigMapSync', namespace: 'web', name: 'settings' }), 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'NotSupportedInGitMode' });
    expect(stalled.message).toContain('not supported in git mode');
  });

  it('a deleted resource: its directory leaves the tree', async () => {
    const { fake, reconciler, requeued, files } = await harness([GRID]);
    const flushed = requeued();
    await reconciler.reconcile(GRID_KEY);
    await flushed;
    expect(files()).toContain(MANIFEST);
    await fake.delete(gridRef);
    await fake.settled();
    expect(await reconciler.reconcile(GRID_KEY)).toMatchObject({ queued: true });
    // The deletion goes with the next batch (debounced); wait for it to be pushed.
    for (let i = 0; i < 100 && files().includes(MANIFEST); i++) await new Promise((r) => setTimeout(r, 50));
    expect(files()).not.toContain(MANIFEST);
  });

  it("a push that fails: Stalled PushFailed with the writer's message, retried after the backoff", async () => {
    const { fake, reconciler, requeued, bare } = await harness([GRID]);
    rmSync(bare, { recursive: true, force: true });
    const flushed = requeued();
    await reconciler.reconcile(GRID_KEY);
    await flushed;
    const r = await reconciler.reconcile(GRID_KEY);
    expect(r.requeueAfterMs).toBeGreaterThan(30_000);
    const stalled = condition(fake.peek<Live>(gridRef), 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'PushFailed' });
    expect(stalled.message.length).toBeGreaterThan(0);
  });
});

describe('git reconciler: an object that waits for a condition in the cluster', () => {
  const RESTORE = { apiVersion: KILN_API_VERSION, kind: 'DirectoryRestore', metadata: { name: 'r', namespace: 'web' }, spec: { backup: 'nightly', image: 'ds:7' } };
  const KEY = 'DirectoryRestore/web/r';
  const ref = { apiVersion: KILN_API_VERSION, kind: 'DirectoryRestore', namespace: 'web', name: 'r' };
  const RESTORE_MANIFEST = 'clusters/prod/web/directoryrestore/r/manifest.yaml';
  const jobRef = { apiVersion: 'batch/v1', kind: 'Job', namespace: 'web', name: 'r-restore' };
  // The Job as Flux applies it: kiln's labels, from the committed manifest.
  const job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'r-restore', namespace: 'web', labels: { 'app.kubernetes.io/managed-by': 'kiln' } }, spec: {} };
  const complete = {
    status: {
      conditions: [
        { type: 'SuccessCriteriaMet', status: 'True' },
        { type: 'Complete', status: 'True' },
      ],
    },
  };

  it("a restore's VolumeSnapshot is left out of the commit until its Job is Complete in the cluster, then committed, and stays when the Job goes (a restart too)", async () => {
    const { fake, reconciler, requeued, show, main, dir } = await harness([RESTORE]);
    let flushed = requeued();
    await reconciler.reconcile(KEY);
    expect(await flushed).toBe(KEY);
    expect(show(RESTORE_MANIFEST)).toContain('kind: Job');
    expect(show(RESTORE_MANIFEST)).toContain('kind: PersistentVolumeClaim');
    expect(show(RESTORE_MANIFEST)).not.toContain('kind: VolumeSnapshot');
    const waiting = await reconciler.reconcile(KEY);
    expect(waiting).toMatchObject({ statusWritten: true, requeueAfterMs: 10_000 });
    let live = fake.peek<Live>(ref)!;
    expect(condition(live, 'Ready')).toMatchObject({ status: 'False' });
    expect(condition(live, 'Reconciling')).toMatchObject({ status: 'True', reason: 'Waiting' });
    expect(condition(live, 'Reconciling')!.message).toContain(`committed to main in ${main().slice(0, 12)}; VolumeSnapshot/r-restore waits for batch/v1/Job/r-restore:Complete in the cluster`);
    expect(live.status!.commit).toBe(main());

    // The Job appears (Flux applied it) and runs: the restore is queued, and still waits.
    let queued = requeued();
    await fake.create(job);
    expect(await queued).toBe(KEY);
    expect(await reconciler.reconcile(KEY)).toMatchObject({ queued: false, requeueAfterMs: 10_000 });
    const before = main();

    // Complete: queued again, the snapshot goes into the next commit, and the status is Ready.
    queued = requeued();
    await fake.mergePatch(jobRef, complete, 'status');
    expect(await queued).toBe(KEY);
    flushed = requeued();
    expect(await reconciler.reconcile(KEY)).toMatchObject({ queued: true });
    expect(await flushed).toBe(KEY);
    expect(main()).not.toBe(before);
    expect(show(RESTORE_MANIFEST)).toContain('kind: VolumeSnapshot');
    const ready = await reconciler.reconcile(KEY);
    expect(ready.requeueAfterMs).toBeUndefined();
    live = fake.peek<Live>(ref)!;
    expect(condition(live, 'Ready')).toMatchObject({ status: 'True', reason: 'Committed' });
    expect(live.status!.commit).toBe(main());

    // The Job is deleted (by hand, or a TTL): the snapshot stays in the tree.
    const head = main();
    await fake.delete(jobRef);
    await fake.settled();
    expect(await reconciler.reconcile(KEY)).toMatchObject({ queued: false });
    expect(main()).toBe(head);
    expect(condition(fake.peek<Live>(ref), 'Ready')).toMatchObject({ status: 'True' });

    // A restart (a new process, a fresh clone) with no Job in the cluster: the repository holds the snapshot, so it stays.
    const again = await harness([{ ...RESTORE, status: live.status }], { dir, clone: 'clone-2', present: [{ kind: 'DirectoryRestore', namespace: 'web', name: 'r' }] });
    const flushedAgain = again.requeued();
    expect(await again.reconciler.reconcile(KEY)).toMatchObject({ queued: true });
    expect(await flushedAgain).toBe(KEY);
    expect(main()).toBe(head);
    expect(show(RESTORE_MANIFEST)).toContain('kind: VolumeSnapshot');
  });

  it('every kind whose render carries kiln.dev/apply-after declares the kind it waits for (waitsFor), so git mode watches it', () => {
    let found = 0;
    for (const { resource } of exampleResources()) {
      const v = validate(resource);
      // ConfigMapSync renders only with its source at hand; it waits for nothing.
      if (!v.ok || resource.kind === 'ConfigMapSync') continue;
      for (const o of render(v.resource)) {
        const after = o.metadata.annotations?.[APPLY_AFTER_ANNOTATION];
        if (!after) continue;
        found++;
        const dep = parseApplyAfter(after)!;
        expect(kindDefinition(resource.kind)?.waitsFor, resource.kind).toContainEqual({ apiVersion: dep.apiVersion, kind: dep.kind });
      }
    }
    expect(found).toBeGreaterThan(0);
  });

  it("a Job that is not kiln's (no managed-by=kiln label) does not release the snapshot", async () => {
    const { fake, reconciler, requeued, show } = await harness([RESTORE]);
    const flushed = requeued();
    await reconciler.reconcile(KEY);
    await flushed;
    await fake.create({ ...job, metadata: { name: 'r-restore', namespace: 'web' } });
    await fake.mergePatch(jobRef, complete, 'status');
    await fake.settled();
    expect(await reconciler.reconcile(KEY)).toMatchObject({ queued: false, requeueAfterMs: 10_000 });
    expect(show(RESTORE_MANIFEST)).not.toContain('kind: VolumeSnapshot');
  });
});
