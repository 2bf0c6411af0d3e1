/** ConfigMapSync through the controller: copies only where the tenant's ServiceAccount may write, and the condition says why. */
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
  for (const n of [ns, nsA, nsB]) await cp.kubectlOk(['create', 'namespace', n]);
  await cp.kubectlOk(['create', 'serviceaccount', 'tenant', '-n', ns]);
  for (const o of [...role(ns, ['get']), ...role(nsA, ['get', 'list', 'create', 'patch', 'delete'])]) await apply(o);
  await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: ns }, data: { colour: 'blue' } });
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({ kc, namespaces: [ns], concurrency: 2, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log: () => {} });
  await manager.start();
});

afterAll(async () => {
  await manager?.stop();
  for (const n of [ns, nsA, nsB]) await cp?.kubectl(['delete', 'namespace', n, '--wait=false']);
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
