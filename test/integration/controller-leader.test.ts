/**
 * Two controller replicas on one Lease: only the leader works; when it dies
 * without releasing the Lease, the standby takes over and converges the next change.
 */
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { Manager } from '../../controller/manager.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';

let cp: ControlPlaneClient;
const ns = `kiln-leader-${randomBytes(3).toString('hex')}`;
const managers: Manager[] = [];

function replica(): Manager {
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  const m = new Manager({
    kc,
    namespaces: [ns],
    concurrency: 2,
    qps: 0,
    burst: 0,
    resyncSeconds: 0,
    version: 'test',
    log: () => {},
    leaderElection: { namespace: ns, name: 'kiln-controller', leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 0.5 },
  });
  managers.push(m);
  return m;
}

async function gridStatus(name: string) {
  const r = await cp.kubectl(['get', '-n', ns, 'datagrid', name, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

async function readyFor(name: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const g = await gridStatus(name);
    const ready = g?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');
    if (ready?.status === 'True' && g.status.observedGeneration === g.metadata.generation) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${name} not Ready after ${timeoutMs} ms: ${JSON.stringify(g?.status)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
});

afterAll(async () => {
  await Promise.all(managers.map((m) => m.stop().catch(() => {})));
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

it('only the leader reconciles; the standby converges the next change after the leader dies', async () => {
  const a = replica();
  const b = replica();
  const startA = a.start();
  await startA;
  const startB = b.start().catch(() => {}); // stays pending while a leads
  await new Promise((r) => setTimeout(r, 1500));
  expect(a.isLeader()).toBe(true);
  expect(b.isLeader()).toBe(false);

  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g1', namespace: ns }, spec: { cache: 'c' } }),
  });
  await readyFor('g1', 20_000);
  expect(a.reconciles).toBeGreaterThan(0);
  expect(b.reconciles).toBe(0);
  expect(b.client.writes()).toBe(0);

  // The leader dies: no release, its Lease has to expire.
  await a.stop({ release: false });
  await cp.kubectlOk(['patch', '-n', ns, 'datagrid', 'g1', '--type=merge', '-p', '{"spec":{"partitions":17}}']);
  const tookMs = await readyFor('g1', 20_000);
  expect(b.isLeader()).toBe(true);
  expect(b.reconciles).toBeGreaterThan(0);
  // Within one lease duration (4 s) plus a retry period and the reconcile itself.
  expect(tookMs).toBeLessThan(4_000 + 500 + 3_000);
  const cm = JSON.parse(await cp.kubectlOk(['get', '-n', ns, 'configmap', 'c-grid-g1', '-o', 'json']));
  expect(JSON.parse(cm.data['grid.json']).partitions).toBe(17);
  const holder = await cp.kubectlOk(['get', '-n', ns, 'lease', 'kiln-controller', '-o', 'jsonpath={.spec.holderIdentity}']);
  expect(holder).toBe(b.identity);
  await startB;
});
