/**
 * Apply-mode benchmark against a real control plane (test/harness): N
 * DirectoryService resources (4 objects each) reach the cluster, in one run,
 * each way in a namespace of its own:
 *
 *  1. kubectl (a reference row): rendered offline and applied with one
 *     `kubectl apply --server-side` of a multi-document file;
 *  2. the Go peer (bench/peer-operator): the operator a user would otherwise
 *     write, on controller-runtime with its defaults, applying kiln's render of
 *     the same children (a template this benchmark writes), the same status
 *     and one Event per resource;
 *  3. the kiln controller, run as its own process (compiled build, as
 *     shipped).
 *
 * For each controller: time from creating the N resources until every one is
 * converged for its generation, its requests, CPU and memory, the control
 * plane's CPU meanwhile and the converge floor that CPU sets; then, after
 * restarting it with everything in place, how many writes the restart costs
 * (must be 0 for kiln).
 *
 * The API requests each client sends are counted on the API server side, from
 * its audit log: the controllers and the baseline kubectl run as identities of
 * their own (client certificates minted by the harness), so nothing else the
 * benchmark or the control plane does is counted. Prints a table and writes
 * bench/results/apply.json.
 *
 *   npm run bench:apply [-- --count 1000 --qps 0 --concurrency 16 --timeout 900 --peers kubectl,go,kiln]
 *   npm run bench:apply -- --scale-run --count 10000     (go and kiln only; into scale.<count>)
 *
 * --scale-run gives each controller a fresh control plane (--shared-control-plane
 * keeps one; --fresh-control-plane asks for fresh ones without --scale-run).
 * --peers picks a subset (development); the results file is written only when
 * all of them ran (with --scale-run: go and kiln). By default neither controller
 * has a client-side request limit, as each ships: controller-runtime v0.22's
 * GetConfig sets QPS -1 and kiln's --qps defaults to 0, both leaving it to the API
 * server's Priority and Fairness. --qps N gives both a limit of N (burst N).
 * kube-controller-manager runs without its StatefulSet controller unless
 * --statefulset-controller is given: there is no scheduler or kubelet, so its
 * Pods would never run, and creating Pods and PVCs for 2N StatefulSets at its
 * own 20 QPS would load the API server in the background of every figure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_ENV, NODE_FLAGS } from '../install/node-runtime.js';
import { render } from '../kinds/render.js';
import type { K8sObject } from '../kinds/types.js';
import { toYamlStream } from '../lib/yaml.js';
import { applySetId, decorate, digest } from '../controller/apply/applyset.js';
import { defaultCrdPaths, DEFAULT_CONTROLLERS, ensureBinaries, startControlPlane, type ControlPlane } from '../test/harness/controlplane.js';
import { formatErrors, validate } from '../validate/index.js';
import { flags } from './args.js';
import { AuditLog, auditArgs } from '../test/harness/audit-log.js';
import { clockTicks, cpuSince, directoryService, freePort, getJson, percentiles, readyzStatus, serverCpu, summarize, VERBS } from './apply-shared.js';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = flags(args).get;
const count = Number(flag('count', '1000'));
const qps = Number(flag('qps', '0'));
/** --qps and --burst for a controller: none when 0, its default (no client-side limit). */
const rateFlags = qps > 0 ? ['--qps', String(qps), '--burst', String(qps)] : [];
/** Default: kiln's own default --concurrency (cli/controller-command.ts), MaxConcurrentReconciles for the Go peer. */
const concurrency = Number(flag('concurrency', '16'));
const timeoutS = Number(flag('timeout', '900'));
const withStatefulSetController = args.includes('--statefulset-controller');
/**
 * A control plane of its own for each controller (default with --scale-run): at
 * 10,000 the first controller leaves 50,000 objects in the API server's cache
 * and etcd (kube-apiserver at 3.7 GB RSS), which the second would otherwise pay for.
 */
const freshControlPlane = args.includes('--scale-run') ? !args.includes('--shared-control-plane') : args.includes('--fresh-control-plane');
/**
 * --scale-run: no kubectl baseline (at 10,000 it alone takes several minutes);
 * the kiln rows go into apply.json under scale.<count>, next to the main run.
 * --skip-baseline (development): no baseline and no results file.
 */
const scaleRun = args.includes('--scale-run');
const ALL_PEERS = ['kubectl', 'go', 'kiln'] as const;
type Peer = (typeof ALL_PEERS)[number];
const peers = new Set(
  flag('peers', scaleRun ? 'go,kiln' : ALL_PEERS.join(','))
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean),
);
for (const p of peers) if (!(ALL_PEERS as readonly string[]).includes(p)) throw new Error(`--peers: unknown ${JSON.stringify(p)} (choose from ${ALL_PEERS.join(', ')})`);
if (scaleRun || args.includes('--skip-baseline')) peers.delete('kubectl');
const runs = (p: Peer) => peers.has(p);
/** The results file holds only complete runs: all three, or go and kiln for --scale-run. */
const writeResults = runs('go') && runs('kiln') && (scaleRun || runs('kubectl'));
/** node flags of the controller process: by default those of the install's Deployment (install/node-runtime.ts). */
const controllerNodeArgs = flag('controller-node-args', NODE_FLAGS.join(' ')).split(' ').filter(Boolean);
if (!(count > 0) || !(qps >= 0) || !(concurrency > 0)) throw new Error('--count and --concurrency must be positive, --qps >= 0');
// --replicas R: one kiln replica against R with --sharding dynamic (bench/apply-replicas.ts), nothing else.
if (args.includes('--replicas')) {
  const { runReplicas } = await import('./apply-replicas.js');
  await runReplicas({ replicas: Number(flag('replicas', '3')), count, concurrency, timeoutS, keepWork: args.includes('--keep-work') });
  process.exit(0);
}

const CONTROLLER_USER = 'kiln-controller';
const PEER_USER = 'kiln-bench-go-peer';
const KUBECTL_USER = 'kiln-bench-kubectl';
/** The harness's admin (static token): creates the resources and polls them; logged for the timelines only. */
const ADMIN_USER = 'kiln-admin';
const API = 'kiln.dev/v1alpha1';
const node = process.execPath;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`[bench:apply ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------------------
// inputs

// ---------------------------------------------------------------------------
// processes

interface Timed {
  seconds: number;
  peakRssMiB: number | null;
  cpuSeconds: number | null;
  stdout: string;
}

/** Runs a command under /usr/bin/time: wall time, peak RSS and CPU time. */
function timed(cmd: string, cmdArgs: string[], timeoutMs: number): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('/usr/bin/time', ['-f', '%M %U %S', cmd, ...cmdArgs], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) return reject(new Error(`${cmd} ${cmdArgs.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.slice(-2000)}`));
      const [rssKiB, user, sys] = stderr.trim().split('\n').pop()!.split(' ').map(Number);
      resolve({ seconds, stdout, peakRssMiB: Number.isFinite(rssKiB) ? Math.round(rssKiB! / 1024) : null, cpuSeconds: Number.isFinite(user! + sys!) ? Number((user! + sys!).toFixed(2)) : null });
    });
  });
}

const controllers = new Set<ChildProcess>();
const killControllers = () => {
  for (const c of controllers) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
};
process.on('exit', killControllers);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killControllers();
    process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const)[sig]);
  });
}

/** How a controller under test is started: its command line for a kubeconfig, namespace and probe port. */
interface ControllerSpec {
  /** 'kiln' or 'go peer': names rows and log lines */
  label: string;
  /** the identity its requests are counted under in the audit log */
  user: string;
  command: (kubeconfig: string, namespace: string, healthPort: number) => { cmd: string; argv: string[]; env: NodeJS.ProcessEnv };
}

/** kiln's controller: the compiled build (build/cli/kiln.js), started as the install's Deployment starts it. */
const KILN: ControllerSpec = {
  label: 'kiln',
  user: CONTROLLER_USER,
  command: (kubeconfig, namespace, healthPort) => ({
    cmd: node,
    argv: [
      ...controllerNodeArgs,
      join(root, 'build/cli/kiln.js'),
      'controller',
      '--kubeconfig',
      kubeconfig,
      '--namespace',
      namespace,
      ...rateFlags,
      '--concurrency',
      String(concurrency),
      // /metrics on the probe port: no fixed port another process may hold.
      '--health-probe-bind-address',
      `:${healthPort}`,
      '--metrics-bind-address',
      `:${healthPort}`,
      '--resync',
      '0',
      '--log-level',
      'warn',
    ],
    env: { ...process.env, ...NODE_ENV, KUBECONFIG: '' },
  }),
};

/** The controller-runtime peer (bench/peer-operator), with the children template this run wrote. */
const goPeer = (binary: string, templateFile: string): ControllerSpec => ({
  label: 'go peer',
  user: PEER_USER,
  command: (kubeconfig, namespace, healthPort) => ({
    cmd: binary,
    argv: [
      '--kubeconfig',
      kubeconfig,
      '--namespace',
      namespace,
      '--template',
      templateFile,
      ...rateFlags,
      '--concurrency',
      String(concurrency),
      '--health-probe-bind-address',
      `127.0.0.1:${healthPort}`,
    ],
    env: { ...process.env, KUBECONFIG: '' },
  }),
});

/** A controller under test as a separate process. */
class Controller {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  private exit: Promise<void>;
  private lastCpu = { at: performance.now(), ticks: 0 };
  /** wall-clock ms of the last 500 ms sample in which it used more than 10% of a core */
  lastBusyAt = Date.now();
  /** most sockets seen open at once (sampled with the CPU): shows whether connections are reused */
  peakSockets = 0;

  constructor(
    readonly spec: ControllerSpec,
    readonly kubeconfig: string,
    readonly namespace: string,
    readonly healthPort: number,
    readonly logFile: string,
  ) {
    const fd = openSync(logFile, 'a');
    const { cmd, argv, env } = spec.command(kubeconfig, namespace, healthPort);
    this.child = spawn(cmd, argv, { cwd: root, stdio: ['ignore', fd, fd], env });
    closeSync(fd);
    controllers.add(this.child);
    this.exit = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  failIfExited(what: string): void {
    if (this.exited) throw new Error(`the ${this.spec.label} controller exited (${this.child.signalCode ?? this.child.exitCode}) ${what}; log ${this.logFile}:\n${tailOf(this.logFile)}`);
  }

  /** /readyz: every informer has listed (workers start right after, without leader election). */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.failIfExited('before it was ready');
      const status = await readyzStatus(this.healthPort);
      if (status === 200) return;
      if (Date.now() > deadline) throw new Error(`the ${this.spec.label} controller was not ready after ${timeoutMs} ms; log:\n${tailOf(this.logFile)}`);
      await sleep(100);
    }
  }

  /** VmHWM (peak RSS), VmRSS and CPU seconds from /proc. */
  proc(): { peakRssMiB: number; rssMiB: number; cpuSeconds: number } {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { peakRssMiB: Math.round(kib('VmHWM') / 1024), rssMiB: Math.round(kib('VmRSS') / 1024), cpuSeconds: Number((this.cpuTicks() / clockTicks).toFixed(2)) };
  }

  private cpuTicks(): number {
    // utime and stime are fields 14 and 15; the command name (field 2) may hold spaces.
    const stat = readFileSync(`/proc/${this.child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  }

  /** Called every ~500 ms while waiting: remembers when the process last did real work. */
  sampleCpu(): void {
    if (this.exited) return;
    const now = performance.now();
    const ticks = this.cpuTicks();
    const cpuS = (ticks - this.lastCpu.ticks) / clockTicks;
    if (cpuS > 0.1 * ((now - this.lastCpu.at) / 1000)) this.lastBusyAt = Date.now();
    this.lastCpu = { at: now, ticks };
    try {
      const dir = `/proc/${this.child.pid}/fd`;
      const sockets = readdirSync(dir).filter((fd) => {
        try {
          return readlinkSync(join(dir, fd)).startsWith('socket:');
        } catch {
          return false;
        }
      }).length;
      this.peakSockets = Math.max(this.peakSockets, sockets);
    } catch {
      // exited meanwhile
    }
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    const done = await Promise.race([this.exit.then(() => true), sleep(10_000).then(() => false)]);
    if (!done) {
      this.child.kill('SIGKILL');
      await this.exit;
    }
    controllers.delete(this.child);
  }
}

function tailOf(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** warn/error lines in a controller log (JSON lines with the level's name, lib/log.ts), by message. */
function logProblems(file: string): { count: number; byMessage: Record<string, number>; samples: string[] } {
  const byMessage: Record<string, number> = {};
  const samples: string[] = [];
  let n = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (!['warn', 'error', 'fatal'].includes(entry.level ?? '')) continue;
      n++;
      const key = `${entry.level === 'warn' ? 'warn' : 'error'}: ${entry.msg}`;
      byMessage[key] = (byMessage[key] ?? 0) + 1;
      if (samples.length < 5) samples.push(line.slice(0, 1000));
    } catch {
      n++;
      byMessage['(not JSON)'] = (byMessage['(not JSON)'] ?? 0) + 1;
      if (samples.length < 5) samples.push(line.slice(0, 1000));
    }
  }
  return { count: n, byMessage, samples };
}

/**
 * Where a resource's time goes, from the audit log: its create (admin), the
 * controller's first write for it (the start of its reconcile: kiln's patch of
 * the parent's metadata, the Go peer's first child apply) and its first status
 * write (the end).
 */
function timelines(audit: AuditLog, namespace: string, user: string) {
  const created = new Map<string, number>();
  const firstWrite = new Map<string, number>();
  const statusWrite = new Map<string, number>();
  const first = (m: Map<string, number>, k: string, at: number) => m.set(k, Math.min(m.get(k) ?? Infinity, at));
  // A child's name is its resource's, or that with a suffix (ds-00001-client); resource names are ds-NNNNN.
  const owner = (object: string) => /^(.+\/ds-\d{5})(?:-.*)?$/.exec(object)?.[1];
  for (const r of audit.requests.values()) {
    if (!r.object?.startsWith(`${namespace}/`)) continue;
    if (r.user === ADMIN_USER && r.endpoint === 'directoryservices' && (r.verb === 'patch' || r.verb === 'create')) first(created, r.object, r.at);
    if (r.user !== user || r.verb !== 'patch') continue;
    if (r.endpoint === 'directoryservices/status') first(statusWrite, r.object, r.at);
    else if (r.endpoint === 'directoryservices' || CHILD_ENDPOINTS.has(r.endpoint)) {
      const o = owner(r.object);
      if (o) first(firstWrite, o, r.at);
    }
  }
  const waits: number[] = [];
  const spans: number[] = [];
  for (const [k, c] of created) {
    const w = firstWrite.get(k);
    const st = statusWrite.get(k);
    if (w !== undefined) waits.push(w - c);
    if (w !== undefined && st !== undefined) spans.push(st - w);
  }
  return { createToFirstControllerWriteMs: percentiles(waits), firstWriteToStatusWriteMs: percentiles(spans) };
}

const CHILD_ENDPOINTS = new Set(['statefulsets', 'services', 'poddisruptionbudgets']);

// ---------------------------------------------------------------------------
// cluster reads (admin token; not audited)

interface Kiln {
  metadata: { name: string; generation?: number };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string; observedGeneration?: number }[] };
}

// Converged = Synced (every object applied and in sync): the work kubectl's apply does too. Ready also
// waits for members to run, and the benchmark's control plane runs no pods.
const isReady = (o: Kiln) => {
  const gen = o.metadata.generation;
  const ready = o.status?.conditions?.find((c) => c.type === 'Synced');
  return ready?.status === 'True' && ready.observedGeneration === gen && o.status?.observedGeneration === gen;
};

/** Polls every 500 ms (5 s above 2,000) until all `n` DirectoryServices in `namespace` are Ready for their generation; returns when (ms). */
async function waitAllReady(cp: ControlPlane, ctrl: Controller, audit: AuditLog, namespace: string, n: number, deadline: number): Promise<number> {
  let lastReport = 0;
  for (;;) {
    const list = await getJson<{ items: Kiln[] }>(cp, `/apis/${API}/namespaces/${namespace}/directoryservices`);
    const at = Date.now();
    const ready = list.items.filter(isReady).length;
    if (list.items.length === n && ready === n) return at;
    ctrl.failIfExited(`with ${ready}/${n} Ready`);
    ctrl.sampleCpu();
    audit.poll();
    if (at > deadline) throw new Error(`only ${ready}/${n} DirectoryServices Ready after ${timeoutS} s; controller log:\n${tailOf(ctrl.logFile)}`);
    if (at - lastReport > 5000) {
      log(`${ready}/${n} Ready, ${ctrl.spec.label} requests so far ${audit.select(ctrl.spec.user, ctrl.startedAt).length}`);
      lastReport = at;
    }
    // Listing thousands of resources twice a second would load the API server the controller is measured against.
    await sleep(n > 2000 ? 5000 : 500);
  }
}

/**
 * Waits until the controller is done: no request from it for 5 s and no CPU
 * use (over 10% of a core) for 3 s. A reconcile that changes nothing sends no
 * request, so the CPU is what shows the workers are still going. Returns the
 * wall-clock ms of its last activity.
 */
async function waitIdle(ctrl: Controller, audit: AuditLog, deadline: number): Promise<number> {
  for (;;) {
    await sleep(500);
    audit.poll();
    ctrl.failIfExited('while it was expected to settle');
    ctrl.sampleCpu();
    const now = Date.now();
    const lastRequest = audit.lastRequestAt(ctrl.spec.user);
    if (now - lastRequest >= 5000 && now - ctrl.lastBusyAt >= 3000) return Math.max(lastRequest, ctrl.lastBusyAt);
    if (now > deadline) throw new Error(`the controller did not settle within ${timeoutS} s; log:\n${tailOf(ctrl.logFile)}`);
  }
}

// ---------------------------------------------------------------------------
// the Go peer's template: kiln's render and decoration of the children, for placeholders

/** What the template is rendered for; bench/peer-operator/main.go fills them in (same names there). */
const PH = { name: 'zqxname', namespace: 'zqxns', uid: 'zqxuid', id: 'zqxapplysetid', digest: 'zqxdigest' } as const;
const DESIRED_DIGEST = 'kiln.dev/desired-digest';

/** The children kiln's reconciler applies for `resource` with this uid: render() then decorate(), as controller/apply/reconciler.ts does. */
function kilnChildren(resource: ReturnType<typeof directoryService>, uid: string): K8sObject[] {
  const v = validate(resource);
  if (!v.ok) throw new Error(`invalid DirectoryService: ${formatErrors(v.errors)}`);
  const parent = { ...v.resource, metadata: { ...v.resource.metadata, uid } };
  const id = applySetId(parent);
  return render(v.resource).map((o) => decorate(o, parent, id));
}

/** A decorated child without its desired-digest annotation: the object that digest is taken of. */
function withoutDigest(o: K8sObject): K8sObject {
  const { [DESIRED_DIGEST]: _d, ...annotations } = o.metadata.annotations ?? {};
  const metadata: K8sObject['metadata'] = { ...o.metadata, annotations };
  if (Object.keys(annotations).length === 0) delete metadata.annotations;
  return { ...o, metadata };
}

interface PeerTemplate {
  children: { withOwnership: string; decorated: string }[];
}

/** The Go peer's fill-in (strings.NewReplacer there), so the template can be checked here. */
function fillTemplate(t: PeerTemplate, name: string, namespace: string, uid: string): { decorated: string[]; revision: string } {
  const id = applySetId({ apiVersion: API, kind: 'DirectoryService', metadata: { name, namespace } } as Parameters<typeof applySetId>[0]);
  const values: Record<string, string> = { [PH.name]: name, [PH.namespace]: namespace, [PH.uid]: uid, [PH.id]: id };
  const re = new RegExp([PH.name, PH.namespace, PH.uid, PH.id].join('|'), 'g');
  const fill = (s: string) => s.replace(re, (m) => values[m]!);
  const decorated = t.children.map((c) => fill(c.decorated).replace(PH.digest, createHash('sha256').update(fill(c.withOwnership)).digest().toString('hex', 0, 16)));
  return {
    decorated,
    revision: `sha256:${createHash('sha256')
      .update(`[${decorated.join(',')}]`)
      .digest()
      .toString('hex', 0, 16)}`,
  };
}

/**
 * Writes the template and proves it: filled in for a real name, namespace and
 * uid it must give exactly the bytes kiln would apply there, and kiln's
 * status revision.
 */
function writePeerTemplate(file: string, sampleNamespace: string): PeerTemplate {
  const placeholderDs = { ...directoryService(0, PH.namespace), metadata: { name: PH.name, namespace: PH.namespace } };
  const id = applySetId(placeholderDs);
  const template: PeerTemplate = {
    children: kilnChildren(placeholderDs, PH.uid).map((o) => {
      const d = o.metadata.annotations?.[DESIRED_DIGEST];
      const bare = withoutDigest(o);
      if (!d || digest(bare) !== d)
        throw new Error(`${o.kind}/${o.metadata.name}: kiln's desired digest is no longer the digest of the decorated object without it; the Go peer's template cannot reproduce it`);
      return { withOwnership: JSON.stringify(bare).replaceAll(id, PH.id), decorated: JSON.stringify(o).replace(d, PH.digest).replaceAll(id, PH.id) };
    }),
  };
  const uid = randomUUID();
  const sample = directoryService(42, sampleNamespace);
  const want = kilnChildren(sample, uid);
  const got = fillTemplate(template, sample.metadata.name, sampleNamespace, uid);
  if (JSON.stringify(got.decorated) !== JSON.stringify(want.map((o) => JSON.stringify(o))) || got.revision !== `sha256:${digest(want)}`) {
    throw new Error(
      'the Go peer template, filled in as bench/peer-operator fills it, does not give the bytes kiln applies (do render() or decorate() derive more from the name, namespace or uid than the placeholders carry?)',
    );
  }
  writeFileSync(file, `${JSON.stringify(template)}\n`);
  return template;
}

interface Live {
  metadata: { uid: string; annotations?: Record<string, string> };
  status?: { revision?: string };
}

/** Does what the controller left for ds-00000 in `namespace` carry the desired digests and revision of kiln's render for its uid? */
async function objectsMatchRender(cp: ControlPlane, namespace: string): Promise<{ resource: string; childDigests: boolean; revision: boolean }> {
  const ds = await getJson<Live>(cp, `/apis/${API}/namespaces/${namespace}/directoryservices/ds-00000`);
  const want = kilnChildren(directoryService(0, namespace), ds.metadata.uid);
  const digests = await Promise.all(
    want.map(async (o) => {
      const base = o.apiVersion === 'v1' ? '/api/v1' : `/apis/${o.apiVersion}`;
      const live = await getJson<Live>(cp, `${base}/namespaces/${namespace}/${o.kind.toLowerCase()}s/${o.metadata.name}`);
      return live.metadata.annotations?.[DESIRED_DIGEST] === o.metadata.annotations?.[DESIRED_DIGEST];
    }),
  );
  return { resource: `${namespace}/ds-00000`, childDigests: digests.every(Boolean), revision: ds.status?.revision === `sha256:${digest(want)}` };
}

// ---------------------------------------------------------------------------
// one controller: converge, settle, restart

const round = (x: number, d = 2) => Number(x.toFixed(d));
const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

/**
 * Starts the controller, creates the N resources in `namespace`, waits until
 * all are converged and the controller idle, then restarts it with everything
 * in place and waits until it is idle again.
 */
async function measure(cp: ControlPlane, spec: ControllerSpec, kubeconfig: string, namespace: string, logPrefix: string) {
  const kubectl = join(cp.info().binDir, 'kubectl');
  const healthPort = await freePort();
  const logFile1 = join(work, `${logPrefix}-1.log`);
  log(`${spec.label} controller (qps ${qps}, burst ${qps}, concurrency ${concurrency})`);
  let c = new Controller(spec, kubeconfig, namespace, healthPort, logFile1);
  current = c;
  await c.waitReady(readyTimeoutMs);
  const readyAfterS = (Date.now() - c.startedAt) / 1000;
  const resourcesFile = join(work, `${logPrefix}-directoryservices.yaml`);
  writeFileSync(resourcesFile, toYamlStream(Array.from({ length: count }, (_, i) => directoryService(i, namespace))));
  log(`create ${count} DirectoryServices in ${namespace}, wait until all are converged`);
  const createStarted = Date.now();
  const cpuBeforeConverge = serverCpu(cp.pids);
  const create = await timed(kubectl, ['--kubeconfig', cp.info().kubeconfig, 'apply', '--server-side', '--field-manager=bench', '-f', resourcesFile], timeoutS * 1000);
  const allReadyAt = await waitAllReady(cp, c, audit, namespace, count, deadline());
  const convergeSeconds = (allReadyAt - createStarted) / 1000;
  const convergeServerCpu = cpuSince(cpuBeforeConverge, serverCpu(cp.pids));
  audit.poll();
  const convergeProc = c.proc();
  const convergeRequests = summarize(audit.select(spec.user, c.startedAt, allReadyAt));
  log(`${spec.label}: all converged after ${convergeSeconds.toFixed(1)} s; waiting for it to settle`);
  const settledAt = await waitIdle(c, audit, deadline());
  const settleRequests = summarize(audit.select(spec.user, allReadyAt, Infinity));
  const settleProc = c.proc();
  const firstRunSockets = c.peakSockets;
  await c.stop();
  const problems1 = logProblems(logFile1);

  const logFile2 = join(work, `${logPrefix}-2.log`);
  log(`restart the ${spec.label} controller`);
  const cpuBeforeResync = serverCpu(cp.pids);
  c = new Controller(spec, kubeconfig, namespace, healthPort, logFile2);
  current = c;
  const restartedAt = c.startedAt;
  await c.waitReady(readyTimeoutMs);
  const resyncReadyAfterS = (Date.now() - restartedAt) / 1000;
  const resyncDoneAt = await waitIdle(c, audit, deadline());
  const resyncServerCpu = cpuSince(cpuBeforeResync, serverCpu(cp.pids));
  const resyncRequests = summarize(audit.select(spec.user, restartedAt, Infinity));
  const resyncProc = c.proc();
  await c.stop();
  current = undefined;
  const problems2 = logProblems(logFile2);
  const stillReady = (await getJson<{ items: Kiln[] }>(cp, `/apis/${API}/namespaces/${namespace}/directoryservices`)).items.filter(isReady).length;
  // The converge time no controller sending these requests could beat here: the CPU the control
  // plane spent serving them plus what the kubectl creating the resources used, spread over every core.
  const outsideCpu = sum(convergeServerCpu) + (create.cpuSeconds ?? 0);
  const floor = { cpuSecondsOutsideController: round(outsideCpu), cores: availableParallelism(), seconds: round(outsideCpu / availableParallelism()) };
  return {
    spec,
    namespace,
    convergeSeconds,
    settleSeconds: Math.max(0, settledAt - allReadyAt) / 1000,
    resyncSeconds: (resyncDoneAt - restartedAt) / 1000,
    create,
    floor,
    serverCpu: { converge: convergeServerCpu, resync: resyncServerCpu },
    proc: { converge: convergeProc, settle: settleProc, resync: resyncProc },
    requests: { converge: convergeRequests, afterReady: settleRequests, resync: resyncRequests },
    readyAfterS,
    resyncReadyAfterS,
    stillReady,
    problems: { firstRun: problems1, restart: problems2 },
    sockets: { firstRun: firstRunSockets, restart: c.peakSockets },
    perResource: timelines(audit, namespace, spec.user),
    objectsMatchRender: await objectsMatchRender(cp, namespace),
  };
}
type Measured = Awaited<ReturnType<typeof measure>>;

const VERB_COLUMNS = (s: ReturnType<typeof summarize>) => Object.fromEntries(VERBS.map((v) => [v, s.byVerb[v] ?? 0])) as Record<(typeof VERBS)[number], number>;
/** A phase's request columns: the total, by verb, writes, repeated writes, errors. */
const requestColumns = (s: ReturnType<typeof summarize>) => ({
  requests: s.total,
  ...VERB_COLUMNS(s),
  writes: s.writes,
  repeatedWrites: s.repeatedWrites,
  errors: s.errors,
});

/** The table rows of one controller: converge, after converged until idle, resync after restart. */
function controllerRows(m: Measured, objects: number) {
  const name = m.spec.label === 'kiln' ? 'kiln' : 'go peer';
  const r = m.requests;
  const cpu = (x: Record<string, number>) => ({ apiServerCpuSeconds: x['kube-apiserver'] ?? null, etcdCpuSeconds: x['etcd'] ?? null });
  return [
    {
      phase: name === 'kiln' ? 'kiln controller converge' : 'go peer (controller-runtime) converge',
      seconds: round(m.convergeSeconds),
      objects,
      ...requestColumns(r.converge),
      peakRssMiB: m.proc.converge.peakRssMiB,
      cpuSeconds: m.proc.converge.cpuSeconds,
      cpuMsPerResource: round((m.proc.converge.cpuSeconds * 1000) / count, 1),
      ...cpu(m.serverCpu.converge),
      floorSeconds: m.floor.seconds,
      ratioToFloor: round(m.convergeSeconds / m.floor.seconds),
    },
    {
      phase: `${name} after Ready, until idle`,
      seconds: round(m.settleSeconds),
      objects: null,
      ...requestColumns(r.afterReady),
      peakRssMiB: m.proc.settle.peakRssMiB,
      cpuSeconds: round(m.proc.settle.cpuSeconds - m.proc.converge.cpuSeconds),
      cpuMsPerResource: null,
      apiServerCpuSeconds: null,
      etcdCpuSeconds: null,
      floorSeconds: null,
      ratioToFloor: null,
    },
    {
      phase: `${name} resync after restart`,
      seconds: round(m.resyncSeconds),
      objects: null,
      ...requestColumns(r.resync),
      peakRssMiB: m.proc.resync.peakRssMiB,
      cpuSeconds: m.proc.resync.cpuSeconds,
      cpuMsPerResource: round((m.proc.resync.cpuSeconds * 1000) / count, 1),
      ...cpu(m.serverCpu.resync),
      floorSeconds: null,
      ratioToFloor: null,
    },
  ];
}

/** The details of one controller, under the keys kiln's always had in apply.json. */
function controllerDetails(m: Measured) {
  return {
    createResources: { seconds: round(m.create.seconds), peakRssMiB: m.create.peakRssMiB, cpuSeconds: m.create.cpuSeconds },
    convergeFloor: m.floor,
    controllerReadyzAfterSeconds: round(m.readyAfterS),
    restartReadyzAfterSeconds: round(m.resyncReadyAfterS),
    resyncWritesZero: m.requests.resync.writes === 0,
    perResource: m.perResource,
    readyAfterRestart: `${m.stillReady}/${count}`,
    objectsMatchRender: m.objectsMatchRender,
    controllerLogProblems: m.problems,
    controllerRssMiBAtEnd: { firstRun: m.proc.settle.rssMiB, restart: m.proc.resync.rssMiB },
    controllerPeakOpenSockets: m.sockets,
  };
}

// ---------------------------------------------------------------------------
// run

const loadAtStart = loadavg().map((l) => Number(l.toFixed(2)));
if (runs('kiln')) {
  log(`build (npm run -s build)`);
  const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed: ${build.stdout}${build.stderr}`);
}
let peerBinary = '';
if (runs('go')) {
  log('Go peer (scripts/build-peer-operator.sh; a cold build takes minutes)');
  const b = spawnSync('bash', [join(root, 'scripts/build-peer-operator.sh')], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (b.status !== 0) throw new Error(`scripts/build-peer-operator.sh failed (exit ${b.status})`);
  peerBinary = b.stdout.trim().split('\n').pop()!;
}

const work = mkdtempSync(join(tmpdir(), 'kiln-bench-apply-'));
const policyFile = join(work, 'audit-policy.yaml');
writeFileSync(policyFile, AuditLog.policy([CONTROLLER_USER, PEER_USER, KUBECTL_USER, ADMIN_USER]));
let auditFile = join(work, 'audit.log');
let audit = new AuditLog(auditFile);
const NAMESPACES = { kubectl: 'bench-kubectl', go: 'bench-go', kiln: 'bench-kiln' } as const;
const kcmControllers = withStatefulSetController ? DEFAULT_CONTROLLERS : DEFAULT_CONTROLLERS.filter((c) => c !== 'statefulset-controller');
const deadline = () => Date.now() + timeoutS * 1000;
/** Until /readyz: every informer has listed (at 10,000 resources, 50,000 objects). */
const readyTimeoutMs = Math.max(60_000, count * 30);

let cp: ControlPlane | undefined;
/** The controller running now, stopped on failure. */
let current: Controller | undefined;
let failed = true;
try {
  const binDir = await ensureBinaries();
  /** Starts a control plane with its own audit log, the identities and the namespaces. */
  const bootControlPlane = async (tag: string) => {
    auditFile = join(work, `audit-${tag}.log`);
    audit = new AuditLog(auditFile);
    log(`control plane for ${tag} (${kcmControllers.length} kube-controller-manager controllers, audit log ${auditFile})`);
    const plane = await startControlPlane({
      binDir,
      crdPaths: defaultCrdPaths(),
      controllers: kcmControllers,
      apiserverArgs: auditArgs(auditFile, policyFile),
    });
    const [kubectlId, peerId, controllerId] = await Promise.all([
      plane.mintIdentity(KUBECTL_USER, ['system:masters']),
      plane.mintIdentity(PEER_USER, ['system:masters']),
      plane.mintIdentity(CONTROLLER_USER, ['system:masters']),
    ]);
    for (const p of peers) await plane.kubectlOk(['create', 'namespace', NAMESPACES[p as Peer]]);
    return { plane, kubectlId, peerId, controllerId };
  };
  let booted = await bootControlPlane(freshControlPlane ? 'first' : 'all');
  cp = booted.plane;
  const { kubectlId } = booted;
  const kubectl = join(binDir, 'kubectl');

  // The objects kubectl applies, rendered offline (also the per-resource object count of every row).
  log(`render ${count} DirectoryServices offline`);
  const renderStarted = performance.now();
  const objects: K8sObject[] = [];
  for (let i = 0; i < count; i++) {
    const v = validate(directoryService(i, NAMESPACES.kubectl));
    if (!v.ok) throw new Error(`invalid DirectoryService: ${formatErrors(v.errors)}`);
    objects.push(...render(v.resource));
  }
  const renderSeconds = (performance.now() - renderStarted) / 1000;
  const perResource = objects.length / count;

  // 1. kubectl: one apply --server-side of the rendered file
  let baseline: Timed | undefined;
  let baselineServerCpu: Record<string, number> = {};
  let baselineRequests: ReturnType<typeof summarize> | undefined;
  if (runs('kubectl')) {
    const baselineFile = join(work, 'rendered.yaml');
    writeFileSync(baselineFile, toYamlStream(objects));
    log(`kubectl apply --server-side of ${objects.length} objects`);
    const cpuBeforeBaseline = serverCpu(cp.pids);
    baseline = await timed(kubectl, ['--kubeconfig', kubectlId.kubeconfig, 'apply', '--server-side', '--field-manager=bench', '-n', NAMESPACES.kubectl, '-f', baselineFile], timeoutS * 1000);
    baselineServerCpu = cpuSince(cpuBeforeBaseline, serverCpu(cp.pids));
    await sleep(300);
    audit.poll();
    baselineRequests = summarize(audit.select(KUBECTL_USER));
  }

  // 2. the Go peer, 3. kiln: each in a fresh namespace
  let peer: Measured | undefined;
  let kiln: Measured | undefined;
  if (runs('go')) {
    const templateFile = join(work, 'peer-template.json');
    writePeerTemplate(templateFile, NAMESPACES.go);
    peer = await measure(cp, goPeer(peerBinary, templateFile), booted.peerId.kubeconfig, NAMESPACES.go, 'go-peer');
  }
  if (runs('kiln')) {
    if (freshControlPlane && peer) {
      await cp.stop();
      cp = undefined;
      booted = await bootControlPlane('kiln');
      cp = booted.plane;
    }
    kiln = await measure(cp, KILN, booted.controllerId.kubeconfig, NAMESPACES.kiln, 'kiln');
  }

  const rows = [
    ...(baseline && baselineRequests
      ? [
          {
            phase: 'kubectl apply --server-side',
            seconds: round(baseline.seconds),
            objects: objects.length,
            requests: baselineRequests.total,
            ...VERB_COLUMNS(baselineRequests),
            writes: baselineRequests.writes,
            repeatedWrites: baselineRequests.repeatedWrites,
            errors: baselineRequests.errors,
            peakRssMiB: baseline.peakRssMiB,
            cpuSeconds: baseline.cpuSeconds,
            cpuMsPerResource: baseline.cpuSeconds === null ? null : round((baseline.cpuSeconds * 1000) / count, 1),
            apiServerCpuSeconds: baselineServerCpu['kube-apiserver'] ?? null,
            etcdCpuSeconds: baselineServerCpu['etcd'] ?? null,
            floorSeconds: null,
            ratioToFloor: null,
          },
        ]
      : []),
    ...(peer ? controllerRows(peer, objects.length) : []),
    ...(kiln ? controllerRows(kiln, objects.length) : []),
  ];
  const result = {
    benchmark: 'apply',
    date: new Date().toISOString(),
    machine: { cores: availableParallelism(), cpu: cpus()[0]?.model, node: process.version, kubernetes: cp.version, loadAverageAtStart: loadAtStart },
    settings: {
      resources: count,
      kind: 'DirectoryService',
      objectsPerResource: perResource,
      peers: [...peers],
      qps,
      burst: qps,
      concurrency,
      controllerDefaultQps: 0,
      controllerNodeArgs,
      controllerEnv: NODE_ENV,
      goPeer: {
        module: 'bench/peer-operator',
        controllerRuntime: 'v0.22.5',
        clientGo: 'v0.34.4',
        qps,
        burst: qps,
        maxConcurrentReconciles: concurrency,
        controllerRuntimeDefaultQps:
          "none: controller-runtime v0.22's GetConfig sets QPS -1 (client-side rate limiting off, relying on API Priority and Fairness) when the kubeconfig sets none; its docs still cite 20 QPS / burst 30, and a bare client-go rest.Config defaults to 5 / 10",
        writesPerResource:
          'Go peer: 4 server-side applies of the children (only when missing or their desired digest differs), 1 status apply, 1 Event; kiln: the same plus a merge patch of ApplySet metadata onto the resource (not mirrored: an operator finds its children by ownerReference through Owns())',
      },
      kubeControllerManager: kcmControllers,
      controlPlanePerController: freshControlPlane,
      note: 'seconds: kubectl = the apply command; converge = from the create of the N resources until all are Synced (applied and in sync) for their generation (polled every 500 ms, every 5 s above 2,000 resources); after Ready = until no request for 5 s and no CPU for 3 s; resync = from process start until idle. Each controller runs alone, in a namespace of its own, after the one before it stopped. Requests are counted from the API server audit log by user (each controller and the baseline kubectl have identities of their own); converge includes the controller startup LIST/WATCH; repeatedWrites = writes to an object already written with the same verb and endpoint in that phase. floorSeconds = CPU seconds the control plane and the creating kubectl used during that converge, over the cores; ratioToFloor = seconds / floorSeconds.',
    },
    rows,
    comparison: [peer, kiln]
      .filter((m): m is Measured => !!m)
      .map((m) => ({
        controller: m.spec.label,
        convergeSeconds: round(m.convergeSeconds),
        floorSeconds: m.floor.seconds,
        ratioToFloor: round(m.convergeSeconds / m.floor.seconds),
        ownCpuSeconds: m.proc.converge.cpuSeconds,
        ownCpuMsPerResource: round((m.proc.converge.cpuSeconds * 1000) / count, 1),
        apiServerCpuSeconds: m.serverCpu.converge['kube-apiserver'] ?? null,
        etcdCpuSeconds: m.serverCpu.converge['etcd'] ?? null,
        requests: m.requests.converge.total,
        writes: m.requests.converge.writes,
        peakRssMiB: m.proc.resync.peakRssMiB === null ? m.proc.settle.peakRssMiB : Math.max(m.proc.settle.peakRssMiB, m.proc.resync.peakRssMiB),
        resyncWrites: m.requests.resync.writes,
        resyncRequests: m.requests.resync.total,
        resyncSeconds: round(m.resyncSeconds),
      })),
    details: {
      renderSecondsInProcess: round(renderSeconds),
      ...(kiln ? controllerDetails(kiln) : {}),
      serverCpuSeconds: { kubectl: baselineServerCpu, converge: kiln?.serverCpu.converge ?? {}, goPeerConverge: peer?.serverCpu.converge ?? {} },
      requests: { kubectl: baselineRequests, converge: kiln?.requests.converge, afterReady: kiln?.requests.afterReady, resync: kiln?.requests.resync },
      ...(peer ? { goPeer: { ...controllerDetails(peer), serverCpuSeconds: peer.serverCpu, requests: peer.requests } } : {}),
    },
  };
  console.table(
    rows.map(({ phase, seconds, requests, get, list, watch, create, patch, writes, repeatedWrites, errors, peakRssMiB, cpuSeconds }) => ({
      phase,
      seconds,
      requests,
      get,
      list,
      watch,
      create,
      patch,
      writes,
      repeatedWrites,
      errors,
      peakRssMiB,
      cpuSeconds,
    })),
  );
  console.table(result.comparison);
  if (baselineRequests) console.log(`requests per resource: kubectl ${round(baselineRequests.total / count)}`);
  for (const m of [peer, kiln]) {
    if (!m) continue;
    const r = m.requests;
    const lat = (s: ReturnType<typeof summarize>) => (s.serverLatencyMs ? `p50 ${s.serverLatencyMs.p50} / p90 ${s.serverLatencyMs.p90} ms` : '-');
    const pr = m.perResource;
    console.log(
      [
        `${m.spec.label}: ${round(r.converge.total / count)} requests per resource (writes ${round(r.converge.writes / count)}): ${Object.entries(r.converge.byEndpoint)
          .slice(0, 6)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`,
        `  converge ${round(m.convergeSeconds)} s, floor ${m.floor.seconds} s (control plane + creating kubectl used ${m.floor.cpuSecondsOutsideController} CPU s on ${m.floor.cores} cores): ${round(m.convergeSeconds / m.floor.seconds)}x; own CPU ${m.proc.converge.cpuSeconds} s (${round((m.proc.converge.cpuSeconds * 1000) / count, 1)} ms per resource); control plane ${JSON.stringify(m.serverCpu.converge)}`,
        `  API server time per request ${lat(r.converge)}; readyz after ${round(m.readyAfterS)} s (restart ${round(m.resyncReadyAfterS)} s), peak open sockets ${m.sockets.firstRun} (restart ${m.sockets.restart}), RSS at end ${m.proc.settle.rssMiB} MiB`,
        ...(pr.createToFirstControllerWriteMs && pr.firstWriteToStatusWriteMs
          ? [
              `  per resource: create -> first controller write p50 ${pr.createToFirstControllerWriteMs.p50} / p90 ${pr.createToFirstControllerWriteMs.p90} ms; first write -> status p50 ${pr.firstWriteToStatusWriteMs.p50} / p90 ${pr.firstWriteToStatusWriteMs.p90} ms`,
            ]
          : []),
        `  resync after restart: ${r.resync.writes} writes, ${r.resync.total} requests, ${round(m.resyncSeconds)} s; converged after restart ${m.stillReady}/${count}; ds-00000's objects carry kiln's desired digests: ${m.objectsMatchRender.childDigests}, its revision kiln's: ${m.objectsMatchRender.revision}`,
        ...(m.problems.firstRun.count + m.problems.restart.count > 0 ? [`  warnings/errors: ${JSON.stringify({ ...m.problems.firstRun.byMessage, ...m.problems.restart.byMessage })}`] : []),
      ].join('\n'),
    );
  }
  if (kiln) console.log(`kiln resync after restart: ${kiln.requests.resync.writes} writes ${kiln.requests.resync.writes === 0 ? '(ok)' : '(FAIL: must be 0)'}`);
  const resultsFile = join(root, 'bench/results/apply.json');
  const previous = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>) : undefined;
  if (!writeResults) {
    log(`--peers ${[...peers].join(',')}: not every controller ran; bench/results/apply.json left as it was`);
  } else if (scaleRun) {
    const scaled = {
      date: result.date,
      machine: result.machine,
      settings: { ...result.settings, note: `${result.settings.note} Scale run: no kubectl baseline.` },
      rows,
      comparison: result.comparison,
      details: {
        ...result.details,
        perResource: undefined,
        requests: undefined,
        ...(peer ? { goPeer: { ...controllerDetails(peer), perResource: undefined, serverCpuSeconds: peer.serverCpu } } : {}),
      },
    };
    const merged = { ...(previous ?? result), scale: { ...((previous?.['scale'] as object | undefined) ?? {}), [count]: scaled } };
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    writeFileSync(resultsFile, `${JSON.stringify(merged, null, 2)}\n`);
    console.log(`wrote bench/results/apply.json (scale.${count})`);
  } else {
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    writeFileSync(resultsFile, `${JSON.stringify({ ...result, ...(previous?.['scale'] ? { scale: previous['scale'] } : {}) }, null, 2)}\n`);
    console.log('wrote bench/results/apply.json');
  }
  if (kiln && (kiln.requests.resync.writes > 0 || kiln.stillReady !== count)) process.exitCode = 1;
  // The peer must apply what kiln applies, or the comparison is of different work.
  if (peer && (peer.stillReady !== count || !peer.objectsMatchRender.childDigests || !peer.objectsMatchRender.revision)) process.exitCode = 1;
  failed = false;
} finally {
  await current?.stop().catch(() => {});
  await cp?.stop().catch(() => {});
  if (failed || args.includes('--keep-work')) log(`${failed ? 'failed; ' : ''}logs kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
