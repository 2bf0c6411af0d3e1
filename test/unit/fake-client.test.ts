/**
 * The in-memory API server (kube/fake-client.ts) behaves as the real one does
 * where the reconcilers' decisions depend on it: versions, generation, field
 * ownership, errors, selectors and watches (through a real Informer).
 */
import { describe, expect, it } from 'vitest';
import { isConflict, isNotFound } from '../../kube/errors.js';
import { FakeKubeClient, labelMatcher } from '../../kube/fake-client.js';
import { Informer, type KubeObject } from '../../kube/informer.js';

const cm = (name: string, data: Record<string, string>, labels?: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'ns', ...(labels ? { labels } : {}) },
  data,
});
type Managed = Omit<KubeObject, 'metadata'> & {
  data?: Record<string, string>;
  status?: Record<string, unknown>;
  spec?: Record<string, unknown>;
  metadata: Omit<KubeObject['metadata'], 'managedFields'> & { managedFields?: { manager: string; operation: string; subresource?: string; fieldsV1: Record<string, unknown> }[] };
};

describe('FakeKubeClient', () => {
  it('creates with uid, generation 1 and a resourceVersion; a second create is 409 AlreadyExists', async () => {
    const fake = new FakeKubeClient();
    const made = await fake.create<Managed>(cm('a', { k: 'v' }));
    expect(made.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(made.metadata.generation).toBe(1);
    expect(made.metadata.resourceVersion).toBeDefined();
    const again = await fake.create(cm('a', {})).catch((e: unknown) => e);
    expect(isConflict(again)).toBe(true);
    expect((again as Error).message).toContain('configmaps "a" already exists');
  });

  it('get of an absent object is 404 NotFound', async () => {
    const err = await new FakeKubeClient().get({ apiVersion: 'v1', kind: 'Secret', namespace: 'ns', name: 'x' }).catch((e: unknown) => e);
    expect(isNotFound(err)).toBe(true);
  });

  it('apply: a repeat changes nothing (same resourceVersion); generation moves on spec changes only; status only through the subresource', async () => {
    const fake = new FakeKubeClient();
    const obj = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's', namespace: 'ns' }, spec: { replicas: 1 }, status: { replicas: 9 } };
    const first = await fake.apply<Managed>(obj, 'kiln');
    expect(first.status).toBeUndefined();
    const again = await fake.apply<Managed>(obj, 'kiln');
    expect(again.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    const labelled = await fake.apply<Managed>({ ...obj, metadata: { ...obj.metadata, labels: { a: 'b' } } }, 'kiln');
    expect(labelled.metadata.generation).toBe(1);
    expect(Number(labelled.metadata.resourceVersion)).toBeGreaterThan(Number(first.metadata.resourceVersion));
    const scaled = await fake.apply<Managed>({ ...obj, spec: { replicas: 2 } }, 'kiln');
    expect(scaled.metadata.generation).toBe(2);
    const status = await fake.apply<Managed>({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's', namespace: 'ns' }, status: { replicas: 2 } }, 'kcm', 'status');
    expect(status.status).toEqual({ replicas: 2 });
    expect(status.metadata.generation).toBe(2);
    expect(status.spec).toEqual({ replicas: 2 });
  });

  it('apply keeps managedFields per manager: a field the applier stops sending goes, unless another manager owns it', async () => {
    const fake = new FakeKubeClient();
    await fake.apply(cm('a', { x: '1', y: '2' }), 'kiln');
    await fake.apply(cm('a', { z: '3' }), 'someone-else');
    let live = await fake.get<Managed>({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' });
    expect(live.metadata.managedFields!.map((f) => [f.manager, f.operation, Object.keys(f.fieldsV1['f:data'] as object)])).toEqual([
      ['kiln', 'Apply', ['f:x', 'f:y']],
      ['someone-else', 'Apply', ['f:z']],
    ]);
    await fake.apply(cm('a', { x: '1' }), 'kiln');
    live = await fake.get<Managed>({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' });
    expect(live.data).toEqual({ x: '1', z: '3' });
    // Another manager's apply of a field takes it: kiln's next apply without it leaves it.
    await fake.apply(cm('a', { x: 'theirs' }), 'someone-else');
    await fake.apply(cm('a', {}), 'kiln');
    live = await fake.get<Managed>({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' });
    expect(live.data).toEqual({ x: 'theirs' });
  });

  it('status conditions merge by type between managers', async () => {
    const fake = new FakeKubeClient();
    const ref = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's', namespace: 'ns' } };
    await fake.apply({ ...ref, spec: {} }, 'kiln');
    await fake.apply({ ...ref, status: { conditions: [{ type: 'Ready', status: 'True' }] } }, 'kiln', 'status');
    await fake.apply({ ...ref, status: { conditions: [{ type: 'PasswordsSynced', status: 'False' }] } }, 'kiln-agent', 'status');
    let live = await fake.get<Managed>({ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'ns', name: 's' });
    expect((live.status!['conditions'] as { type: string }[]).map((c) => c.type)).toEqual(['Ready', 'PasswordsSynced']);
    await fake.apply({ ...ref, status: {} }, 'kiln-agent', 'status');
    live = await fake.get<Managed>({ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'ns', name: 's' });
    expect((live.status!['conditions'] as { type: string }[]).map((c) => c.type)).toEqual(['Ready']);
  });

  it('preconditions: a stale resourceVersion on a merge patch and a wrong uid on delete are 409; an apply with another uid is 422', async () => {
    const fake = new FakeKubeClient();
    const made = await fake.create<Managed>(cm('a', { k: 'v' }));
    await fake.mergePatch({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' }, { data: { k: 'w' } });
    const stale = await fake
      .request('PATCH', '/api/v1/namespaces/ns/configmaps/a', { body: { metadata: { resourceVersion: made.metadata.resourceVersion }, data: { k: 'x' } }, contentType: 'application/merge-patch+json' })
      .catch((e: unknown) => e);
    expect(isConflict(stale)).toBe(true);
    expect(isConflict(await fake.delete({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' }, 'not-its-uid').catch((e: unknown) => e))).toBe(true);
    const wrongUid = await fake.apply({ ...cm('a', {}), metadata: { name: 'a', namespace: 'ns', uid: 'other' } }, 'kiln').catch((e: unknown) => e);
    expect((wrongUid as { status: number }).status).toBe(422);
    await fake.delete({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' }, made.metadata.uid);
    expect(fake.peek({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' })).toBeUndefined();
  });

  it('finalizers hold a deleted object (deletionTimestamp) until the last one is removed', async () => {
    const fake = new FakeKubeClient();
    await fake.create({ ...cm('a', {}), metadata: { name: 'a', namespace: 'ns', finalizers: ['x/y'] } });
    await fake.delete({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' });
    expect(fake.peek({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' })?.metadata.deletionTimestamp).toBeDefined();
    await fake.mergePatch({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' }, { metadata: { finalizers: null } });
    expect(fake.peek({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' })).toBeUndefined();
  });

  it('label selectors, equality- and set-based', () => {
    expect(labelMatcher('a=1,b!=2')({ a: '1', b: '3' })).toBe(true);
    expect(labelMatcher('a=1,b!=2')({ a: '1', b: '2' })).toBe(false);
    expect(labelMatcher('a in (1,2),!c')({ a: '2' })).toBe(true);
    expect(labelMatcher('a notin (1,2)')({ a: '2' })).toBe(false);
    expect(labelMatcher('a')({})).toBe(false);
  });

  it('list pages and filters by label; a real Informer lists and watches it, label transitions included', async () => {
    const fake = new FakeKubeClient();
    for (let i = 0; i < 5; i++) await fake.create(cm(`c${i}`, {}, { app: i % 2 ? 'x' : 'y' }));
    const page = await fake.list({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns' }, { labelSelector: 'app=y', limit: 2 });
    expect(page.items.map((o) => (o as KubeObject).metadata.name)).toEqual(['c0', 'c2']);
    expect(page.metadata.continue).toBeDefined();
    const informer = new Informer(fake, { apiVersion: 'v1', kind: 'ConfigMap', labelSelector: 'app=y', resyncSeconds: 0, pageSize: 2 });
    const events: string[] = [];
    informer.on((e, o) => events.push(`${e} ${o.metadata.name}`));
    await informer.start();
    expect(
      informer
        .list()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['c0', 'c2', 'c4']);
    await fake.mergePatch({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'c1' }, { metadata: { labels: { app: 'y' } } });
    await fake.mergePatch({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'c0' }, { metadata: { labels: { app: 'x' } } });
    await fake.delete({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'c2' });
    await fake.settled();
    informer.stop();
    expect(events.slice(3)).toEqual(['added c1', 'deleted c0', 'deleted c2']);
    expect(
      informer
        .list()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['c1', 'c4']);
  });
});
