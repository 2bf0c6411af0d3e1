/**
 * The runtime agent managing an EtcdCluster's membership against real etcd
 * 3.6.4 processes (the harness's build) and the real control plane, with
 * kiln's controller applying the chart and reporting Ready (the stand-in
 * kubelet makes pods ready).
 *
 * The processes stand in for the pods, as a kubelet would run them: member
 * `kv-<i>` runs while the StatefulSet has more than i replicas, with
 * `--initial-cluster` and `--initial-cluster-state` taken from the agent's
 * ConfigMap `kv-members` (what the pods read through envFrom), restarted a
 * second after it exits (a crash loop), stopped while its pod is gone and
 * started again when the StatefulSet makes it anew (a roll: the data stays),
 * and its data directory is emptied when its claim is replaced or its pod
 * scaled away (the chart's whenScaled: Delete, the agent's deletion on
 * replace; in this test only the agent deletes pods). The agent reaches the
 * members through its per-member endpoint override.
 *
 * A writer puts a key every 25 ms through any member that takes it, from the
 * first healthy cluster to the end; a write no member accepts within 2 s
 * counts as failed. Each scenario prints its time and failed writes; the test
 * line `etcd-figures` is the JSON of them all.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { KubeConfig } from '@kubernetes/client-node';
import { Agent } from '../../agent/agent.js';
import { Manager } from '../../controller/manager.js';
import { memberList, memberStatus, put, rangePrefix, snapshot, type EtcdTarget } from '../../agent/etcd.js';
import { FIELD_MANAGER } from '../../controller/apply/managed-fields.js';
import type { KilnResource } from '../../kinds/types.js';
import { isNotFound } from '../../kube/client.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { startServer, stopServer, type Server } from '../harness/controlplane.js';
import { freePorts } from '../harness/ports.js';
import { waitFor as waitUntil } from '../harness/wait.js';

const run = promisify(execFile);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

let cp: ControlPlaneClient;
let agent: Agent;
let manager: Manager;
let dir: string;
const ns = `kiln-agent-etcd-${randomBytes(3).toString('hex')}`;
const name = 'kv';
const MAX = 5;
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000) =>
  waitUntil(what, fn, timeoutMs, () =>
    [lastStatus, ...logs.filter((l) => !l.includes('watch silent')).slice(-40), ...members.map((m) => `kv-${m.ordinal}: ${m.server ? 'running' : 'stopped'} restarts ${m.restarts}`)].join('\n'),
  );
const binDir = () => inject('binDir');

interface Member {
  ordinal: number;
  client: number;
  peer: number;
  server?: Server;
  podUid?: string;
  claimUid?: string;
  restarts: number;
  nextStart: number;
}
const members: Member[] = [];
const clientUrl = (i: number) => `http://127.0.0.1:${members[i]!.client}`;
const target = (i: number): EtcdTarget => ({ url: clientUrl(i), timeoutMs: 2_000 });
const dataDir = (i: number) => path.join(dir, `kv-${i}`);

const get = async (apiVersion: string, kind: string, n: string): Promise<Any> => {
  try {
    return await agent.client.get({ apiVersion, kind, namespace: ns, name: n });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
};

// --- the stand-in kubelet for the members ---------------------------------
let stopping = false;
async function startMember(m: Member, env: Record<string, string>): Promise<void> {
  m.server = await startServer(
    `kv-${m.ordinal}-${m.restarts}`,
    path.join(binDir(), 'etcd'),
    [
      `--name=kv-${m.ordinal}`,
      `--data-dir=${dataDir(m.ordinal)}`,
      `--initial-cluster-token=${ns}.${name}`,
      `--listen-client-urls=${clientUrl(m.ordinal)}`,
      `--advertise-client-urls=${clientUrl(m.ordinal)}`,
      `--listen-peer-urls=http://127.0.0.1:${m.peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${m.peer}`,
      `--initial-cluster=${env['ETCD_INITIAL_CLUSTER']}`,
      `--initial-cluster-state=${env['ETCD_INITIAL_CLUSTER_STATE']}`,
      // Two shared cores: a longer election timeout than the default 1 s keeps a busy machine from forcing elections.
      '--election-timeout=2500',
      '--log-level=warn',
    ],
    dir,
    process.pid,
  );
  m.restarts++;
}
async function stopMember(m: Member, wipe: boolean): Promise<void> {
  const s = m.server;
  m.server = undefined;
  if (s) await stopServer(s, 5_000);
  if (wipe) await rm(dataDir(m.ordinal), { recursive: true, force: true });
}
async function superviseOnce(): Promise<void> {
  const sts = await get('apps/v1', 'StatefulSet', name);
  const cm = await get('v1', 'ConfigMap', `${name}-members`);
  if (!sts || !cm) return;
  const replicas: number = sts.spec.replicas ?? 1;
  const pods = await agent.client.list<Any>({ apiVersion: 'v1', kind: 'Pod', namespace: ns });
  // The pvc-protection controller's part (the test control plane does not run it): a deleted claim whose pod is gone goes.
  const claims = await agent.client.list<Any>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: ns });
  for (const c of claims.items) {
    if (c.metadata.deletionTimestamp && c.metadata.finalizers?.length && !pods.items.some((p: Any) => `data-${p.metadata.name}` === c.metadata.name)) {
      await agent.client.mergePatch({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: ns, name: c.metadata.name }, { metadata: { finalizers: null } });
    }
  }
  for (const m of members) {
    if (m.ordinal >= replicas) {
      if (m.server || m.podUid) await stopMember(m, true);
      m.podUid = undefined;
      continue;
    }
    const pod = pods.items.find((p: Any) => p.metadata.name === `kv-${m.ordinal}` && !p.metadata.deletionTimestamp);
    if (!pod) {
      // A pod deleted (a roll, a replace): its member stops, as the kubelet would stop its container.
      if (m.podUid && m.server) await stopMember(m, false);
      continue;
    }
    const claim = claims.items.find((c: Any) => c.metadata.name === `data-kv-${m.ordinal}` && !c.metadata.deletionTimestamp);
    // A new pod restarts the member; on a new claim (a replace) it starts empty.
    if (m.podUid && m.podUid !== pod.metadata.uid) await stopMember(m, m.claimUid !== claim?.metadata.uid);
    m.podUid = pod.metadata.uid;
    m.claimUid = claim?.metadata.uid;
    if (m.server && m.server.exitCode !== undefined) {
      m.server = undefined;
      m.nextStart = Date.now() + 1_000;
    }
    if (!m.server && Date.now() >= m.nextStart) await startMember(m, cm.data);
  }
}
async function supervise(): Promise<void> {
  while (!stopping) {
    try {
      await superviseOnce();
    } catch (err) {
      logs.push(`supervisor: ${(err as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

// --- the writer -----------------------------------------------------------
const writer = { acked: new Map<string, string>(), failed: 0, total: 0, running: false, preferred: 0 };
async function write(): Promise<void> {
  while (writer.running) {
    const key = `w/${String(writer.total).padStart(7, '0')}`;
    const value = randomBytes(6).toString('hex');
    writer.total++;
    let ok = false;
    for (let k = 0; k < MAX && !ok; k++) {
      const i = (writer.preferred + k) % MAX;
      if (!members[i]!.server) continue;
      try {
        await put({ url: clientUrl(i), timeoutMs: 2_000 }, key, value);
        writer.preferred = i;
        ok = true;
      } catch {
        /* the next member */
      }
    }
    if (ok) writer.acked.set(key, value);
    else writer.failed++;
    await new Promise((r) => setTimeout(r, 25));
  }
}

const apply = (obj: unknown) => cp.kubectlOk(['apply', '--server-side', '--field-manager=kiln-test', '-f', '-'], { input: JSON.stringify(obj) });
const cluster = (spec: Record<string, unknown>): KilnResource => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'EtcdCluster', metadata: { name, namespace: ns }, spec: { version: '3.6.4', ...spec } });
const membersHealthy = (size: number, timeoutMs = 120_000) =>
  waitFor(
    `${size} healthy members`,
    async () => {
      const ec = await get('kiln.dev/v1alpha1', 'EtcdCluster', name);
      const c = ec?.status?.conditions?.find((x: Any) => x.type === 'MembersHealthy');
      return c?.status === 'True' && ec.status.members?.length === size && c.message.startsWith(`${size}/${size}`) ? ec : undefined;
    },
    timeoutMs,
  );

/** The controller's Ready: the StatefulSet rolled out at `size` ready members (the stand-in kubelet makes pods ready). */
const controllerReady = (size: number) =>
  waitFor(`Ready with ${size}/${size} members`, async () => {
    const ec = await get('kiln.dev/v1alpha1', 'EtcdCluster', name);
    const c = ec?.status?.conditions?.find((x: Any) => x.type === 'Ready');
    lastStatus = JSON.stringify(c);
    return c?.status === 'True' && c.message.startsWith(`${size}/${size} members ready`) && ec.status.readyReplicas === size ? ec : undefined;
  });
let lastStatus = '';
const figures: Record<string, Record<string, number>> = {};
async function scenario<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const failed0 = writer.failed;
  const total0 = writer.total;
  const t0 = Date.now();
  const out = await fn();
  figures[label] = { seconds: (Date.now() - t0) / 1000, failedWrites: writer.failed - failed0, writes: writer.total - total0 };
  console.log(`etcd scenario ${label}: ${JSON.stringify(figures[label])}`);
  return out;
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-etcd-'));
  await mkdir(path.join(dir, 'snapshots'));
  const ports = await freePorts(MAX * 2);
  for (let i = 0; i < MAX; i++) members.push({ ordinal: i, client: ports[2 * i]!, peer: ports[2 * i + 1]!, restarts: 0, nextStart: 0 });
  await cp.kubectlOk(['create', 'namespace', ns]);
  agent = new Agent({
    kc: loadKubeConfig({ kubeconfig: cp.kubeconfig }),
    namespaces: [ns],
    concurrency: 2,
    qps: 0,
    burst: 0,
    passwordIntervalSeconds: 30,
    databaseCheckSeconds: 30,
    endpoints: Object.fromEntries(members.map((m) => [`EtcdCluster/${ns}/kv-${m.ordinal}`, `${clientUrl(m.ordinal)},http://127.0.0.1:${m.peer}`])),
    etcd: { replaceAfterMs: 6_000, stepMs: 500, steadyMs: 2_000, snapshotDir: path.join(dir, 'snapshots') },
    log,
  });
  await agent.start();
  // kiln's controller renders and applies the chart, and reports Ready from the StatefulSet at spec.size members.
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({ kc, namespaces: [ns], concurrency: 2, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
  await manager.start();
  void supervise();
}, 120_000);

afterAll(async () => {
  writer.running = false;
  stopping = true;
  await agent?.stop();
  await manager?.stop();
  for (const m of members) await stopMember(m, false);
  console.log(`etcd-figures ${JSON.stringify(figures)}`);
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('EtcdCluster membership (agent, real etcd)', () => {
  it('bootstraps one seed member, then grows to 3 one learner at a time', async () => {
    await apply(cluster({ size: 3 }));
    await scenario('bootstrap 0->3', () => membersHealthy(3));
    await controllerReady(3);
    const cm = await get('v1', 'ConfigMap', `${name}-members`);
    expect(cm.data.ETCD_INITIAL_CLUSTER_STATE).toBe('existing');
    expect(cm.data.ETCD_INITIAL_CLUSTER.split(',')).toEqual([0, 1, 2].map((i) => `kv-${i}=http://127.0.0.1:${members[i]!.peer}`));
    const list = await memberList(target(0));
    expect(list.map((m) => m.name).sort()).toEqual(['kv-0', 'kv-1', 'kv-2']);
    expect(list.every((m) => !m.isLearner)).toBe(true);
    writer.running = true;
    void write();
  }, 180_000);

  it("kiln's server-side apply of the chart leaves the agent's replicas alone", async () => {
    // Drift in a field kiln owns: the controller applies its render again (force), and replicas stay the agent's.
    await cp.kubectlOk(['-n', ns, 'patch', 'statefulset', name, '--type=merge', '-p', '{"spec":{"revisionHistoryLimit":5}}']);
    const sts = await waitFor('the controller to apply the StatefulSet again', async () => {
      const o = await get('apps/v1', 'StatefulSet', name);
      return o?.spec.revisionHistoryLimit === 10 ? o : undefined;
    });
    expect(sts.spec.replicas).toBe(3);
    const owners = (sts.metadata.managedFields as Any[]).filter((f) => JSON.stringify(f.fieldsV1 ?? {}).includes('"f:replicas"')).map((f) => f.manager);
    expect(owners).not.toContain(FIELD_MANAGER);
  });

  it('scales 3 -> 5 -> 3 with no write lost and every acknowledged key intact', async () => {
    await waitFor('the writer', () => writer.acked.size > 20);
    await apply(cluster({ size: 5 }));
    const five = await scenario('scale 3->5', () => membersHealthy(5, 180_000));
    await controllerReady(5);
    expect(five.status.members.map((m: Any) => m.name).sort()).toEqual(['kv-0', 'kv-1', 'kv-2', 'kv-3', 'kv-4']);
    expect(five.status.members.filter((m: Any) => m.leader)).toHaveLength(1);
    expect(five.status.members.every((m: Any) => m.version === '3.6.4' && m.healthy && m.dbSize > 0)).toBe(true);
    await apply(cluster({ size: 3 }));
    await scenario('scale 5->3', () => membersHealthy(3, 180_000));
    expect((await memberList(target(0))).map((m) => m.name).sort()).toEqual(['kv-0', 'kv-1', 'kv-2']);
    expect((await get('apps/v1', 'StatefulSet', name)).spec.replicas).toBe(3);
    expect(figures['scale 3->5']!.failedWrites).toBe(0);
    expect(figures['scale 5->3']!.failedWrites).toBe(0);
    const acked = new Map(writer.acked);
    const stored = await rangePrefix(target(0), 'w/');
    const missing = [...acked].filter(([k, v]) => stored.get(k) !== v);
    expect(missing).toEqual([]);
    expect(acked.size).toBeGreaterThan(50);
  }, 420_000);

  it('replaces a member whose data directory was wiped (remove, add, empty volume)', async () => {
    const before = await memberList(target(0));
    const oldId = before.find((m) => m.name === 'kv-1')!.id;
    const m1 = members[1]!;
    await scenario('replace wiped kv-1', async () => {
      await stopMember(m1, true);
      await mkdir(dataDir(1), { recursive: true });
      // The supervisor starts it again on an empty directory: it cannot rejoin as the old member and crash-loops
      // until the agent replaces it.
      await waitFor(
        'the agent to replace kv-1',
        async () => {
          const ec = await get('kiln.dev/v1alpha1', 'EtcdCluster', name);
          lastStatus = JSON.stringify(ec?.status?.conditions?.find((x: Any) => x.type === 'MembersHealthy'));
          const list = await memberList(target(0)).catch(() => []);
          const now = list.find((m) => m.name === 'kv-1');
          return now && now.id !== oldId && !now.isLearner;
        },
        180_000,
      );
      return membersHealthy(3, 120_000);
    });
    expect(figures['replace wiped kv-1']!.failedWrites).toBe(0);
    // Read through the replaced member: it holds every write acknowledged before the read (linearizable range).
    const acked = new Map(writer.acked);
    const stored = await rangePrefix(target(1), 'w/');
    expect([...acked].filter(([k, v]) => stored.get(k) !== v)).toEqual([]);
  }, 420_000);

  it('a snapshot through the gateway is one etcdutl accepts', async () => {
    const file = path.join(dir, 'kv.snapshot.db');
    const bytes = await snapshot(target(0), file, 1 << 30);
    expect(bytes).toBeGreaterThan(0);
    const etcdutl = path.join(binDir(), 'etcdutl');
    expect(existsSync(etcdutl), `${etcdutl}: run scripts/build-control-plane.sh`).toBe(true);
    const { stdout } = await run(etcdutl, ['snapshot', 'status', file, '-w', 'json']);
    const status = JSON.parse(stdout) as { hash: number; revision: number; totalKey: number; totalSize: number };
    // The gateway's stream ends with the 32-byte sha256 of the database, which etcdutl checks and does not count.
    expect(status.totalSize).toBe(bytes - 32);
    expect(status.totalKey).toBeGreaterThanOrEqual(writer.acked.size > 0 ? 50 : 0);
    expect(status.revision).toBeGreaterThan(0);
  });

  it('takes a snapshot before a version change and records it in status', async () => {
    const revisionBefore = Number((await memberStatus(target(0))).revision);
    await apply(cluster({ size: 3, version: '3.6.5' }));
    const ec = await waitFor('status.lastSnapshot', async () => {
      const o = await get('kiln.dev/v1alpha1', 'EtcdCluster', name);
      return o?.status?.lastSnapshot ? o : undefined;
    });
    const snap = ec.status.lastSnapshot;
    expect(snap).toMatchObject({ version: '3.6.4' });
    expect(snap.name).toMatch(new RegExp(`^${ns}\\.kv\\.\\d{8}T\\d{6}Z\\.rev\\d+\\.db$`));
    expect(snap.revision).toBeGreaterThanOrEqual(revisionBefore);
    const file = path.join(dir, 'snapshots', snap.name);
    const { stdout } = await run(path.join(binDir(), 'etcdutl'), ['snapshot', 'status', file, '-w', 'json']);
    const status = JSON.parse(stdout) as { revision: number; totalSize: number };
    expect(status.totalSize).toBe(snap.size - 32);
    expect(status.revision).toBeGreaterThanOrEqual(snap.revision);
    // Once per running version: the members still run 3.6.4 (the stand-in has no 3.6.5), and no second snapshot comes.
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await get('kiln.dev/v1alpha1', 'EtcdCluster', name)).status.lastSnapshot).toEqual(snap);
    expect((await readdir(path.join(dir, 'snapshots'))).filter((f) => !f.startsWith('.'))).toEqual([snap.name]);
  });

  it('rolls a pod template change one member at a time, each once every member is healthy again, the leader last', async () => {
    // The version change of the test before rolled the members (OnDelete: only the agent restarts them): let it end.
    await membersHealthy(3);
    await controllerReady(3);
    const podUids = async () =>
      Object.fromEntries(
        (await agent.client.list<Any>({ apiVersion: 'v1', kind: 'Pod', namespace: ns })).items.filter((p: Any) => !p.metadata.deletionTimestamp).map((p: Any) => [p.metadata.name, p.metadata.uid]),
      );
    const before = await podUids();
    expect(Object.keys(before).sort()).toEqual(['kv-0', 'kv-1', 'kv-2']);
    const restartsLogged = logs.filter((l) => l.includes('etcd member restart')).length;
    // Members down at once, as the processes standing in for the pods show it.
    let maxDown = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        maxDown = Math.max(maxDown, members.slice(0, 3).filter((m) => !m.server || m.server.exitCode !== undefined).length);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await scenario('roll 3 members', async () => {
      await apply(cluster({ size: 3, version: '3.6.5', resources: { requests: { cpu: '200m', memory: '256Mi' }, limits: { memory: '256Mi' } } }));
      await waitFor(
        'every pod replaced',
        async () => {
          const now = await podUids();
          return ['kv-0', 'kv-1', 'kv-2'].every((p) => now[p] && now[p] !== before[p]) || undefined;
        },
        180_000,
      );
      await membersHealthy(3);
      await controllerReady(3);
    });
    watching = false;
    await watch;
    expect(maxDown).toBe(1);
    const restarts = logs.filter((l) => l.includes('etcd member restart')).slice(restartsLogged);
    expect(restarts).toHaveLength(3);
    // Followers first; only the last restart may be the leader's.
    expect(restarts.slice(0, 2).every((l) => l.includes('"leader":false'))).toBe(true);
    expect(figures['roll 3 members']!.failedWrites).toBe(0);
  });

  it('refuses a minor-version downgrade or skip at admission', async () => {
    const down = await cp.kubectl(['apply', '--server-side', '--field-manager=kiln-test', '-f', '-'], { input: JSON.stringify(cluster({ size: 3, version: '3.5.21' })) });
    // A patch downgrade within the minor is etcd's to allow, and so is kiln's rule.
    expect((await cp.kubectl(['apply', '--server-side', '--field-manager=kiln-test', '--dry-run=server', '-f', '-'], { input: JSON.stringify(cluster({ size: 3, version: '3.6.4' })) })).code).toBe(0);
    expect(down.code).not.toBe(0);
    expect(down.stderr).toContain('cannot be downgraded');
    const skip = await cp.kubectl(['apply', '--server-side', '--field-manager=kiln-test', '-f', '-'], { input: JSON.stringify(cluster({ size: 3, version: '3.8.0' })) });
    expect(skip.code).not.toBe(0);
    expect(skip.stderr).toContain('one minor version at a time');
  });

  it('quorum held throughout: no write failed in any scenario', () => {
    writer.running = false;
    expect(writer.failed).toBe(0);
    expect(writer.total).toBeGreaterThan(100);
  });
});
