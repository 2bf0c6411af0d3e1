/**
 * ConfigMapSync through the controller (resync off, so whatever happens is the
 * controller reacting): copies only where the tenant's ServiceAccount may
 * write, and the condition says why; a source edit, a namespace labelled or
 * relabelled reach the copies within 5 s (the tenant's own watches); a delete
 * with propagationPolicy Orphan leaves the copies, released.
 */
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { Manager } from '../../controller/manager.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';

let cp: ControlPlaneClient;
let manager: Manager;
const id = randomBytes(3).toString('hex');
const ns = `kiln-cms-${id}`;
const nsA = `tenant-a-${id}`;
const nsB = `tenant-b-${id}`;
const nsC = `tenant-c-${id}`;
const teamLabel = `kiln-test/team-${id}`;

async function apply(obj: unknown) {
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(obj) });
}

function role(namespace: string, verbs: string[]) {
  return [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'tenant-sync', namespace }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs }] },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'tenant-sync', namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tenant-sync' },
      subjects: [{ kind: 'ServiceAccount', name: 'tenant', namespace: ns }],
    },
  ];
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  for (const n of [ns, nsA, nsB, nsC]) await cp.kubectlOk(['create', 'namespace', n]);
  await cp.kubectlOk(['create', 'serviceaccount', 'tenant', '-n', ns]);
  // list and watch on the source and on namespaces: what the controller's watches (made with this account's token) need.
  for (const o of [...role(ns, ['get', 'list', 'watch']), ...role(nsA, ['get', 'list', 'create', 'patch', 'delete']), ...role(nsC, ['get', 'list', 'create', 'patch', 'delete'])]) await apply(o);
  await apply({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: `tenant-namespaces-${id}` },
    rules: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] }],
  });
  await apply({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: `tenant-namespaces-${id}` },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `tenant-namespaces-${id}` },
    subjects: [{ kind: 'ServiceAccount', name: 'tenant', namespace: ns }],
  });
  await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: ns }, data: { colour: 'blue' } });
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({ kc, namespaces: [ns], concurrency: 2, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log: () => {} });
  await manager.start();
});

afterAll(async () => {
  await manager?.stop();
  for (const n of [ns, nsA, nsB, nsC]) await cp?.kubectl(['delete', 'namespace', n, '--wait=false']);
  for (const k of ['clusterrole', 'clusterrolebinding']) await cp?.kubectl(['delete', k, `tenant-namespaces-${id}`, '--ignore-not-found']);
});

it('copies into the namespace the ServiceAccount may write, and reports the denied one', async () => {
  await apply({
    apiVersion: 'kiln.dev/v1alpha1',
    kind: 'ConfigMapSync',
    metadata: { name: 'settings', namespace: ns },
    spec: { source: { name: 'settings' }, targets: { namespaces: [nsA, nsB] }, serviceAccountName: 'tenant' },
  });
  const deadline = Date.now() + 30_000;
  let cms: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (;;) {
    cms = JSON.parse(await cp.kubectlOk(['get', '-n', ns, 'configmapsync', 'settings', '-o', 'json']));
    if (cms.status?.observedGeneration === cms.metadata.generation && cms.status?.synced?.length) break;
    if (Date.now() > deadline) throw new Error(`no status: ${JSON.stringify(cms.status)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(cms.status.synced).toEqual([nsA]);
  expect(cms.status.failed).toEqual([{ namespace: nsB, reason: expect.stringContaining('forbidden') }]);
  const ready = cms.status.conditions.find((c: { type: string }) => c.type === 'Ready');
  const stalled = cms.status.conditions.find((c: { type: string }) => c.type === 'Stalled');
  expect(ready.status).toBe('False');
  expect(stalled).toMatchObject({ status: 'True', reason: 'TargetsDenied' });
  expect(stalled.message).toContain(nsB);
  expect(stalled.message).toContain('cannot');
  const copy = JSON.parse(await cp.kubectlOk(['get', '-n', nsA, 'configmap', 'settings', '-o', 'json']));
  expect(copy.data).toEqual({ colour: 'blue' });
  expect((await cp.kubectl(['get', '-n', nsB, 'configmap', 'settings'])).code).not.toBe(0);
  expect(JSON.stringify(cms.status)).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./); // no token in status
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const getJson = async (args: string[]): Promise<Any> => {
  const r = await cp.kubectl([...args, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
};
/** Polls every 100 ms until `fn` holds; resolves the milliseconds it took, or throws after `ms`. */
async function within(what: string, ms: number, fn: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('a source edit reaches the copy within 5 s (no resync: the controller watches the source with the tenant token)', async () => {
  await within('first copy', 30_000, async () => (await getJson(['get', '-n', nsA, 'configmap', 'settings']))?.data?.colour === 'blue');
  await cp.kubectlOk(['-n', ns, 'patch', 'configmap', 'settings', '--type=merge', '-p', '{"data":{"colour":"green"}}']);
  const ms = await within('copy updated', 5_000, async () => (await getJson(['get', '-n', nsA, 'configmap', 'settings']))?.data?.colour === 'green');
  console.log(`configmapsync: source edit -> copy updated in ${ms} ms`);
  expect(ms).toBeLessThan(5_000);
});

it('a namespace labelled to match gets its copy within 5 s, relabelled loses it within 5 s; kubectl wait sees Ready', async () => {
  await apply({
    apiVersion: 'kiln.dev/v1alpha1',
    kind: 'ConfigMapSync',
    metadata: { name: 'by-label', namespace: ns },
    spec: { source: { name: 'settings' }, targets: { namespaceSelector: { matchLabels: { [teamLabel]: 'yes' } } }, serviceAccountName: 'tenant' },
  });
  const waited = await cp.kubectl(['wait', '-n', ns, '--for=condition=Ready', 'configmapsync/by-label', '--timeout=30s']);
  expect(waited.code, waited.stderr).toBe(0);
  expect(await getJson(['get', '-n', nsC, 'configmap', 'settings'])).toBeUndefined();
  await cp.kubectlOk(['label', 'namespace', nsC, `${teamLabel}=yes`]);
  const added = await within('copy in the labelled namespace', 5_000, async () => (await getJson(['get', '-n', nsC, 'configmap', 'settings']))?.data?.colour === 'green');
  await cp.kubectlOk(['label', 'namespace', nsC, `${teamLabel}-`]);
  const removed = await within('copy gone from the relabelled namespace', 5_000, async () => (await getJson(['get', '-n', nsC, 'configmap', 'settings'])) === undefined);
  console.log(`configmapsync: namespace labelled -> copy in ${added} ms; label removed -> copy gone in ${removed} ms`);
  await within('status.synced empty again', 5_000, async () => (await getJson(['get', '-n', ns, 'configmapsync', 'by-label']))?.status?.synced?.length === 0);
});

it('delete with propagationPolicy Orphan: the copies stay, without the owner labels; the resource goes', async () => {
  await cp.kubectlOk(['label', 'namespace', nsC, `${teamLabel}=yes`]);
  await within('copy in the labelled namespace', 10_000, async () => (await getJson(['get', '-n', nsC, 'configmap', 'settings'])) !== undefined);
  await cp.kubectlOk(['-n', ns, 'delete', 'configmapsync', 'by-label', '--cascade=orphan', '--wait=true', '--timeout=30s']);
  const copy = await getJson(['get', '-n', nsC, 'configmap', 'settings']);
  expect(copy?.data).toEqual({ colour: 'green' });
  expect(Object.keys(copy.metadata.labels ?? {}).filter((k) => k.startsWith('kiln.dev/owner-'))).toEqual([]);
  expect(await getJson(['get', '-n', ns, 'configmapsync', 'by-label'])).toBeUndefined();
});
