/**
 * A spec change that lands while a reconcile of the previous generation is in
 * flight is not lost. Found by the soak (seed 14): the reconcile's status write
 * (server-side apply, no precondition) succeeded on the new generation, kiln
 * remembered the returned resourceVersion as "reconciled", and the watch event
 * of that very version was then skipped, so the new spec was never applied and
 * observedGeneration stayed behind for good. Real API server; the race is made
 * certain by changing the spec just before the status write is sent.
 */
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Manager } from '../../controller/manager.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor } from '../harness/wait.js';

let cp: ControlPlaneClient;
let manager: Manager;
const ns = `kiln-lost-${randomBytes(3).toString('hex')}`;
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);

const grid = (name: string, partitions: number) =>
  JSON.stringify({
    apiVersion: 'kiln.dev/v1alpha1',
    kind: 'DataGrid',
    metadata: { name, namespace: ns },
    spec: { cache: 'session-cache', gridType: 'Session', partitions, syncReplicas: 1, asyncReplicas: 0, capacity: '1Gi' },
  });

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  // No resync: a periodic look must not be what rescues the lost generation.
  manager = new Manager({ kc, namespaces: [ns], concurrency: 2, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
  const apply = manager.client.apply.bind(manager.client);
  let raced = false;
  manager.client.apply = (async (obj, fieldManager, subresource, opts) => {
    if (subresource !== 'status' || obj.kind !== 'DataGrid' || obj.metadata.name !== 'race' || raced) return apply(obj, fieldManager, subresource, opts);
    raced = true;
    // The user's next change arrives between kiln's apply of the children and its status write ...
    await cp.kubectlOk(['apply', '--server-side', '--field-manager', 'user', '-f', '-'], { input: grid('race', 17) });
    const written = await apply(obj, fieldManager, subresource, opts);
    // ... and the watch delivers both (the change, then kiln's status write) before the queue
    // runs the key again, as it does on a busy or slow connection.
    await new Promise((r) => setTimeout(r, 2_000));
    return written;
  }) as typeof manager.client.apply;
  await manager.start();
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

describe('a spec change during a reconcile', () => {
  it('is applied and observed, even when the status write of the older generation lands on it', async () => {
    await cp.kubectlOk(['apply', '--server-side', '--field-manager', 'user', '-f', '-'], { input: grid('race', 13) });
    const done = await waitFor(
      'DataGrid race observed at its latest generation with the ConfigMap of partitions 17',
      async () => {
        const r = await cp.kubectl(['get', '-n', ns, 'datagrid', 'race', '-o', 'json']);
        if (r.code !== 0) return undefined;
        const o = JSON.parse(r.stdout) as { metadata: { generation: number }; status?: { observedGeneration?: number } };
        if (o.metadata.generation < 2 || o.status?.observedGeneration !== o.metadata.generation) return undefined;
        const cm = await cp.kubectl(['get', '-n', ns, 'configmap', 'session-cache-grid-race', '-o', 'jsonpath={.data.grid\\.json}']);
        return cm.code === 0 && /"partitions": 17/.test(cm.stdout) ? o : undefined;
      },
      30_000,
      () => logs.slice(-15).join('\n'),
    );
    expect(done.metadata.generation).toBe(2);
  });
});
