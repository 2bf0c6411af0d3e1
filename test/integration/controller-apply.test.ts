/**
 * The apply-mode controller against a real API server and
 * kube-controller-manager: convergence, status, updates, pruning, drift
 * repair, no writes when nothing changed, invalid input, deletion.
 */
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { render } from '../../kinds/render.js';
import { applySetId, PART_OF } from '../../controller/apply/applyset.js';
import { Manager } from '../../controller/manager.js';
import { validate } from '../../validate/index.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { exampleResources } from '../unit/fixtures.js';
import { waitFor as waitUntil } from '../harness/wait.js';

let cp: ControlPlaneClient;
let manager: Manager;
const ns = `kiln-apply-${randomBytes(3).toString('hex')}`;
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);

const kinds = ['DirectoryService', 'PostgresInstance', 'CacheCluster', 'DataGrid', 'DirectoryBackup', 'DirectoryRestore'];
const examples = exampleResources()
  .map((e) => e.resource)
  .filter((r) => kinds.includes(r.kind))
  .map((r) => ({ ...r, metadata: { ...r.metadata, namespace: ns } }));
const short: Record<string, string> = {
  DirectoryService: 'directoryservices',
  PostgresInstance: 'pgi',
  CacheCluster: 'cache',
  DataGrid: 'grid',
  DirectoryBackup: 'dsbackup',
  DirectoryRestore: 'dsrestore',
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getJson<T = any>(args: string[]): Promise<T | undefined> {
  const r = await cp.kubectl(['get', ...args, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-20).join('\n'));

async function readyAt(kind: string, name: string, generation?: number) {
  return waitFor(`${kind}/${name} Ready`, async () => {
    const o = await getJson(['-n', ns, short[kind]!, name]);
    const ready = o?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');
    const gen = generation ?? o?.metadata.generation;
    return ready?.status === 'True' && o.status.observedGeneration === gen && ready.observedGeneration === gen ? o : undefined;
  });
}

async function settle(): Promise<void> {
  // Let watch events arrive, then wait for the queue to drain.
  await new Promise((r) => setTimeout(r, 500));
  await manager.queue.idle();
  await new Promise((r) => setTimeout(r, 300));
  await manager.queue.idle();
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({ kc, namespaces: [ns], concurrency: 4, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
  await manager.start();
  for (const r of examples) await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(r) });
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

describe('apply mode', () => {
  it('every example converges: its objects exist, equal the rendered set, are owned by it, and it is Ready for its generation', async () => {
    for (const r of examples) {
      const live = await readyAt(r.kind, r.metadata.name);
      const v = validate(r);
      if (!v.ok) throw new Error('example invalid');
      const rendered = render(v.resource);
      expect(live.status.inventory.map((i: { kind: string; name: string }) => `${i.kind}/${i.name}`)).toEqual(rendered.map((o) => `${o.kind}/${o.metadata.name}`));
      for (const o of rendered) {
        const child = await getJson(['-n', ns, `${o.kind.toLowerCase()}${o.apiVersion.includes('/') ? `.${o.apiVersion.split('/')[0]}` : ''}`, o.metadata.name]);
        expect(child, `${o.kind}/${o.metadata.name}`).toBeDefined();
        expect(child.metadata.ownerReferences).toEqual([expect.objectContaining({ apiVersion: 'kiln.dev/v1alpha1', kind: r.kind, name: r.metadata.name, uid: live.metadata.uid, controller: true })]);
        expect(child.metadata.labels[PART_OF]).toBe(applySetId(live));
        expect(child.metadata.labels).toMatchObject(o.metadata.labels ?? {});
      }
      expect(live.metadata.labels['applyset.kubernetes.io/id']).toBe(applySetId(live));
    }
  });

  it('a restore applies its snapshot once its Job has completed, then is Ready (the order itself: readiness.test.ts)', async () => {
    const restore = await readyAt('DirectoryRestore', 'idrepo-restore');
    expect(restore.status.result).toBe('Succeeded');
    expect(restore.status.conditions.find((c: { type: string }) => c.type === 'Ready')).toMatchObject({ reason: 'JobSucceeded' });
    const job = await getJson(['-n', ns, 'job', 'idrepo-restore-restore']);
    expect(job.status.conditions.find((c: { type: string }) => c.type === 'Complete')?.status).toBe('True');
    expect(await getJson(['-n', ns, 'pvc', 'idrepo-restore-restore'])).toBeDefined();
    expect(await getJson(['-n', ns, 'volumesnapshot', 'idrepo-restore-restore'])).toBeDefined();
  });

  it('kubectl wait --for=condition=Ready works on kiln resources', async () => {
    const out = await cp.kubectlOk(['wait', '-n', ns, '--for=condition=Ready', 'directoryservice/ds-idrepo', 'pgi/orders-db', 'cache/session-cache', '--timeout=30s']);
    expect(out).toContain('condition met');
  });

  it('reports members from the StatefulSet (scale subresource and status)', async () => {
    const sts = await waitFor('StatefulSet pods', async () => {
      const s = await getJson(['-n', ns, 'statefulset', 'session-cache']);
      return s?.status?.replicas === 5 ? s : undefined;
    });
    expect(sts.spec.replicas).toBe(5);
    const cache = await waitFor('cache status.replicas', async () => {
      const c = await getJson(['-n', ns, 'cache', 'session-cache']);
      return c?.status?.replicas === 5 ? c : undefined;
    });
    expect(cache.status.selector).toBe('app.kubernetes.io/instance=session-cache,app.kubernetes.io/name=cache');
    // The stand-in kubelet runs every pod, so the members become ready.
    const ready = await readyAt('CacheCluster', 'session-cache');
    expect(ready.status.readyReplicas).toBe(5);
    expect(ready.status.conditions.find((c: { type: string }) => c.type === 'Available')).toMatchObject({ status: 'True', message: '5/5 members ready' });
    expect(ready.status.conditions.find((c: { type: string }) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'RolloutComplete', message: '5/5 members ready' });
    const scale = JSON.parse(await cp.kubectlOk(['get', '--raw', `/apis/kiln.dev/v1alpha1/namespaces/${ns}/cacheclusters/session-cache/scale`]));
    expect(scale.status.replicas).toBe(5);
  });

  it('spec updates (replicas, image, resources, env) reach the StatefulSet', async () => {
    await cp.kubectlOk([
      'patch',
      '-n',
      ns,
      'directoryservice',
      'ds-idrepo',
      '--type=merge',
      '-p',
      JSON.stringify({
        spec: {
          replicas: 4,
          image: 'registry.example.com/forgerock/ds:7.6.0',
          resources: { requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '4Gi' } },
          env: [{ name: 'DS_JAVA_ARGS', value: '-Xmx3g' }],
        },
      }),
    ]);
    const ds = await getJson(['-n', ns, 'directoryservice', 'ds-idrepo']);
    await readyAt('DirectoryService', 'ds-idrepo', ds.metadata.generation);
    const sts = await getJson(['-n', ns, 'statefulset', 'ds-idrepo']);
    const c = sts.spec.template.spec.containers[0];
    expect(sts.spec.replicas).toBe(4);
    expect(c.image).toBe('registry.example.com/forgerock/ds:7.6.0');
    expect(c.resources).toEqual({ requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '4Gi' } });
    expect(c.env.find((e: { name: string }) => e.name === 'DS_JAVA_ARGS').value).toBe('-Xmx3g');
    expect(c.env.find((e: { name: string }) => e.name === 'DS_REPLICAS').value).toBe('4');
  });

  it("switching the client Service off prunes it; an object with kiln labels but not kiln's field manager is kept", async () => {
    const ds = await getJson(['-n', ns, 'directoryservice', 'ds-idrepo']);
    const id = applySetId(ds);
    await cp.kubectlOk(['create', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'handmade', namespace: ns, labels: { [PART_OF]: id, 'app.kubernetes.io/managed-by': 'kiln' } },
        data: { a: 'b' },
      }),
    });
    await cp.kubectlOk(['patch', '-n', ns, 'directoryservice', 'ds-idrepo', '--type=merge', '-p', JSON.stringify({ spec: { service: { type: 'None' } } })]);
    await waitFor('client Service pruned', async () => (await getJson(['-n', ns, 'service', 'ds-idrepo-client'])) === undefined);
    await settle();
    expect(await getJson(['-n', ns, 'configmap', 'handmade'])).toBeDefined();
    expect(await getJson(['-n', ns, 'service', 'ds-idrepo'])).toBeDefined();
    const events = await cp.kubectlOk(['get', 'events', '-n', ns, '--field-selector', 'involvedObject.name=ds-idrepo,reason=Pruned', '-o', 'jsonpath={.items[*].message}']);
    expect(events).toContain('Service/ds-idrepo-client');
  });

  it('a child edited or deleted by hand is repaired', async () => {
    await cp.kubectlOk(['patch', '-n', ns, 'statefulset', 'session-cache', '--type=merge', '-p', JSON.stringify({ spec: { replicas: 1 } })]);
    await cp.kubectlOk(['delete', '-n', ns, 'service', 'session-cache-client']);
    await cp.kubectlOk(['delete', '-n', ns, 'configmap', 'session-cache-members']);
    await waitFor('StatefulSet repaired', async () => (await getJson(['-n', ns, 'statefulset', 'session-cache']))?.spec.replicas === 5);
    await waitFor('Service recreated', async () => (await getJson(['-n', ns, 'service', 'session-cache-client'])) !== undefined);
    await waitFor('ConfigMap recreated', async () => (await getJson(['-n', ns, 'configmap', 'session-cache-members'])) !== undefined);
  });

  it('sends no PATCH, PUT or DELETE on a resync, nor after a restart, when nothing changed', async () => {
    await settle();
    const before = manager.client.writes();
    const writes: string[] = [];
    manager.client.onRequest = (verb, path) => {
      if (!['GET', 'LIST', 'WATCH'].includes(verb)) writes.push(`${verb} ${path}`);
    };
    for (const r of examples) manager.queue.add(`${r.kind}/${ns}/${r.metadata.name}`);
    await settle();
    if (writes.length) console.log(writes.join('\n'));
    expect(writes).toEqual([]);
    expect(manager.client.writes() - before).toBe(0);

    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    const restarted = new Manager({ kc, namespaces: [ns], concurrency: 4, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
    await restarted.start();
    await new Promise((r) => setTimeout(r, 500));
    await restarted.queue.idle();
    expect(restarted.reconciles).toBeGreaterThanOrEqual(examples.length);
    expect(restarted.client.counts).toMatchObject({ POST: 0, PUT: 0, PATCH: 0, DELETE: 0 });
    await restarted.stop();
  });

  it('an invalid resource is Stalled naming the field, and the others keep being served', async () => {
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'bad-grid', namespace: ns }, spec: { cache: 'session-cache', partitions: 12 } }),
    });
    const stalled = await waitFor('bad-grid Stalled', async () => {
      const g = await getJson(['-n', ns, 'grid', 'bad-grid']);
      return g?.status?.conditions?.find((c: { type: string; status: string }) => c.type === 'Stalled' && c.status === 'True');
    });
    expect(stalled.reason).toBe('InvalidSpec');
    expect(stalled.message).toContain('spec.partitions');
    await cp.kubectlOk(['patch', '-n', ns, 'grid', 'sessions', '--type=merge', '-p', JSON.stringify({ spec: { partitions: 37 } })]);
    const grid = await getJson(['-n', ns, 'grid', 'sessions']);
    await readyAt('DataGrid', 'sessions', grid.metadata.generation);
    const cm = await getJson(['-n', ns, 'configmap', 'session-cache-grid-sessions']);
    expect(JSON.parse(cm.data['grid.json']).partitions).toBe(37);
  });

  it('deleting a resource removes its children by garbage collection; directory claims survive, cache claims follow the retention policy', async () => {
    const dsClaims = await waitFor('directory claims', async () => {
      const l = await getJson(['-n', ns, 'pvc', '-l', 'app.kubernetes.io/instance=ds-idrepo']);
      return l?.items.length > 0 ? l.items : undefined;
    });
    const cacheClaims = await waitFor('cache claims', async () => {
      const l = await getJson(['-n', ns, 'pvc', '-l', 'app.kubernetes.io/instance=session-cache']);
      return l?.items.length > 0 ? l.items : undefined;
    });
    expect(dsClaims.length).toBeGreaterThan(0);
    expect(cacheClaims.length).toBeGreaterThan(0);
    await cp.kubectlOk(['delete', '-n', ns, 'directoryservice/ds-idrepo', 'cachecluster/session-cache']);
    await waitFor(
      'StatefulSets collected',
      async () => (await getJson(['-n', ns, 'statefulset', 'ds-idrepo'])) === undefined && (await getJson(['-n', ns, 'statefulset', 'session-cache'])) === undefined,
      60_000,
    );
    // Deleted by the garbage collector through the StatefulSet's retention policy. This control
    // plane runs no pvc-protection controller, so a deleted claim keeps its finalizer: deletionTimestamp is the proof.
    await waitFor(
      'cache claims deleted',
      async () => (await getJson(['-n', ns, 'pvc', '-l', 'app.kubernetes.io/instance=session-cache']))?.items.every((p: { metadata: { deletionTimestamp?: string } }) => p.metadata.deletionTimestamp),
      60_000,
    );
    const left = await getJson(['-n', ns, 'pvc', '-l', 'app.kubernetes.io/instance=ds-idrepo']);
    expect(left.items.length).toBe(dsClaims.length);
    expect(left.items.filter((p: { metadata: { deletionTimestamp?: string } }) => p.metadata.deletionTimestamp)).toEqual([]);
  });
});
