/**
 * Memcached through the controller on the real control plane (resync off, so
 * what happens is the controller reacting): its Deployment rolls out (the
 * stand-in kubelet makes pods Ready, kube-controller-manager's Deployment and
 * ReplicaSet controllers do the rest), Ready waits for it, status.nodes lists
 * the pods as they come and go, and `kubectl patch ... size` and `kubectl
 * scale` both scale it.
 */
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { Manager } from '../../controller/manager.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { refusedLine } from '../harness/refused.js';
import { waitFor } from '../harness/wait.js';

let cp: ControlPlaneClient;
let manager: Manager;
const ns = `kiln-mc-${randomBytes(3).toString('hex')}`;
const logs: string[] = [];

interface Memcached {
  metadata: { generation: number };
  spec: { size: number };
  status?: {
    observedGeneration?: number;
    nodes?: string[];
    replicas?: number;
    readyReplicas?: number;
    selector?: string;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

const get = async (): Promise<Memcached> => JSON.parse(await cp.kubectlOk(['get', '-n', ns, 'memcached', 'pool', '-o', 'json'])) as Memcached;
/** The pods that exist and are not terminating, by name. */
async function pods(): Promise<string[]> {
  const list = JSON.parse(await cp.kubectlOk(['get', 'pods', '-n', ns, '-l', 'app.kubernetes.io/instance=pool', '-o', 'json'])) as {
    items: { metadata: { name: string; deletionTimestamp?: string } }[];
  };
  return list.items
    .filter((p) => !p.metadata.deletionTimestamp)
    .map((p) => p.metadata.name)
    .sort();
}
let last = '';
/** What the cluster held when a wait ends: the Deployment's status and each pod's phase and Ready condition (which side stalled). */
let cluster = '';
async function clusterState(): Promise<string> {
  const d = JSON.parse((await cp.kubectl(['get', '-n', ns, 'deployment', 'pool', '-o', 'json'])).stdout || '{}') as { status?: unknown };
  const p = JSON.parse((await cp.kubectl(['get', 'pods', '-n', ns, '-o', 'json'])).stdout || '{"items":[]}') as {
    items: { metadata: { name: string; deletionTimestamp?: string }; status?: { phase?: string; conditions?: { type: string; status: string }[] } }[];
  };
  const pods = p.items.map(
    (i) => `${i.metadata.name} ${i.status?.phase ?? '-'} ready=${i.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? '-'}${i.metadata.deletionTimestamp ? ' terminating' : ''}`,
  );
  return `deployment status: ${JSON.stringify(d.status)}\npods: ${pods.join('; ')}`;
}
/** The resource once Ready=True for its current generation with `size` nodes listed, and the pods then. */
const readyWith = (size: number) =>
  waitFor(
    `memcached/pool Ready with ${size} nodes`,
    async () => {
      const mc = await get();
      last = JSON.stringify(mc.status);
      const ready = mc.status?.conditions?.find((c) => c.type === 'Ready');
      if (mc.status?.observedGeneration !== mc.metadata.generation || ready?.status !== 'True' || mc.status.nodes?.length !== size) {
        cluster = await clusterState();
        return undefined;
      }
      const now = await pods();
      return JSON.stringify(now) === JSON.stringify(mc.status.nodes) ? { mc, pods: now } : undefined;
    },
    60_000,
    () => `${last}\n${cluster}\n${logs.slice(-10).join('\n')}`,
  );

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({
    kc,
    namespaces: [ns],
    concurrency: 2,
    qps: 0,
    burst: 0,
    resyncSeconds: 0,
    version: 'test',
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
  });
  await manager.start();
});

afterAll(async () => {
  await manager?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

it('rolls out a Deployment of spec.size pods; Ready only once they are available; status.nodes names them', async () => {
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'kiln.dev/v1alpha1', kind: 'Memcached', metadata: { name: 'pool', namespace: ns }, spec: { size: 3 } }),
  });
  const { mc, pods: names } = await readyWith(3);
  const wait = await cp.kubectl(['wait', '-n', ns, '--for=condition=Ready', 'memcached/pool', '--timeout=10s']);
  expect(wait.code, wait.stderr).toBe(0);
  expect(names).toHaveLength(3);
  expect(mc.status).toMatchObject({ replicas: 3, readyReplicas: 3, selector: 'app.kubernetes.io/instance=pool,app.kubernetes.io/name=memcached' });
  const deployment = JSON.parse(await cp.kubectlOk(['get', '-n', ns, 'deployment', 'pool', '-o', 'json'])) as { spec: { replicas: number }; status: { availableReplicas: number } };
  expect(deployment.spec.replicas).toBe(3);
  expect(deployment.status.availableReplicas).toBe(3);
  expect(logs.filter((l) => l.startsWith('error') || refusedLine(l))).toEqual([]);
});

it('kubectl patch size: 5 scales it, and status.nodes follows', async () => {
  await cp.kubectlOk(['patch', '-n', ns, 'memcached', 'pool', '--type', 'merge', '-p', '{"spec":{"size":5}}']);
  const { mc } = await readyWith(5);
  expect(mc.spec.size).toBe(5);
});

it('kubectl scale goes through the scale subresource to spec.size', async () => {
  const scale = JSON.parse(await cp.kubectlOk(['get', '--raw', `/apis/kiln.dev/v1alpha1/namespaces/${ns}/memcacheds/pool/scale`])) as {
    spec: { replicas: number };
    status: { replicas: number; selector: string };
  };
  expect(scale).toMatchObject({ spec: { replicas: 5 }, status: { replicas: 5, selector: 'app.kubernetes.io/instance=pool,app.kubernetes.io/name=memcached' } });
  await cp.kubectlOk(['scale', '-n', ns, 'memcached/pool', '--replicas=2']);
  const { mc } = await readyWith(2);
  expect(mc.spec.size).toBe(2);
});

it('a pod deleted is replaced, and status.nodes names the new one', async () => {
  const before = await pods();
  await cp.kubectlOk(['delete', 'pod', '-n', ns, before[0]!, '--wait=false']);
  const { pods: after } = await waitFor('a replacement pod listed', async () => {
    const r = await readyWith(2);
    return r.pods.includes(before[0]!) ? undefined : r;
  });
  expect(after).toContain(before[1]!);
  expect(after).not.toContain(before[0]!);
});

it('a size out of bounds is refused at admission, naming the field', async () => {
  const r = await cp.kubectl(['patch', '-n', ns, 'memcached', 'pool', '--type', 'merge', '-p', '{"spec":{"size":101}}']);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/spec\.size/);
});
