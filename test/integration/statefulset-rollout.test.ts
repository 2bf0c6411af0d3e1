/**
 * A scale-down together with a template change, on the real StatefulSet
 * controller: the rollout must end (Ready=True for the new generation with one
 * member on the update revision). With `updateStrategy: {type: RollingUpdate}`
 * and no `rollingUpdate`, kube-controller-manager v1.34.4 recreated the
 * replaced member from the old revision, deleted it again, and kept failing to
 * write `status.currentReplicas: -1`, so the CacheCluster stayed "2/1 members
 * ready, 0/1 updated, 1 leaving" for ever (the 3-minute soak's failure in CI).
 * See ROLLING_UPDATE in kinds/shared/workload.ts.
 *
 * The namespace is left alone by the shared stand-in kubelet: this test runs one
 * of its own for the namespace only while members may become Ready, so that the
 * second rollout is held mid-way (its new member never Ready) until the
 * scale-down has been applied. With the shared one, a loaded run could finish
 * that rollout between two polls and never see it under way.
 */
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { Manager } from '../../controller/manager.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { MANUAL_LABEL, startStandInKubelet, type StandInKubelet } from '../harness/stand-in-kubelet.js';
import { waitFor } from '../harness/wait.js';

let cp: ControlPlaneClient;
let manager: Manager;
const ns = `kiln-sts-rollout-${randomBytes(3).toString('hex')}`;
const logs: string[] = [];

interface Cond {
  type: string;
  status: string;
  message: string;
}
interface Live {
  metadata: { generation: number };
  status?: Record<string, unknown> & { observedGeneration?: number; conditions?: Cond[] };
}

const get = async (resource: string, name: string): Promise<Live | undefined> => {
  const r = await cp.kubectl(['get', '-n', ns, resource, name, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as Live) : undefined;
};
const apply = (size: number, version: number) =>
  cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'CacheCluster',
      metadata: { name: 'cache', namespace: ns },
      spec: { size, catalogServers: 1, capacity: '1Gi', image: `registry.example.com/cache/member:1.${version}` },
    }),
  });
/** Ready=True for the resource's current generation. */
let last: { resource?: Live; statefulSet?: Live } = {};
const ready = (what: string) =>
  waitFor(
    what,
    async () => {
      const o = await get('cachecluster', 'cache');
      last = { resource: o, statefulSet: await get('statefulset', 'cache') };
      const c = o?.status?.conditions?.find((x) => x.type === 'Ready');
      return o && o.status?.observedGeneration === o.metadata.generation && c?.status === 'True' ? o : undefined;
    },
    60_000,
    () => `${JSON.stringify(last.resource?.status?.conditions)}\nStatefulSet: ${JSON.stringify(last.statefulSet?.status)}\n${logs.slice(-10).join('\n')}`,
  );

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  await cp.kubectlOk(['label', 'namespace', ns, `${MANUAL_LABEL}=manual`]);
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({
    kc,
    namespaces: [ns],
    concurrency: 4,
    qps: 0,
    burst: 0,
    resyncSeconds: 0,
    version: 'test',
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
  });
  await manager.start();
}, 120_000);

let kubelet: StandInKubelet | undefined;
/** This namespace's members become Ready (a kubelet runs), or stay as they are. */
const kubeletRuns = (on: boolean) => {
  kubelet?.stop();
  kubelet = on ? startStandInKubelet(cp.info(), (m) => logs.push(m), ns) : undefined;
};

afterAll(async () => {
  kubelet?.stop();
  await manager?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

it('a scale-down with a template change, during a rolling update, completes', async () => {
  kubeletRuns(true);
  await apply(2, 1);
  await ready('2 members on 1.1');
  // A second change while the first rollout is under way, as in the soak: the StatefulSet's
  // status still counts a member on the old revision. No kubelet: the replaced member is never
  // Ready, so the rollout waits here.
  kubeletRuns(false);
  await apply(2, 2);
  await waitFor('StatefulSet observes 1.2', async () => {
    const sts = await get('statefulset', 'cache');
    return sts?.status?.observedGeneration === sts?.metadata.generation && sts?.status?.currentRevision !== sts?.status?.updateRevision;
  });
  await apply(1, 3);
  kubeletRuns(true);
  const done = await ready('1 member on 1.3');
  expect(done.status?.conditions?.find((c) => c.type === 'Ready')?.message).toBe('1/1 members ready');
  const sts = await get('statefulset', 'cache');
  expect(sts?.status).toMatchObject({ replicas: 1, readyReplicas: 1, updatedReplicas: 1, currentReplicas: 1 });
  expect(sts?.status?.currentRevision).toBe(sts?.status?.updateRevision);
}, 240_000);
