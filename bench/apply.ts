/**
 * Apply-mode benchmark against a real control plane (test/harness): N
 * DirectoryService resources (4 objects each) reach the cluster
 *
 *  1. as a baseline, rendered offline and applied with one
 *     `kubectl apply --server-side` of a multi-document file (namespace A);
 *  2. through the kiln controller, run as its own process (compiled build, as
 *     shipped) so its memory can be measured: time from creating the N
 *     resources (namespace B) until every one is Ready for its generation;
 *  3. after restarting the controller with everything in place: how many
 *     writes the restart costs (must be 0).
 *
 * The API requests each client sends are counted on the API server side, from
 * its audit log: the controller and the baseline kubectl run as identities of
 * their own (client certificates minted by the harness), so nothing else the
 * benchmark or the control plane does is counted. Prints a table and writes
 * bench/results/apply.json.
 *
 *   npm run bench:apply [-- --count 1000 --qps 200 --concurrency 4 --timeout 900]
 *
 * --qps also sets --burst. The controller's own default is 20 QPS (client-go's);
 * the baseline kubectl sends its requests well above that rate (sequentially,
 * one at a time), hence the higher default here; the JSON records the value.
 * kube-controller-manager runs without its StatefulSet controller unless
 * --statefulset-controller is given: there is no scheduler or kubelet, so its
 * Pods would never run, and creating Pods and PVCs for 2N StatefulSets at its
 * own 20 QPS would load the API server in the background of every figure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_ENV, NODE_FLAGS } from '../install/node-runtime.js';
import { render } from '../kinds/render.js';
import type { K8sObject } from '../kinds/types.js';
import { toYamlStream } from '../lib/yaml.js';
import { defaultCrdPaths, DEFAULT_CONTROLLERS, ensureBinaries, startControlPlane, type ControlPlane } from '../test/harness/controlplane.js';
import { formatErrors, validate } from '../validate/index.js';
import { flags } from './args.js';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = flags(args).get;
const count = Number(flag('count', '1000'));
const qps = Number(flag('qps', '200'));
const concurrency = Number(flag('concurrency', '4'));
const timeoutS = Number(flag('timeout', '900'));
const withStatefulSetController = args.includes('--statefulset-controller');
/**
 * --scale-run: no kubectl baseline (at 10,000 it alone takes several minutes);
 * the kiln rows go into apply.json under scale.<count>, next to the main run.
 * --skip-baseline (development): no baseline and no results file.
 */
const scaleRun = args.includes('--scale-run');
const skipBaseline = scaleRun || args.includes('--skip-baseline');
/** node flags of the controller process: by default those of the install's Deployment (install/node-runtime.ts). */
const controllerNodeArgs = flag('controller-node-args', NODE_FLAGS.join(' ')).split(' ').filter(Boolean);
if (!(count > 0) || !(qps >= 0) || !(concurrency > 0)) throw new Error('--count and --concurrency must be positive, --qps >= 0');

const CONTROLLER_USER = 'kiln-controller';
const KUBECTL_USER = 'kiln-bench-kubectl';
/** The harness's admin (static token): creates the resources and polls them; logged for the timelines only. */
const ADMIN_USER = 'kiln-admin';
const API = 'kiln.dev/v1alpha1';
const node = process.execPath;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const log = (msg: string) => process.stderr.write(`[bench:apply ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------------------
// inputs

/** DirectoryService like examples/directory/directoryservice.yaml, with a distinct name. */
function directoryService(i: number, namespace: string) {
  return {
    apiVersion: API,
    kind: 'DirectoryService',
    metadata: { name: `ds-${String(i).padStart(5, '0')}`, namespace },
    spec: {
      replicas: 3,
      image: 'registry.example.com/forgerock/ds:7.5.1',
      resources: { requests: { cpu: '1', memory: '3Gi' }, limits: { memory: '3Gi' } },
      env: [{ name: 'DS_JAVA_ARGS', value: '-XX:MaxRAMPercentage=75' }],
      storage: { size: '100Gi', storageClassName: 'fast', volumeSnapshotClassName: 'csi-snapshots' },
      secrets: { masterKeypair: 'ds-master-keypair', sslKeypair: 'ds-ssl-keypair', truststore: 'ds-truststore' },
      passwords: {
        'uid=admin': { secretName: 'ds-passwords', key: 'dirmanager.pw' },
        'uid=am-config,ou=admins,ou=am-config': { secretName: 'am-passwords', key: 'am-config.pw', create: true },
        'uid=am-identity-bind-account,ou=admins,ou=identities': { secretName: 'am-passwords', key: 'am-identity-bind.pw', create: true },
      },
      scheduling: { tolerateDedicatedNodes: true, antiAffinity: 'Soft' },
      service: { type: 'ClusterIP' },
    },
  };
}

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

/** CPU seconds (user + system) used so far by each control-plane server. */
function serverCpu(pids: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[name] = (Number(fields[11]) + Number(fields[12])) / clockTicks;
    } catch {
      // not running
    }
  }
  return out;
}

const cpuSince = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.keys(b).map((k) => [k, Number((b[k]! - (a[k] ?? 0)).toFixed(2))]));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
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

/** The kiln controller as a separate process (build/cli/kiln.js). */
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
    readonly kubeconfig: string,
    readonly namespace: string,
    readonly healthPort: number,
    readonly logFile: string,
  ) {
    const fd = openSync(logFile, 'a');
    this.child = spawn(
      node,
      [
        ...controllerNodeArgs,
        join(root, 'build/cli/kiln.js'),
        'controller',
        '--kubeconfig',
        kubeconfig,
        '--namespace',
        namespace,
        '--qps',
        String(qps),
        '--burst',
        String(qps),
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
      { cwd: root, stdio: ['ignore', fd, fd], env: { ...process.env, ...NODE_ENV, KUBECONFIG: '' } },
    );
    closeSync(fd);
    controllers.add(this.child);
    this.exit = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  failIfExited(what: string): void {
    if (this.exited) throw new Error(`the controller exited (${this.child.signalCode ?? this.child.exitCode}) ${what}; log ${this.logFile}:\n${tailOf(this.logFile)}`);
  }

  /** /readyz: every informer has listed (workers start right after, without leader election). */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.failIfExited('before it was ready');
      const status = await new Promise<number>((resolve) => {
        const req = http.get(`http://127.0.0.1:${this.healthPort}/readyz`, { timeout: 2000 }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(0));
      });
      if (status === 200) return;
      if (Date.now() > deadline) throw new Error(`the controller was not ready after ${timeoutMs} ms; log:\n${tailOf(this.logFile)}`);
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

// ---------------------------------------------------------------------------
// audit log: one entry per request (auditID), for the identities the policy logs

interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  requestURI?: string;
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
}

interface ApiRequest {
  user: string;
  verb: string;
  endpoint: string;
  object?: string;
  at: number;
  code?: number;
  latencyMs?: number;
}

class AuditLog {
  readonly requests = new Map<string, ApiRequest>();
  private offset = 0;
  private rest = '';
  private lastNew = new Map<string, number>();

  constructor(readonly file: string) {}

  static policy(users: string[]): string {
    // ResponseStarted marks a watch as soon as it is open; ResponseComplete ends every request.
    return toYamlStream([
      {
        apiVersion: 'audit.k8s.io/v1',
        kind: 'Policy',
        omitStages: ['RequestReceived'],
        rules: [{ level: 'Metadata', users }, { level: 'None' }],
      },
    ]);
  }

  /** Reads what was appended since the last call. */
  poll(): void {
    if (!existsSync(this.file)) return;
    const fd = openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(1 << 20);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        const lines = (this.rest + buf.toString('utf8', 0, n)).split('\n');
        this.rest = lines.pop()!;
        for (const line of lines) if (line.trim()) this.add(JSON.parse(line) as AuditEvent);
      }
    } finally {
      closeSync(fd);
    }
  }

  private add(e: AuditEvent): void {
    const seen = this.requests.get(e.auditID);
    const latency = (r: ApiRequest) => {
      if (e.stage === 'ResponseComplete' && r.verb !== 'watch') r.latencyMs = Date.parse(e.stageTimestamp) - r.at;
    };
    if (seen) {
      if (e.responseStatus?.code !== undefined) seen.code = e.responseStatus.code;
      latency(seen);
      return;
    }
    const user = e.user?.username ?? '?';
    const r = e.objectRef;
    const endpoint = r?.resource ? `${r.resource}${r.subresource ? `/${r.subresource}` : ''}` : (e.requestURI ?? '?').split('?')[0]!;
    const at = Date.parse(e.requestReceivedTimestamp);
    const object = r?.name ? `${r.namespace ?? ''}/${r.name}` : undefined;
    const req: ApiRequest = { user, verb: e.verb, endpoint, object, at, code: e.responseStatus?.code };
    latency(req);
    this.requests.set(e.auditID, req);
    this.lastNew.set(user, Math.max(this.lastNew.get(user) ?? 0, at));
  }

  /** Wall-clock ms of the last request `user` sent (0: none yet). */
  lastRequestAt(user: string): number {
    return this.lastNew.get(user) ?? 0;
  }

  select(user: string, from = -Infinity, to = Infinity): ApiRequest[] {
    return [...this.requests.values()].filter((r) => r.user === user && r.at >= from && r.at < to);
  }
}

const VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] as const;
const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

function percentiles(xs: number[]): { p50: number; p90: number; max: number } | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
  return { p50: at(0.5), p90: at(0.9), max: Math.round(s[s.length - 1]!) };
}

/**
 * Where a resource's time goes, from the audit log: its create (admin), the
 * controller's first write for it (the parent's metadata patch, the start of
 * its reconcile) and its first status write (the end).
 */
function timelines(audit: AuditLog, namespace: string) {
  const created = new Map<string, number>();
  const firstWrite = new Map<string, number>();
  const statusWrite = new Map<string, number>();
  const first = (m: Map<string, number>, k: string, at: number) => m.set(k, Math.min(m.get(k) ?? Infinity, at));
  for (const r of audit.requests.values()) {
    if (!r.object?.startsWith(`${namespace}/`)) continue;
    if (r.user === ADMIN_USER && r.endpoint === 'directoryservices' && (r.verb === 'patch' || r.verb === 'create')) first(created, r.object, r.at);
    if (r.user === CONTROLLER_USER && r.verb === 'patch' && r.endpoint === 'directoryservices') first(firstWrite, r.object, r.at);
    if (r.user === CONTROLLER_USER && r.verb === 'patch' && r.endpoint === 'directoryservices/status') first(statusWrite, r.object, r.at);
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

function summarize(reqs: ApiRequest[]) {
  const byVerb: Record<string, number> = Object.fromEntries(VERBS.map((v) => [v, 0]));
  const byEndpoint: Record<string, number> = {};
  const errorsByCode: Record<string, number> = {};
  // The same object written more than once (events have generated names: never repeated).
  const writesPerObject = new Map<string, number>();
  for (const r of reqs) {
    if (WRITE_VERBS.has(r.verb) && r.object) {
      const k = `${r.verb} ${r.endpoint} ${r.object}`;
      writesPerObject.set(k, (writesPerObject.get(k) ?? 0) + 1);
    }
    byVerb[r.verb] = (byVerb[r.verb] ?? 0) + 1;
    const key = `${r.verb} ${r.endpoint}`;
    byEndpoint[key] = (byEndpoint[key] ?? 0) + 1;
    if (r.code !== undefined && r.code >= 400) errorsByCode[r.code] = (errorsByCode[r.code] ?? 0) + 1;
  }
  return {
    total: reqs.length,
    writes: reqs.filter((r) => WRITE_VERBS.has(r.verb)).length,
    errors: Object.values(errorsByCode).reduce((a, b) => a + b, 0),
    serverLatencyMs: percentiles(reqs.map((r) => r.latencyMs).filter((l): l is number => l !== undefined)),
    serverLatencyMsByEndpoint: Object.fromEntries(
      [...new Set(reqs.filter((r) => r.latencyMs !== undefined).map((r) => `${r.verb} ${r.endpoint}`))].map((k) => [
        k,
        percentiles(reqs.filter((r) => `${r.verb} ${r.endpoint}` === k && r.latencyMs !== undefined).map((r) => r.latencyMs!)),
      ]),
    ),
    repeatedWrites: [...writesPerObject.values()].reduce((a, n) => a + n - 1, 0),
    repeatedWritesByEndpoint: [...writesPerObject]
      .filter(([, n]) => n > 1)
      .reduce<Record<string, number>>((acc, [k, n]) => {
        const endpoint = k.split(' ').slice(0, 2).join(' ');
        acc[endpoint] = (acc[endpoint] ?? 0) + n - 1;
        return acc;
      }, {}),
    byVerb,
    byEndpoint: Object.fromEntries(Object.entries(byEndpoint).sort(([, a], [, b]) => b - a)),
    errorsByCode,
  };
}

// ---------------------------------------------------------------------------
// cluster reads (admin token; not audited)

function getJson<T>(cp: ControlPlane, path: string): Promise<T> {
  const ca = readFileSync(cp.caFile);
  return new Promise((resolve, reject) => {
    const req = https.get(`${cp.server}${path}`, { ca, headers: { Authorization: `Bearer ${cp.adminToken}`, Accept: 'application/json' }, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`GET ${path}: ${res.statusCode} ${text.slice(0, 500)}`));
        resolve(JSON.parse(text) as T);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', reject);
  });
}

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
      log(`${ready}/${n} Ready, controller requests so far ${audit.select(CONTROLLER_USER, ctrl.startedAt).length}`);
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
    const lastRequest = audit.lastRequestAt(CONTROLLER_USER);
    if (now - lastRequest >= 5000 && now - ctrl.lastBusyAt >= 3000) return Math.max(lastRequest, ctrl.lastBusyAt);
    if (now > deadline) throw new Error(`the controller did not settle within ${timeoutS} s; log:\n${tailOf(ctrl.logFile)}`);
  }
}

// ---------------------------------------------------------------------------
// run

const loadAtStart = loadavg().map((l) => Number(l.toFixed(2)));
log(`build (npm run -s build)`);
const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, encoding: 'utf8' });
if (build.status !== 0) throw new Error(`npm run build failed: ${build.stdout}${build.stderr}`);

const work = mkdtempSync(join(tmpdir(), 'kiln-bench-apply-'));
const auditFile = join(work, 'audit.log');
const policyFile = join(work, 'audit-policy.yaml');
writeFileSync(policyFile, AuditLog.policy([CONTROLLER_USER, KUBECTL_USER, ADMIN_USER]));
const audit = new AuditLog(auditFile);
const nsA = 'bench-kubectl';
const nsB = 'bench-kiln';
const kcmControllers = withStatefulSetController ? DEFAULT_CONTROLLERS : DEFAULT_CONTROLLERS.filter((c) => c !== 'statefulset-controller');
const deadline = () => Date.now() + timeoutS * 1000;
/** Until /readyz: every informer has listed (at 10,000 resources, 50,000 objects). */
const readyTimeoutMs = Math.max(60_000, count * 30);

let cp: ControlPlane | undefined;
let ctrl: Controller | undefined;
let failed = true;
try {
  log(`control plane (${kcmControllers.length} kube-controller-manager controllers, audit log ${auditFile})`);
  const binDir = await ensureBinaries();
  cp = await startControlPlane({
    binDir,
    crdPaths: defaultCrdPaths(),
    controllers: kcmControllers,
    apiserverArgs: [`--audit-log-path=${auditFile}`, `--audit-policy-file=${policyFile}`, '--audit-log-mode=blocking', '--audit-log-maxsize=0'],
  });
  const kubectl = join(binDir, 'kubectl');
  const admin = cp.info().kubeconfig;
  const [kubectlId, controllerId] = await Promise.all([cp.mintIdentity(KUBECTL_USER, ['system:masters']), cp.mintIdentity(CONTROLLER_USER, ['system:masters'])]);
  for (const ns of [nsA, nsB]) await cp.kubectlOk(['create', 'namespace', ns]);

  // 1. baseline: render offline, one kubectl apply --server-side
  log(`render ${count} DirectoryServices offline`);
  const renderStarted = performance.now();
  const objects: K8sObject[] = [];
  for (let i = 0; i < count; i++) {
    const v = validate(directoryService(i, nsA));
    if (!v.ok) throw new Error(`invalid DirectoryService: ${formatErrors(v.errors)}`);
    objects.push(...render(v.resource));
  }
  const renderSeconds = (performance.now() - renderStarted) / 1000;
  const baselineFile = join(work, 'rendered.yaml');
  writeFileSync(baselineFile, toYamlStream(objects));
  const perResource = objects.length / count;
  log(`kubectl apply --server-side of ${objects.length} objects`);
  const cpuBeforeBaseline = serverCpu(cp.pids);
  const baseline = skipBaseline
    ? { seconds: 0, peakRssMiB: null, cpuSeconds: null, stdout: '' }
    : await timed(kubectl, ['--kubeconfig', kubectlId.kubeconfig, 'apply', '--server-side', '--field-manager=bench', '-n', nsA, '-f', baselineFile], timeoutS * 1000);
  const baselineServerCpu = cpuSince(cpuBeforeBaseline, serverCpu(cp.pids));
  await sleep(300);
  audit.poll();
  const baselineRequests = summarize(audit.select(KUBECTL_USER));

  // 2. kiln: controller process, then the N resources in namespace B
  const healthPort = await freePort();
  const logFile1 = join(work, 'controller-1.log');
  log(`kiln controller (qps ${qps}, burst ${qps}, concurrency ${concurrency})`);
  ctrl = new Controller(controllerId.kubeconfig, nsB, healthPort, logFile1);
  await ctrl.waitReady(readyTimeoutMs);
  const readyAfterS = (Date.now() - ctrl.startedAt) / 1000;
  const resourcesFile = join(work, 'directoryservices.yaml');
  writeFileSync(resourcesFile, toYamlStream(Array.from({ length: count }, (_, i) => directoryService(i, nsB))));
  log(`create ${count} DirectoryServices, wait until all are Ready`);
  const createStarted = Date.now();
  const cpuBeforeConverge = serverCpu(cp.pids);
  const create = await timed(kubectl, ['--kubeconfig', admin, 'apply', '--server-side', '--field-manager=bench', '-f', resourcesFile], timeoutS * 1000);
  const allReadyAt = await waitAllReady(cp, ctrl, audit, nsB, count, deadline());
  const convergeSeconds = (allReadyAt - createStarted) / 1000;
  const convergeServerCpu = cpuSince(cpuBeforeConverge, serverCpu(cp.pids));
  audit.poll();
  const convergeProc = ctrl.proc();
  const convergeRequests = summarize(audit.select(CONTROLLER_USER, ctrl.startedAt, allReadyAt));
  log(`all Ready after ${convergeSeconds.toFixed(1)} s; waiting for the controller to settle`);
  const settledAt = await waitIdle(ctrl, audit, deadline());
  const settleRequests = summarize(audit.select(CONTROLLER_USER, allReadyAt, Infinity));
  const settleProc = ctrl.proc();
  const firstRunSockets = ctrl.peakSockets;
  await ctrl.stop();
  const problems1 = logProblems(logFile1);

  // 3. restart with everything in place: no writes
  const logFile2 = join(work, 'controller-2.log');
  log('restart the controller');
  ctrl = new Controller(controllerId.kubeconfig, nsB, healthPort, logFile2);
  const restartedAt = ctrl.startedAt;
  await ctrl.waitReady(readyTimeoutMs);
  const resyncReadyAfterS = (Date.now() - restartedAt) / 1000;
  const resyncDoneAt = await waitIdle(ctrl, audit, deadline());
  const resyncRequests = summarize(audit.select(CONTROLLER_USER, restartedAt, Infinity));
  const resyncProc = ctrl.proc();
  await ctrl.stop();
  const problems2 = logProblems(logFile2);
  const stillReady = (await getJson<{ items: Kiln[] }>(cp, `/apis/${API}/namespaces/${nsB}/directoryservices`)).items.filter(isReady).length;

  const perResourceTimes = timelines(audit, nsB);
  const round = (x: number, d = 2) => Number(x.toFixed(d));
  const verbs = (s: ReturnType<typeof summarize>) => Object.fromEntries(VERBS.map((v) => [v, s.byVerb[v] ?? 0]));
  const rows = [
    {
      phase: 'kubectl apply --server-side',
      seconds: round(baseline.seconds),
      objects: objects.length,
      requests: baselineRequests.total,
      ...verbs(baselineRequests),
      writes: baselineRequests.writes,
      repeatedWrites: baselineRequests.repeatedWrites,
      errors: baselineRequests.errors,
      peakRssMiB: baseline.peakRssMiB,
      cpuSeconds: baseline.cpuSeconds,
    },
    {
      phase: 'kiln controller converge',
      seconds: round(convergeSeconds),
      objects: objects.length,
      requests: convergeRequests.total,
      ...verbs(convergeRequests),
      writes: convergeRequests.writes,
      repeatedWrites: convergeRequests.repeatedWrites,
      errors: convergeRequests.errors,
      peakRssMiB: convergeProc.peakRssMiB,
      cpuSeconds: convergeProc.cpuSeconds,
    },
    {
      phase: 'kiln after Ready, until idle',
      seconds: round(Math.max(0, settledAt - allReadyAt) / 1000),
      objects: null,
      requests: settleRequests.total,
      ...verbs(settleRequests),
      writes: settleRequests.writes,
      repeatedWrites: settleRequests.repeatedWrites,
      errors: settleRequests.errors,
      peakRssMiB: settleProc.peakRssMiB,
      cpuSeconds: round(settleProc.cpuSeconds - convergeProc.cpuSeconds),
    },
    {
      phase: 'kiln resync after restart',
      seconds: round((resyncDoneAt - restartedAt) / 1000),
      objects: null,
      requests: resyncRequests.total,
      ...verbs(resyncRequests),
      writes: resyncRequests.writes,
      repeatedWrites: resyncRequests.repeatedWrites,
      errors: resyncRequests.errors,
      peakRssMiB: resyncProc.peakRssMiB,
      cpuSeconds: resyncProc.cpuSeconds,
    },
  ];
  // The converge time no controller sending these requests could beat here: the CPU the control
  // plane spent serving them plus what the kubectl creating the resources used, spread over every core.
  const outsideCpu = Object.values(convergeServerCpu).reduce((a, b) => a + b, 0) + (create.cpuSeconds ?? 0);
  const convergeFloor = { cpuSecondsOutsideController: round(outsideCpu), cores: availableParallelism(), seconds: round(outsideCpu / availableParallelism()) };
  const result = {
    benchmark: 'apply',
    date: new Date().toISOString(),
    machine: { cores: availableParallelism(), cpu: cpus()[0]?.model, node: process.version, kubernetes: cp.version, loadAverageAtStart: loadAtStart },
    settings: {
      resources: count,
      kind: 'DirectoryService',
      objectsPerResource: perResource,
      qps,
      burst: qps,
      concurrency,
      controllerDefaultQps: 20,
      controllerNodeArgs,
      controllerEnv: NODE_ENV,
      kubeControllerManager: kcmControllers,
      note: 'seconds: kubectl = the apply command; converge = from the create of the N resources until all are Synced (applied and in sync) for their generation (polled every 500 ms, every 5 s above 2,000 resources); after Ready = until no request for 5 s and no CPU for 3 s; resync = from process start until idle. Requests are counted from the API server audit log by user (the controller and the baseline kubectl have identities of their own); converge includes the controller startup LIST/WATCH; repeatedWrites = writes to an object already written with the same verb and endpoint in that phase.',
    },
    rows,
    details: {
      renderSecondsInProcess: round(renderSeconds),
      createResources: { seconds: round(create.seconds), peakRssMiB: create.peakRssMiB, cpuSeconds: create.cpuSeconds },
      convergeFloor,
      controllerReadyzAfterSeconds: round(readyAfterS),
      serverCpuSeconds: { kubectl: baselineServerCpu, converge: convergeServerCpu },
      restartReadyzAfterSeconds: round(resyncReadyAfterS),
      resyncWritesZero: resyncRequests.writes === 0,
      perResource: perResourceTimes,
      readyAfterRestart: `${stillReady}/${count}`,
      requests: { kubectl: baselineRequests, converge: convergeRequests, afterReady: settleRequests, resync: resyncRequests },
      controllerLogProblems: { firstRun: problems1, restart: problems2 },
      controllerRssMiBAtEnd: { firstRun: settleProc.rssMiB, restart: resyncProc.rssMiB },
      controllerPeakOpenSockets: { firstRun: firstRunSockets, restart: ctrl.peakSockets },
    },
  };
  console.table(rows);
  console.log(`requests per resource: kubectl ${round(baselineRequests.total / count)}, kiln converge ${round(convergeRequests.total / count)} (writes ${round(convergeRequests.writes / count)})`);
  console.log(`resync after restart: ${resyncRequests.writes} writes ${resyncRequests.writes === 0 ? '(ok)' : '(FAIL: must be 0)'}; Ready after restart ${stillReady}/${count}`);
  const lat = (s: ReturnType<typeof summarize>) => (s.serverLatencyMs ? `p50 ${s.serverLatencyMs.p50} / p90 ${s.serverLatencyMs.p90} ms` : '-');
  console.log(`control-plane CPU seconds: kubectl phase ${JSON.stringify(baselineServerCpu)}, converge ${JSON.stringify(convergeServerCpu)}`);
  console.log(`API server time per request: kubectl ${lat(baselineRequests)}, kiln converge ${lat(convergeRequests)}`);
  console.log(
    `converge floor: control plane + creating kubectl used ${convergeFloor.cpuSecondsOutsideController} CPU s while kiln converged; on ${convergeFloor.cores} cores a controller sending the same requests at no CPU cost of its own could not be done before ${convergeFloor.seconds} s (kiln ${round(convergeSeconds)} s, its own CPU ${convergeProc.cpuSeconds} s)`,
  );
  const pr = perResourceTimes;
  if (pr.createToFirstControllerWriteMs && pr.firstWriteToStatusWriteMs) {
    console.log(
      `per resource: create -> first controller write p50 ${pr.createToFirstControllerWriteMs.p50} / p90 ${pr.createToFirstControllerWriteMs.p90} ms; first write -> status p50 ${pr.firstWriteToStatusWriteMs.p50} / p90 ${pr.firstWriteToStatusWriteMs.p90} ms`,
    );
  }
  console.log(
    `controller: readyz after ${round(readyAfterS)} s (restart ${round(resyncReadyAfterS)} s), peak open sockets ${firstRunSockets} (restart ${ctrl.peakSockets}), RSS at end ${settleProc.rssMiB} MiB`,
  );
  if (problems1.count + problems2.count > 0) console.log(`controller warnings/errors: ${JSON.stringify({ ...problems1.byMessage, ...problems2.byMessage })}`);
  const resultsFile = join(root, 'bench/results/apply.json');
  const previous = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>) : undefined;
  if (scaleRun) {
    const scaled = {
      date: result.date,
      machine: result.machine,
      settings: { ...result.settings, note: `${result.settings.note} Scale run: no kubectl baseline.` },
      rows: rows.slice(1),
      details: { ...result.details, perResource: undefined, requests: undefined },
    };
    const merged = { ...(previous ?? result), scale: { ...((previous?.['scale'] as object | undefined) ?? {}), [count]: scaled } };
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    writeFileSync(resultsFile, `${JSON.stringify(merged, null, 2)}\n`);
    console.log(`wrote bench/results/apply.json (scale.${count})`);
  } else if (!skipBaseline) {
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    writeFileSync(resultsFile, `${JSON.stringify({ ...result, ...(previous?.['scale'] ? { scale: previous['scale'] } : {}) }, null, 2)}\n`);
    console.log('wrote bench/results/apply.json');
  }
  if (resyncRequests.writes > 0 || stillReady !== count) process.exitCode = 1;
  failed = false;
} finally {
  await ctrl?.stop().catch(() => {});
  await cp?.stop().catch(() => {});
  if (failed || args.includes('--keep-work')) log(`${failed ? 'failed; ' : ''}logs kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
