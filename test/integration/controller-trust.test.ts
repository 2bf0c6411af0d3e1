/**
 * Trust boundaries of the apply-mode controller, against the real API server
 * and kube-controller-manager: kiln takes over no object it does not own, a
 * backup or restore copies only the claim that belongs to what it names, a
 * status too long for its schema is cut and written once (not retried
 * forever), and nothing is kept of a deleted resource.
 */
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Manager } from '../../controller/manager.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor as waitUntil } from '../harness/wait.js';

let cp: ControlPlaneClient;
let manager: Manager;
const ns = `kiln-trust-${randomBytes(3).toString('hex')}`;
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-20).join('\n'));
const IMAGE = 'registry.example.com/forgerock/ds:7.5.1';
/** Status PATCHes sent, by resource name. */
const statusWrites = new Map<string, number>();

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getJson(args: string[]): Promise<any> {
  const r = await cp.kubectl(['get', '-n', ns, ...args, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}
const cond = (o: { status?: { conditions?: Cond[] } } | undefined, type: string) => o?.status?.conditions?.find((c) => c.type === type);
/** The resource once its current generation's `type` condition is True (and has `reason`). */
const until = (resource: string, name: string, type: string, reason?: string, timeoutMs?: number) =>
  waitFor(
    `${resource}/${name} ${type}${reason ? ` (${reason})` : ''}`,
    async () => {
      const o = await getJson([resource, name]);
      const c = cond(o, type);
      return o && o.status?.observedGeneration === o.metadata.generation && c?.status === 'True' && (!reason || c.reason === reason) ? o : undefined;
    },
    timeoutMs,
  );
const create = (obj: Record<string, unknown>) => cp.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(obj) });
const kiln = (kind: string, name: string, spec: Record<string, unknown>) =>
  cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kiln.dev/v1alpha1', kind, metadata: { name, namespace: ns }, spec }) });
const claim = (name: string, labels: Record<string, string> = {}) =>
  create({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: ns, labels },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  });
const exists = async (kind: string, name: string) => (await cp.kubectl(['get', '-n', ns, kind, name, '-o', 'name'])).code === 0;

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 500));
  await manager.queue.idle();
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({ kc, namespaces: [ns], concurrency: 4, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
  manager.client.onRequest = (verb, path) => {
    const m = /\/([^/]+)\/status$/.exec(path);
    if (verb === 'PATCH' && m) statusWrites.set(m[1]!, (statusWrites.get(m[1]!) ?? 0) + 1);
  };
  await manager.start();
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

describe('objects kiln does not own', () => {
  it("a Service and a ConfigMap with a child's name are left as they are, the resource is Stalled naming them, and another resource is served", async () => {
    // One carries kiln's managed-by label (so the controller's cache holds it), one nothing.
    await create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'orders-config', namespace: ns }, data: { tenant: 'mine' } });
    await create({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'orders-client', namespace: ns, labels: { 'app.kubernetes.io/managed-by': 'kiln' } },
      spec: { selector: { app: 'tenant' }, ports: [{ port: 9999 }] },
    });
    const before = { cm: await getJson(['configmap', 'orders-config']), svc: await getJson(['service', 'orders-client']) };

    await kiln('PostgresInstance', 'orders', { version: 16, replicas: 1, storage: { size: '1Gi' } });
    await kiln('DataGrid', 'grid', { cache: 'somecache', partitions: 31 });

    const stalled = await until('postgresinstance', 'orders', 'Stalled', 'ConflictingObject');
    const message = cond(stalled, 'Stalled')!.message;
    expect(message).toContain(`ConfigMap ${ns}/orders-config exists`);
    expect(message).toContain(`Service ${ns}/orders-client exists`);
    expect(cond(stalled, 'Synced')).toMatchObject({ status: 'False', reason: 'ConflictingObject' });
    await until('grid', 'grid', 'Synced');

    await settle();
    const after = { cm: await getJson(['configmap', 'orders-config']), svc: await getJson(['service', 'orders-client']) };
    for (const k of ['cm', 'svc'] as const) {
      expect(after[k].metadata.resourceVersion, k).toBe(before[k].metadata.resourceVersion);
      expect(after[k].metadata.managedFields, k).toEqual(before[k].metadata.managedFields);
      expect(after[k].metadata.ownerReferences, k).toBeUndefined();
    }
    expect(after.cm.data).toEqual({ tenant: 'mine' });
    expect(after.svc.spec.ports[0].port).toBe(9999);
    // Nothing of the resource was applied while the conflict stands.
    expect(await exists('statefulset', 'orders')).toBe(false);

    // Once the tenant's objects are gone, the resource is applied.
    await cp.kubectlOk(['delete', '-n', ns, 'configmap/orders-config', 'service/orders-client']);
    manager.queue.add(`PostgresInstance/${ns}/orders`);
    await until('postgresinstance', 'orders', 'Synced');
    expect((await getJson(['configmap', 'orders-config'])).metadata.ownerReferences[0]).toMatchObject({ kind: 'PostgresInstance', name: 'orders' });
  });
});

describe('backup and restore claims', () => {
  it("a DirectoryBackup of a directory whose data claim the tenant made creates no Job and is Stalled naming the claim; one of the StatefulSet's claim proceeds", async () => {
    // The tenant's claim is there before the directory, so the StatefulSet uses it as it is.
    await claim('data-tenantds-0');
    await kiln('DirectoryService', 'tenantds', { replicas: 1, image: IMAGE });
    await kiln('DirectoryService', 'realds', { replicas: 1, image: IMAGE });
    await kiln('DirectoryBackup', 'steal', { directoryService: 'tenantds', image: IMAGE });
    await kiln('DirectoryBackup', 'good', { directoryService: 'realds', image: IMAGE });

    const stalled = await until('dsbackup', 'steal', 'Stalled', 'ForeignClaim');
    expect(cond(stalled, 'Stalled')!.message).toContain(`PersistentVolumeClaim ${ns}/data-tenantds-0 is not a data volume of DirectoryService tenantds`);
    await waitFor('good backup Job', () => exists('job', 'good-backup'));
    await settle();
    expect(await exists('job', 'steal-backup')).toBe(false);
    expect(await exists('volumesnapshot', 'steal-source')).toBe(false);
  });

  it('a DirectoryRestore of a backup claim kiln did not make for that DirectoryBackup creates no Job and is Stalled naming the claim', async () => {
    await claim('stolen-backup');
    await kiln('DirectoryRestore', 'reuse', { backup: 'stolen', image: IMAGE });
    // Without the DirectoryBackup it names, the restore waits.
    const waiting = await waitFor('restore waiting', async () => {
      const o = await getJson(['dsrestore', 'reuse']);
      return cond(o, 'Synced')?.reason === 'Waiting' ? o : undefined;
    });
    expect(cond(waiting, 'Synced')!.message).toContain(`DirectoryBackup ${ns}/stolen not found`);
    // With it, the claim is still the tenant's (kiln's own apply of it is refused too).
    await kiln('DirectoryBackup', 'stolen', { directoryService: 'realds', image: IMAGE });
    const stalled = await until('dsrestore', 'reuse', 'Stalled', 'ForeignClaim');
    expect(cond(stalled, 'Stalled')!.message).toContain(`PersistentVolumeClaim ${ns}/stolen-backup is not the backup volume of DirectoryBackup stolen`);
    const backup = await until('dsbackup', 'stolen', 'Stalled', 'ConflictingObject');
    expect(cond(backup, 'Stalled')!.message).toContain(`PersistentVolumeClaim ${ns}/stolen-backup exists`);
    await settle();
    expect(await exists('job', 'reuse-restore')).toBe(false);

    await kiln('DirectoryRestore', 'fine', { backup: 'good', image: IMAGE });
    await waitFor("restore Job of kiln's backup claim", () => exists('job', 'fine-restore'));
  });
});

describe('bounded status', () => {
  it("a 105 KB InvalidSpec message is cut to the schema's limit and written once, not retried forever", async () => {
    // 64 keys that are no DNs: each names itself in the message.
    const passwords = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`${String(i).padStart(2, '0')}-${'x'.repeat(1600)}`, { secretName: 'pw' }]));
    // Sent as JSON: a YAML reader (kubectl's, or the server's for an apply) refuses keys over 1024 characters.
    const huge = { apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', metadata: { name: 'huge', namespace: ns }, spec: { replicas: 1, image: IMAGE, passwords } };
    await manager.client.create(huge);
    const stalled = await until('directoryservice', 'huge', 'Stalled', 'InvalidSpec');
    const message = cond(stalled, 'Stalled')!.message;
    expect(message.length).toBeLessThanOrEqual(32768);
    expect(message).toMatch(/… \(\d+ more characters\)$/);
    expect(Number(/\((\d+) more characters\)$/.exec(message)![1])).toBeGreaterThan(70_000);
    expect(message).toContain('spec.passwords');
    await settle();
    const writes = statusWrites.get('huge');
    await new Promise((r) => setTimeout(r, 3_000));
    await settle();
    expect(statusWrites.get('huge')).toBe(writes);
    expect(writes).toBeLessThanOrEqual(2);
  });
});

describe('caches of deleted resources', () => {
  it('nothing is kept for a resource once it is deleted', async () => {
    await kiln('DataGrid', 'brief', { cache: 'somecache', partitions: 31 });
    await until('grid', 'brief', 'Ready');
    await settle();
    const key = `DataGrid/${ns}/brief`;
    expect(manager.remembers(key)).toBe(true);
    await cp.kubectlOk(['delete', '-n', ns, 'grid', 'brief']);
    await waitFor('ConfigMap collected', async () => !(await exists('configmap', 'somecache-grid-brief')));
    await settle();
    expect(manager.remembers(key)).toBe(false);
    expect(manager.ownWrites.has(`v1/ConfigMap/${ns}/somecache-grid-brief`)).toBe(false);
  });
});
