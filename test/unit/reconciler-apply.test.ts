/**
 * The apply-mode reconciler's decisions, on the in-memory API server
 * (kube/fake-client.ts) with real informers wired as the manager wires them:
 * what it applies, what it prunes, what it refuses, and what its status says.
 * The same flows run against the real kube-apiserver in test/integration/.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CHILD_KINDS, KILN_API_VERSION, KILN_KINDS } from '../../kinds/api.js';
import { APPLYSET_ID, childCodec, DESIRED_DIGEST, OwnWrites, PART_OF, projectChild } from '../../controller/apply/applyset.js';
import { Reconciler } from '../../controller/apply/reconciler.js';
import { ApiError } from '../../kube/errors.js';
import { EventRecorder } from '../../kube/events.js';
import { FakeKubeClient, type FakeObject } from '../../kube/fake-client.js';
import { Informer, slim } from '../../kube/informer.js';
import type { Condition } from '../../kube/status.js';

type Live = FakeObject & { status?: { observedGeneration?: number; conditions?: Condition[]; inventory?: unknown[] } };

const stops: (() => void)[] = [];
afterEach(() => stops.splice(0).forEach((s) => s()));

/** A reconciler on a fake API server, its caches filled by informers as the manager builds them. */
async function harness(seed: FakeObject[] = [], opts: { foreignNames?: boolean } = {}) {
  const fake = new FakeKubeClient(seed);
  const ownWrites = new OwnWrites();
  const resources = new Map<string, Informer>();
  const children = new Map<string, Informer>();
  const foreign = new Map<string, Informer>();
  for (const k of KILN_KINDS) resources.set(k.kind, new Informer(fake, { ...k, resyncSeconds: 0, transform: slim }));
  for (const k of CHILD_KINDS) {
    children.set(
      `${k.apiVersion}/${k.kind}`,
      new Informer(fake, { ...k, labelSelector: 'app.kubernetes.io/managed-by=kiln', resyncSeconds: 0, transform: (o) => projectChild(o, ownWrites), codec: childCodec, indexLabel: PART_OF }),
    );
    // As the manager wires them: everyone else's objects of the kind, names only.
    if (opts.foreignNames) foreign.set(`${k.apiVersion}/${k.kind}`, new Informer(fake, { ...k, labelSelector: 'app.kubernetes.io/managed-by!=kiln', metadataOnly: true, resyncSeconds: 0 }));
  }
  const informers = [...resources.values(), ...children.values(), ...foreign.values()];
  await Promise.all(informers.map((i) => i.start()));
  stops.push(() => informers.forEach((i) => i.stop()));
  const log = () => undefined;
  const reconciler = () =>
    new Reconciler({
      client: fake,
      resources,
      children,
      ...(opts.foreignNames ? { foreign } : {}),
      ownWrites,
      version: 'test',
      log,
      events: new EventRecorder(fake, 'kiln-controller', 'test', log),
      custom: { kc: { server: 'http://127.0.0.1:1' }, fieldManager: 'kiln', log, requeue: () => undefined },
    });
  return { fake, reconciler, ownWrites };
}

const GRID = { apiVersion: KILN_API_VERSION, kind: 'DataGrid', metadata: { name: 'sessions', namespace: 'web' }, spec: { cache: 'session-cache', gridType: 'Session', partitions: 31 } };
const GRID_KEY = 'DataGrid/web/sessions';
const gridRef = { apiVersion: KILN_API_VERSION, kind: 'DataGrid', namespace: 'web', name: 'sessions' };
const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'web', name });
const condition = (live: Live | undefined, type: string) => live?.status?.conditions?.find((c) => c.type === type);
const events = (fake: FakeKubeClient) => fake.objects<FakeObject & { reason: string; message: string }>({ apiVersion: 'v1', kind: 'Event', namespace: 'web' }).map((e) => `${e.reason}: ${e.message}`);

describe('apply reconciler on the fake API server', () => {
  it('applies the rendered ConfigMap as a controlled ApplySet member and writes Ready and Synced for the generation', async () => {
    const { fake, reconciler } = await harness([GRID]);
    const r = await reconciler().reconcile(GRID_KEY);
    expect(r).toMatchObject({ applied: 1, pruned: 0, statusWritten: true });
    const grid = fake.peek<Live>(gridRef)!;
    const cm = fake.peek(configMap('session-cache-grid-sessions'))!;
    expect(cm.metadata['ownerReferences']).toEqual([{ apiVersion: KILN_API_VERSION, kind: 'DataGrid', name: 'sessions', uid: grid.metadata.uid, controller: true, blockOwnerDeletion: true }]);
    expect(cm.metadata.labels?.[PART_OF]).toBe(grid.metadata.labels?.[APPLYSET_ID]);
    expect(cm.metadata.annotations?.[DESIRED_DIGEST]).toBeDefined();
    expect(fake.actions.filter((a) => a.op === 'apply' && a.resource === 'configmaps').map((a) => a.fieldManager)).toEqual(['kiln']);
    expect(grid.status?.observedGeneration).toBe(1);
    expect(condition(grid, 'Ready')).toMatchObject({ status: 'True', reason: 'Applied', observedGeneration: 1 });
    expect(condition(grid, 'Synced')).toMatchObject({ status: 'True', observedGeneration: 1 });
    expect(condition(grid, 'Reconciling')).toMatchObject({ status: 'False' });
    await fake.settled();
    expect(events(fake)).toEqual(['Applied: applied 1 of 1 objects']);
  });

  it('writes nothing when nothing changed, neither on the next reconcile nor after a restart (a fresh reconciler trusts the owned-fields digests its status recorded)', async () => {
    const { fake, reconciler } = await harness([GRID]);
    await reconciler().reconcile(GRID_KEY);
    await fake.settled();
    const writes = fake.writes();
    const again = await reconciler().reconcile(GRID_KEY);
    expect(again).toMatchObject({ applied: 0, pruned: 0, statusWritten: false });
    const same = reconciler();
    await same.reconcile(GRID_KEY);
    await fake.settled();
    expect(await same.reconcile(GRID_KEY)).toMatchObject({ applied: 0, statusWritten: false });
    expect(fake.writes()).toBe(writes);
  });

  it('a member whose owned-fields digest the status does not record is read and compared, not re-applied', async () => {
    const { fake, reconciler } = await harness([GRID]);
    await reconciler().reconcile(GRID_KEY);
    await fake.mergePatch(gridRef, { status: { inventory: null } }, 'status');
    await fake.settled();
    const before = fake.actions.length;
    const r = await reconciler().reconcile(GRID_KEY);
    expect(r).toMatchObject({ applied: 0, statusWritten: true });
    expect(fake.actions.slice(before).filter((a) => a.op === 'get' && a.name === 'session-cache-grid-sessions')).toHaveLength(1);
    expect(fake.peek<Live>(gridRef)!.status?.inventory).toEqual([expect.objectContaining({ name: 'session-cache-grid-sessions', ownedFieldsDigest: expect.any(String) })]);
  });

  it('re-applies a field another writer took over (owned-fields drift)', async () => {
    const { fake, reconciler } = await harness([GRID]);
    const rec = reconciler();
    await rec.reconcile(GRID_KEY);
    await fake.settled();
    await fake.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'session-cache-grid-sessions', namespace: 'web' }, data: { 'grid.json': 'edited by hand' } }, 'kubectl');
    await fake.settled();
    const r = await rec.reconcile(GRID_KEY);
    expect(r.applied).toBe(1);
    expect(fake.peek<FakeObject & { data: Record<string, string> }>(configMap('session-cache-grid-sessions'))!.data['grid.json']).toContain('"partitions": 31');
  });

  it('an invalid spec: Stalled naming the field, nothing applied, one Warning event', async () => {
    const bad = { apiVersion: KILN_API_VERSION, kind: 'DirectoryService', metadata: { name: 'bad-replicas', namespace: 'web' }, spec: { replicas: -1, image: 'ds:7' } };
    const { fake, reconciler } = await harness([bad]);
    const rec = reconciler();
    const r = await rec.reconcile('DirectoryService/web/bad-replicas');
    expect(r).toMatchObject({ applied: 0, statusWritten: true });
    const live = fake.peek<Live>({ apiVersion: KILN_API_VERSION, kind: 'DirectoryService', namespace: 'web', name: 'bad-replicas' });
    expect(condition(live, 'Stalled')).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect(condition(live, 'Stalled')!.message).toContain('spec.replicas');
    expect(condition(live, 'Ready')).toMatchObject({ status: 'False', reason: 'InvalidSpec', observedGeneration: 1 });
    expect(fake.actions.filter((a) => a.op === 'apply' && !a.subresource)).toEqual([]);
    await fake.settled();
    // A resync of the same stalled resource writes nothing and records no second event.
    await rec.reconcile('DirectoryService/web/bad-replicas');
    await fake.settled();
    expect(events(fake).filter((e) => e.startsWith('InvalidSpec'))).toHaveLength(1);
  });

  it("with the names of everyone else's objects cached, creates a new resource's members without reading them first", async () => {
    const { fake, reconciler } = await harness([GRID], { foreignNames: true });
    const r = await reconciler().reconcile(GRID_KEY);
    expect(r).toMatchObject({ applied: 1, statusWritten: true });
    expect(fake.actions.filter((a) => a.op === 'get' && a.resource === 'configmaps')).toEqual([]);
    expect(fake.peek(configMap('session-cache-grid-sessions'))).toBeDefined();
  });

  it("with the names of everyone else's objects cached, still refuses a name an unlabelled object holds (read first, ConflictingObject)", async () => {
    const tenant = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'session-cache-grid-sessions', namespace: 'web' }, data: { mine: 'yes' } };
    const { fake, reconciler } = await harness([GRID, tenant], { foreignNames: true });
    const r = await reconciler().reconcile(GRID_KEY);
    expect(r).toMatchObject({ applied: 0, requeueAfterMs: 60_000 });
    expect(condition(fake.peek<Live>(gridRef), 'Stalled')).toMatchObject({ status: 'True', reason: 'ConflictingObject' });
    expect(fake.peek<FakeObject & { data: Record<string, string> }>(configMap('session-cache-grid-sessions'))!.data).toEqual({ mine: 'yes' });
  });

  it("refuses to take over an object of a child's name it does not own (ConflictingObject), and leaves it as it is", async () => {
    const tenant = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'session-cache-grid-sessions', namespace: 'web' }, data: { mine: 'yes' } };
    const { fake, reconciler } = await harness([GRID, tenant]);
    const r = await reconciler().reconcile(GRID_KEY);
    expect(r).toMatchObject({ applied: 0, requeueAfterMs: 60_000 });
    const grid = fake.peek<Live>(gridRef);
    expect(condition(grid, 'Stalled')).toMatchObject({ status: 'True', reason: 'ConflictingObject' });
    expect(condition(grid, 'Stalled')!.message).toContain('ConfigMap web/session-cache-grid-sessions exists and was not created by kiln for this resource');
    expect(fake.peek<FakeObject & { data: unknown }>(configMap('session-cache-grid-sessions'))!.data).toEqual({ mine: 'yes' });
    expect(fake.actions.filter((a) => a.op === 'apply' && a.resource === 'configmaps')).toEqual([]);
  });

  it("refuses an object another owner controls, even labelled as kiln's", async () => {
    const other = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'session-cache-grid-sessions',
        namespace: 'web',
        labels: { 'app.kubernetes.io/managed-by': 'kiln' },
        ownerReferences: [{ apiVersion: KILN_API_VERSION, kind: 'DataGrid', name: 'sessions', uid: 'an-earlier-grid', controller: true }],
      },
      data: {},
    };
    const { fake, reconciler } = await harness([GRID, other]);
    await reconciler().reconcile(GRID_KEY);
    expect(condition(fake.peek<Live>(gridRef), 'Stalled')!.message).toContain('is controlled by DataGrid/sessions (uid an-earlier-grid)');
    expect(fake.actions.filter((a) => a.op === 'apply' && a.resource === 'configmaps')).toEqual([]);
  });

  it('prunes the member it no longer renders once the new one is applied, and reports the new generation', async () => {
    const { fake, reconciler } = await harness([GRID]);
    const rec = reconciler();
    await rec.reconcile(GRID_KEY);
    await fake.settled();
    const old = fake.peek(configMap('session-cache-grid-sessions'))!;
    await fake.mergePatch(gridRef, { spec: { cache: 'other-cache' } });
    await fake.settled();
    const r = await rec.reconcile(GRID_KEY);
    expect(r).toMatchObject({ applied: 1, pruned: 1 });
    expect(fake.peek(configMap('session-cache-grid-sessions'))).toBeUndefined();
    expect(fake.peek(configMap('other-cache-grid-sessions'))).toBeDefined();
    expect(fake.actions.find((a) => a.op === 'delete')).toMatchObject({ resource: 'configmaps', name: 'session-cache-grid-sessions' });
    const grid = fake.peek<Live>(gridRef)!;
    expect(grid.metadata.generation).toBe(2);
    expect(condition(grid, 'Ready')).toMatchObject({ status: 'True', observedGeneration: 2 });
    expect(grid.status?.inventory).toEqual([expect.objectContaining({ kind: 'ConfigMap', name: 'other-cache-grid-sessions' })]);
    await fake.settled();
    expect(events(fake)).toContain('Pruned: pruned ConfigMap/session-cache-grid-sessions');
    expect(old.metadata.uid).toBeDefined();
  });

  it('an apply the server refuses (422): Stalled ApplyFailed with its message, and nothing pruned', async () => {
    const { fake, reconciler } = await harness([GRID]);
    fake.reactor = (a) => {
      if (a.op === 'apply' && a.resource === 'configmaps') throw new ApiError(422, 'Invalid', 'PATCH configmaps: 422 data: Too long', 'PATCH', '/api/v1/namespaces/web/configmaps/x', 'data: Too long');
    };
    const r = await reconciler().reconcile(GRID_KEY);
    expect(r).toMatchObject({ applied: 0, pruned: 0, statusWritten: true });
    const stalled = condition(fake.peek<Live>(gridRef), 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'ApplyFailed' });
    expect(stalled.message).toContain('ConfigMap/session-cache-grid-sessions');
    expect(stalled.message).toContain('Too long');
  });
});
