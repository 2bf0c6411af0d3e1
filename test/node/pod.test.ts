/**
 * The node is real: a Pod's containers run in containerd, its readiness comes
 * from its probe, and it is reachable from this process by pod IP and by
 * Service IP, and from another pod by DNS name.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor } from '../harness/wait.js';

let cp: ControlPlaneClient;
let ns: string;
const PASSWORD = randomBytes(12).toString('hex');

interface Pod {
  metadata: { creationTimestamp: string };
  status: { phase?: string; podIP?: string; conditions?: { type: string; status: string; lastTransitionTime: string }[]; containerStatuses?: { ready: boolean; started?: boolean }[] };
}

async function pod(name: string): Promise<Pod> {
  return JSON.parse(await cp.kubectlOk(['get', 'pod', '-n', ns, name, '-o', 'json'])) as Pod;
}
const condition = (p: Pod, type: string) => p.status.conditions?.find((c) => c.type === type);

function postgresPod(name: string, readinessCommand: string[]) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app: name } },
    spec: {
      containers: [
        {
          name: 'postgres',
          image: 'docker.io/library/postgres:17',
          args: ['-c', 'listen_addresses=*'],
          env: [
            { name: 'POSTGRES_PASSWORD', value: PASSWORD },
            { name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' },
          ],
          readinessProbe: { exec: { command: readinessCommand }, periodSeconds: 2, failureThreshold: 1 },
          volumeMounts: [{ name: 'data', mountPath: '/var/lib/postgresql/data' }],
        },
      ],
      volumes: [{ name: 'data', emptyDir: {} }],
    },
  };
}

async function query(host: string, sql: string): Promise<unknown> {
  const client = new pg.Client({ host, port: 5432, user: 'postgres', password: PASSWORD, database: 'postgres', connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return (await client.query<{ v: unknown }>(sql)).rows[0]?.v;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  cp = connectControlPlane(inject('nodeControlPlane'));
  ns = `pods-${randomBytes(3).toString('hex')}`;
  await cp.kubectlOk(['create', 'namespace', ns]);
});

afterAll(async () => {
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

describe('a real node', () => {
  it('is a Ready Node that reports its capacity', async () => {
    const node = JSON.parse(await cp.kubectlOk(['get', 'node', inject('node').name, '-o', 'json'])) as {
      status: { conditions: { type: string; status: string }[]; capacity: Record<string, string>; nodeInfo: { containerRuntimeVersion: string; kubeletVersion: string } };
      spec: { taints?: unknown[] };
    };
    expect(node.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/1\./);
    expect(node.status.nodeInfo.kubeletVersion).toBe(cp.version);
    expect(Number(node.status.capacity.cpu)).toBeGreaterThan(0);
    expect(node.spec.taints ?? []).toEqual([]);
    console.log(`[kiln] control plane started in ${inject('node').controlPlaneStartupMs} ms, node Ready in ${inject('node').startupMs} ms`);
  });

  it('runs a pod whose readiness follows its probe, reachable by pod IP, Service IP and DNS name', async () => {
    await cp.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          postgresPod('db', ['pg_isready', '-h', '127.0.0.1', '-U', 'postgres']),
          // The same server, with a probe that never passes: Running, never Ready.
          postgresPod('never-ready', ['false']),
          { apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: ns }, spec: { selector: { app: 'db' }, ports: [{ port: 5432 }] } },
        ],
      }),
    });
    const ready = await waitFor(
      'pod db Ready',
      async () => {
        const p = await pod('db');
        return condition(p, 'Ready')?.status === 'True' && p;
      },
      180_000,
    );
    const startMs = Date.parse(condition(ready, 'Ready')!.lastTransitionTime) - Date.parse(ready.metadata.creationTimestamp);
    console.log(`[kiln] pod db: created -> Ready in ${startMs} ms (PostgreSQL 17 from the node's image; includes unpacking it the first time)`);
    expect(ready.status.phase).toBe('Running');
    expect(ready.status.podIP).toMatch(/^10\.244\.0\./);

    // Reachable from this process, by pod IP and through kube-proxy's Service rules.
    // Ready can come a moment before the pod's address answers from the host: the official image's entrypoint
    // runs a first server on 127.0.0.1 only (where the probe looks) before the real one, and the bridge's first
    // packet to a new address may be lost. Retried for 30 s; the address must answer.
    const viaPodIp = await waitFor('the pod IP to answer', () => query(ready.status.podIP!, 'select 1 as v').catch(() => undefined), 30_000);
    expect(viaPodIp).toBe(1);
    const serviceIp = (await cp.kubectlOk(['get', 'service', '-n', ns, 'db', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    // The Service answers once kube-proxy has the pod's endpoint, a moment after the pod is Ready.
    const viaService = await waitFor('the Service to answer', () => query(serviceIp, "select current_setting('listen_addresses') as v").catch(() => undefined), 30_000);
    expect(viaService).toBe('*');

    // The other pod runs but its probe fails: Ready stays False.
    const never = await waitFor(
      'pod never-ready running',
      async () => {
        const p = await pod('never-ready');
        return p.status.containerStatuses?.[0]?.started === true && p;
      },
      120_000,
    );
    await new Promise((r) => setTimeout(r, 6_000)); // three probe periods
    expect(condition(await pod('never-ready'), 'Ready')?.status).toBe('False');
    expect(never.status.phase).toBe('Running');

    // From another pod: CoreDNS resolves the Service name; logs come back through the kubelet.
    await cp.kubectlOk([
      'run',
      '-n',
      ns,
      'client',
      '--image=docker.io/library/postgres:17',
      '--restart=Never',
      `--env=PGPASSWORD=${PASSWORD}`,
      '--command',
      '--',
      'psql',
      '-h',
      `db.${ns}.svc.cluster.local`,
      '-U',
      'postgres',
      '-tAc',
      "select 'reached ' || current_database()",
    ]);
    await waitFor(
      'client pod Succeeded',
      async () => (await pod('client')).status.phase === 'Succeeded',
      120_000,
      () => 'client pod did not succeed',
    );
    expect((await cp.kubectlOk(['logs', '-n', ns, 'client'])).trim()).toBe('reached postgres');
  });
});
