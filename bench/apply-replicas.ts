/**
 * `npm run bench:apply -- --replicas 3 [--count 10000]`: the same N
 * DirectoryServices converged by one kiln controller (as it ships: one replica
 * works) and by R replicas with `--sharding dynamic`, each on a fresh control
 * plane of its own in one run. For each: converge time (from the create of the
 * N resources until every one is Synced for its generation), requests and peak
 * RSS per replica (the API server's audit log, one identity per replica;
 * VmHWM from /proc); then one replica (not the assigner) is killed and the
 * rebalance is timed: until every resource it held has been written by its
 * new owner. Target: each of R replicas at most 0.5x the single replica's peak.
 * Prints a table and writes bench/results/apply-replicas.json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_ENV, NODE_FLAGS } from '../install/node-runtime.js';
import { toYamlStream } from '../lib/yaml.js';
import { AuditLog, auditArgs } from '../test/harness/audit-log.js';
import { defaultCrdPaths, DEFAULT_CONTROLLERS, ensureBinaries, startControlPlane, type ControlPlane } from '../test/harness/controlplane.js';
import { cpuSince, directoryService, freePort, getJson, readyzStatus, serverCpu, summarize } from './apply-shared.js';

const SHARD_LABEL = 'shard.kiln.dev/controller';
const RING = 'kiln-controller';
const LEASE_NAMESPACE = 'kiln-system';
const NAMESPACE = 'bench-replicas';
const API = 'kiln.dev/v1alpha1';
const root = new URL('..', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`[bench:apply --replicas ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const round = (x: number, d = 2) => Number(x.toFixed(d));

interface Options {
  replicas: number;
  count: number;
  concurrency: number;
  timeoutS: number;
  keepWork: boolean;
}

interface Kiln {
  metadata: { name: string; generation: number; labels?: Record<string, string> };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string; observedGeneration?: number }[] };
}

const converged = (o: Kiln) => {
  const c = o.status?.conditions?.find((x) => x.type === 'Synced');
  return c?.status === 'True' && c.observedGeneration === o.metadata.generation;
};

class Replica {
  readonly child: ChildProcess;
  private readonly exit: Promise<void>;
  constructor(
    readonly user: string,
    kubeconfig: string,
    readonly healthPort: number,
    readonly logFile: string,
    sharded: boolean,
    concurrency: number,
  ) {
    const fd = openSync(logFile, 'a');
    this.child = spawn(
      process.execPath,
      [
        ...NODE_FLAGS,
        join(root, 'build/cli/kiln.js'),
        'controller',
        '--kubeconfig',
        kubeconfig,
        '--namespace',
        NAMESPACE,
        '--concurrency',
        String(concurrency),
        '--health-probe-bind-address',
        `:${healthPort}`,
        '--metrics-bind-address',
        `:${healthPort}`,
        '--resync',
        '0',
        '--log-level',
        'warn',
        ...(sharded ? ['--sharding', 'dynamic', '--leader-election-namespace', LEASE_NAMESPACE, '--sharding-ring', RING] : []),
      ],
      { cwd: root, stdio: ['ignore', fd, fd], env: { ...process.env, ...NODE_ENV, KUBECONFIG: '' } },
    );
    closeSync(fd);
    this.exit = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited) throw new Error(`${this.user} exited before it was ready; log ${this.logFile}`);
      const status = await readyzStatus(this.healthPort);
      if (status === 200) return;
      if (Date.now() > deadline) throw new Error(`${this.user} not ready after ${timeoutMs} ms; log ${this.logFile}`);
      await sleep(200);
    }
  }

  private field(name: string): number {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    return Math.round(Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) / 1024);
  }

  peakRssMiB(): number {
    return this.field('VmHWM');
  }

  rssMiB(): number {
    return this.field('VmRSS');
  }

  kill(): Promise<void> {
    if (!this.exited) this.child.kill('SIGKILL');
    return this.exit;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    if (!(await Promise.race([this.exit.then(() => true), sleep(15_000).then(() => false)]))) await this.kill();
  }
}

/** One configuration (1 unsharded replica, or R sharded ones) on a control plane of its own. */
async function measure(o: Options, work: string, binDir: string, replicas: number) {
  const sharded = replicas > 1;
  const tag = sharded ? `${replicas}-sharded` : '1';
  const users = Array.from({ length: replicas }, (_, i) => `kiln-replica-${i + 1}`);
  const auditFile = join(work, `audit-${tag}.log`);
  const policy = join(work, `audit-policy-${tag}.yaml`);
  writeFileSync(policy, AuditLog.policy(users));
  const audit = new AuditLog(auditFile);
  log(`${tag}: control plane`);
  const cp = await startControlPlane({
    binDir,
    crdPaths: defaultCrdPaths(),
    // No StatefulSet controller: no pods would run (no scheduler, no kubelet), as in bench/apply.
    controllers: DEFAULT_CONTROLLERS.filter((c) => c !== 'statefulset-controller'),
    apiserverArgs: auditArgs(auditFile, policy),
  });
  const running: Replica[] = [];
  try {
    for (const ns of [NAMESPACE, LEASE_NAMESPACE]) await cp.kubectlOk(['create', 'namespace', ns]);
    const ids = await Promise.all(users.map((u) => cp.mintIdentity(u, ['system:masters'])));
    for (let i = 0; i < replicas; i++) running.push(new Replica(users[i]!, ids[i]!.kubeconfig, await freePort(), join(work, `${tag}-${users[i]}.log`), sharded, o.concurrency));
    await Promise.all(running.map((r) => r.waitReady(120_000)));
    // What a replica holds with no resource yet (code, caches empty): the part sharding cannot divide.
    await sleep(2000);
    const idle = running.map((r) => r.rssMiB());
    const file = join(work, `${tag}-directoryservices.yaml`);
    writeFileSync(file, toYamlStream(Array.from({ length: o.count }, (_, i) => directoryService(i, NAMESPACE))));
    log(`${tag}: create ${o.count} DirectoryServices, wait until all are Synced`);
    const cpuBefore = serverCpu(cp.pids);
    const createdAt = Date.now();
    await cp.kubectlOk(['apply', '--server-side', '--field-manager=bench', '-f', file], { timeoutMs: o.timeoutS * 1000 });
    const list = () => getJson<{ items: Kiln[] }>(cp, `/apis/${API}/namespaces/${NAMESPACE}/directoryservices`);
    const deadline = Date.now() + o.timeoutS * 1000;
    let items: Kiln[] = [];
    for (;;) {
      items = (await list()).items;
      const done = items.filter(converged).length;
      if (items.length === o.count && done === o.count) break;
      for (const r of running) if (r.exited) throw new Error(`${r.user} exited; log ${r.logFile}`);
      if (Date.now() > deadline) throw new Error(`${tag}: only ${done}/${o.count} converged after ${o.timeoutS} s`);
      await sleep(o.count > 2000 ? 5000 : 1000);
    }
    const convergeSeconds = (Date.now() - createdAt) / 1000;
    const serverCpuSeconds = cpuSince(cpuBefore, serverCpu(cp.pids));
    audit.poll();
    const perReplica = running.map((r, i) => {
      const s = summarize(audit.select(r.user, -Infinity, createdAt + convergeSeconds * 1000));
      const owned = sharded ? items.filter((i) => i.metadata.labels?.[SHARD_LABEL] && leaseUser(audit, i.metadata.labels[SHARD_LABEL]) === r.user).length : o.count;
      const peak = r.peakRssMiB();
      return { user: r.user, resources: owned, idleRssMiB: idle[i]!, peakRssMiB: peak, aboveIdleMiB: peak - idle[i]!, requests: s.total, writes: s.writes, byVerb: s.byVerb };
    });
    log(`${tag}: converged in ${round(convergeSeconds, 1)} s; ${perReplica.map((p) => `${p.user} ${p.resources} resources, peak ${p.peakRssMiB} MiB, ${p.requests} requests`).join('; ')}`);
    let rebalance: Record<string, unknown> | undefined;
    if (sharded) rebalance = await killOne(cp, audit, running, o);
    return { replicas, sharded, convergeSeconds: round(convergeSeconds), serverCpuSeconds, perReplica, rebalance };
  } finally {
    for (const r of running) await r.stop();
    await cp.stop();
  }
}

/** The user whose requests renew the member Lease of `identity` (audit log: update leases/<ring>-<identity>). */
function leaseUser(audit: AuditLog, identity: string): string | undefined {
  for (const r of audit.requests.values()) if (r.endpoint === 'leases' && r.object === `${LEASE_NAMESPACE}/${RING}-${identity}`) return r.user;
  return undefined;
}

/**
 * Kills one replica that is not the assigner (SIGKILL: its Lease is not released) and waits until
 * every resource it held has been written by its new owner (the first write after the kill by
 * another replica, from the audit log).
 */
async function killOne(cp: ControlPlane, audit: AuditLog, running: Replica[], o: Options) {
  const sharderLease = await getJson<{ spec?: { holderIdentity?: string; leaseDurationSeconds?: number } }>(cp, `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NAMESPACE}/leases/${RING}-sharder`);
  const assigner = leaseUser(audit, sharderLease.spec?.holderIdentity ?? '');
  const victim = running.find((r) => r.user !== assigner)!;
  const items = (await getJson<{ items: Kiln[] }>(cp, `/apis/${API}/namespaces/${NAMESPACE}/directoryservices`)).items;
  const held = new Set(items.filter((i) => leaseUser(audit, i.metadata.labels?.[SHARD_LABEL] ?? '') === victim.user).map((i) => `${NAMESPACE}/${i.metadata.name}`));
  log(`kill ${victim.user} (${held.size} resources; the assigner is ${assigner})`);
  const killedAt = Date.now();
  await victim.kill();
  const deadline = killedAt + o.timeoutS * 1000;
  const firstWrite = new Map<string, number>();
  for (;;) {
    await sleep(1000);
    audit.poll();
    for (const r of audit.requests.values()) {
      if (r.at < killedAt || r.user === victim.user || !['patch', 'create', 'update'].includes(r.verb) || !r.object) continue;
      if (r.userAgent?.startsWith('kiln-sharder/')) continue;
      const owner = /^(.+\/ds-\d{5})(?:-.*)?$/.exec(r.object)?.[1];
      if (owner && held.has(owner) && !firstWrite.has(owner)) firstWrite.set(owner, r.at);
    }
    if (firstWrite.size === held.size) break;
    if (Date.now() > deadline) throw new Error(`rebalance: only ${firstWrite.size}/${held.size} resources taken over after ${o.timeoutS} s`);
  }
  const times = [...firstWrite.values()].map((t) => t - killedAt).sort((a, b) => a - b);
  const seconds = round(times[times.length - 1]! / 1000);
  log(`rebalance: ${held.size} resources taken over ${seconds} s after the kill (lease ${sharderLease.spec?.leaseDurationSeconds ?? 15} s)`);
  return {
    killed: victim.user,
    resources: held.size,
    leaseDurationSeconds: sharderLease.spec?.leaseDurationSeconds ?? 15,
    firstTakeoverSeconds: round(times[0]! / 1000),
    allTakenOverSeconds: seconds,
  };
}

export async function runReplicas(o: Options): Promise<void> {
  if (!(o.replicas >= 2)) throw new Error('--replicas must be at least 2 (one replica is always measured as the baseline)');
  const loadAtStart = loadavg().map((l) => round(l));
  log('build (npm run -s build)');
  const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed: ${build.stdout}${build.stderr}`);
  const binDir = await ensureBinaries();
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-replicas-'));
  let failed = true;
  try {
    const single = await measure(o, work, binDir, 1);
    const sharded = await measure(o, work, binDir, o.replicas);
    const base = single.perReplica[0]!.peakRssMiB;
    const baseAbove = single.perReplica[0]!.aboveIdleMiB;
    const rows = [single, sharded].flatMap((m) =>
      m.perReplica.map((p) => ({
        configuration: m.sharded ? `${m.replicas} replicas, --sharding dynamic` : '1 replica',
        replica: p.user,
        resources: p.resources,
        convergeSeconds: m.convergeSeconds,
        requests: p.requests,
        writes: p.writes,
        idleRssMiB: p.idleRssMiB,
        peakRssMiB: p.peakRssMiB,
        ofSingle: round(p.peakRssMiB / base),
        aboveIdleMiB: p.aboveIdleMiB,
        aboveIdleOfSingle: round(p.aboveIdleMiB / baseAbove),
      })),
    );
    console.table(rows);
    const worst = Math.max(...sharded.perReplica.map((p) => p.peakRssMiB));
    const worstAbove = Math.max(...sharded.perReplica.map((p) => p.aboveIdleMiB));
    const target = worst <= 0.5 * base;
    console.log(
      `peak RSS: single ${base} MiB; each of ${o.replicas} at most ${worst} MiB (${round(worst / base)}x; target <= 0.5x: ${target ? 'met' : 'MISSED'}); above the idle process (${single.perReplica[0]!.idleRssMiB} MiB single, the part sharding divides): single ${baseAbove} MiB, each of ${o.replicas} at most ${worstAbove} MiB (${round(worstAbove / baseAbove)}x); converge ${single.convergeSeconds} s -> ${sharded.convergeSeconds} s; rebalance after a kill: ${JSON.stringify(sharded.rebalance)}`,
    );
    const result = {
      benchmark: 'apply --replicas',
      date: new Date().toISOString(),
      machine: { cores: availableParallelism(), cpu: cpus()[0]?.model, node: process.version, loadAverageAtStart: loadAtStart },
      settings: {
        resources: o.count,
        kind: 'DirectoryService',
        replicas: o.replicas,
        concurrencyPerReplica: o.concurrency,
        note: 'Each configuration on a fresh control plane. converge = from the create of the N resources until all are Synced for their generation. Requests per replica from the audit log (one identity each), until converged. peakRssMiB = VmHWM at converge; idleRssMiB = VmRSS 2 s after /readyz, before any resource exists (code and empty caches, which sharding cannot divide); aboveIdleMiB = peak - idle. rebalance = a replica that is not the assigner is SIGKILLed; allTakenOverSeconds = until every resource it held has a write from its new owner.',
      },
      rows,
      single,
      sharded,
      peakRssTarget: { singleMiB: base, worstShardedMiB: worst, ratio: round(worst / base), met: target },
      aboveIdle: { singleMiB: baseAbove, worstShardedMiB: worstAbove, ratio: round(worstAbove / baseAbove) },
    };
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    writeFileSync(join(root, 'bench/results/apply-replicas.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log('wrote bench/results/apply-replicas.json');
    failed = false;
  } finally {
    if (failed || o.keepWork) log(`logs kept in ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}
