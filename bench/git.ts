/**
 * Git-mode benchmark against a real control plane (test/harness) and a bare
 * repository on disk: a git-mode Manager runs in this process, watching one
 * namespace, and commits what it renders to the bare repository's main.
 *
 *  1. create: N mixed kiln resources (DirectoryService, PostgresInstance,
 *     CacheCluster, DataGrid in turn; not ConfigMapSync, which git mode
 *     refuses, PostgresDatabase, which the agent carries out, or
 *     DirectoryBackup/DirectoryRestore, whose spec is immutable) in one
 *     `kubectl apply --server-side` of a multi-document file;
 *  2. change: a spec field of every one of them changed, again in one apply;
 *  3. resync: every key queued again on the running Manager, then a restart
 *     (a new Manager with a fresh clone): no commit and no API write.
 *
 * Per phase: commits kiln made (rev-list on the bare repository), the time from
 * the end of the kubectl apply (the last change) until the first push whose
 * commit holds all N (for the change phase: all N manifests differ from the
 * create phase's tip), taken from a post-receive hook in the bare repository
 * that stamps every ref update; the time until all N are Ready for their
 * generation with status.commit set; the Manager's API writes (status, events);
 * the repository's size before and, at the end, after `git gc`.
 *
 * The floor (bench/git-floor.ts), after the create and the change phase: a
 * plain script publishing the tree kiln pushed with `git add -A && git commit
 * && git push` into an equivalent bare repository on the same disk, timed to
 * the same post-receive hook; kiln's time over it is the ratio (also without
 * the debounce, a deliberate wait).
 *
 * Prints a table and writes bench/results/git.json.
 *
 *   npm run bench:git [-- --count 1000 --qps 200 --concurrency 4 --debounce 2000 --max-wait 30000 --timeout 900]
 *
 * --qps also sets --burst (the Manager's API client: status writes and events;
 * the CLI's default is 20). --debounce / --max-wait are the batcher's (defaults
 * as shipped: 2 s quiet time, at most 30 s). kube-controller-manager is not
 * started: git mode creates nothing in the cluster that a controller acts on.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { render } from '../kinds/render.js';
import type { KilnResource } from '../kinds/types.js';
import { digest } from '../controller/apply/applyset.js';
import { KubeClient } from '../kube/client.js';
import { Manager, type Log } from '../controller/manager.js';
import type { FlushReport } from '../gitops/batcher.js';
import { secretProblem } from '../gitops/layout.js';
import { toYamlStream } from '../lib/yaml.js';
import { defaultCrdPaths, ensureBinaries, startControlPlane, type ControlPlane } from '../test/harness/controlplane.js';
import { formatErrors, validate } from '../validate/index.js';
import { flags } from './args.js';
import { gitFloor, type FloorResult } from './git-floor.js';
import { initBareRepo, plainGit, plainGitEnv as gitEnv } from '../test/harness/git.js';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = flags(args).get;
const count = Number(flag('count', '1000'));
const qps = Number(flag('qps', '200'));
const concurrency = Number(flag('concurrency', '4'));
const debounceMs = Number(flag('debounce', '2000'));
const maxWaitMs = Number(flag('max-wait', '30000'));
const timeoutS = Number(flag('timeout', '900'));
if (!(count > 0) || !(qps >= 0) || !(concurrency > 0) || !(debounceMs >= 0) || !(maxWaitMs >= 0)) {
  throw new Error('--count and --concurrency must be positive; --qps, --debounce, --max-wait >= 0');
}

const API = 'kiln.dev/v1alpha1';
const NS = 'bench-git';
const CLUSTER = 'bench';
const BASE = 'clusters';
const NS_DIR = `${BASE}/${CLUSTER}/${NS}`;
/** Samples of the floor per phase (each under a second at 1,000 resources): the median is reported. */
const floorRuns = 3;
const TARGETS = { commitsPerBurst: 5, pushWithinSecondsOfLastChange: 10, resyncCommits: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`[bench:git ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const round = (x: number, d = 2) => Number(x.toFixed(d));
const load = () => loadavg().map((l) => round(l));

// ---------------------------------------------------------------------------
// inputs: a mix of the kinds git mode renders with a mutable spec; `variant` 1 changes one field of each

const KINDS = [
  { kind: 'DirectoryService', plural: 'directoryservices', short: 'ds' },
  { kind: 'PostgresInstance', plural: 'postgresinstances', short: 'pg' },
  { kind: 'CacheCluster', plural: 'cacheclusters', short: 'cache' },
  { kind: 'DataGrid', plural: 'datagrids', short: 'grid' },
] as const;

function resource(i: number, variant: 0 | 1): KilnResource {
  const k = KINDS[i % KINDS.length]!;
  const metadata = { name: `${k.short}-${String(i).padStart(5, '0')}`, namespace: NS };
  const base = { apiVersion: API, kind: k.kind, metadata };
  const dsImage = `registry.example.com/forgerock/ds:7.5.${1 + variant}`;
  switch (k.kind) {
    case 'DirectoryService':
      return {
        ...base,
        spec: {
          replicas: 3,
          image: dsImage,
          resources: { requests: { cpu: '1', memory: '3Gi' }, limits: { memory: '3Gi' } },
          storage: { size: '100Gi', storageClassName: 'fast', volumeSnapshotClassName: 'csi-snapshots' },
          passwords: {
            'uid=admin': { secretName: `${metadata.name}-pw`, key: 'dirmanager.pw' },
            'uid=am-config,ou=admins,ou=am-config': { secretName: `${metadata.name}-pw`, key: 'am', create: true },
          },
        },
      };
    case 'PostgresInstance':
      return {
        ...base,
        spec: {
          version: 16,
          replicas: 1,
          storage: { size: '50Gi' },
          parameters: { max_connections: String(200 + variant), shared_buffers: '256MB' },
          service: { type: 'ClusterIP', port: 5432 },
        },
      };
    case 'CacheCluster':
      return { ...base, spec: { size: 5, catalogServers: 3, capacity: '4Gi', image: `registry.example.com/cache/xsld:8.6.${1 + variant}`, storage: { size: '5Gi' } } };
    case 'DataGrid':
      return { ...base, spec: { cache: `cache-${String(i - 1).padStart(5, '0')}`, gridType: 'Session', partitions: 31, capacity: `${8 + variant}Gi`, timeToLiveSeconds: 1800 } };
  }
}

/** Every input is valid, commits (no Secret with data) and its variant renders differently. */
function checkInputs(): { objectsPerVariant: number } {
  let objects = 0;
  for (let i = 0; i < count; i++) {
    const revisions = ([0, 1] as const).map((variant) => {
      const v = validate(resource(i, variant));
      if (!v.ok) throw new Error(`invalid input ${i}: ${formatErrors(v.errors)}`);
      const rendered = render(v.resource);
      const secret = secretProblem(rendered);
      if (secret) throw new Error(`input ${i} would not be committed: ${secret}`);
      if (variant === 0) objects += rendered.length;
      return digest(rendered);
    });
    if (revisions[0] === revisions[1]) throw new Error(`input ${i}: the change does not change its render`);
  }
  return { objectsPerVariant: objects };
}

// ---------------------------------------------------------------------------
// plain git on the bare repository

const git = (cwd: string, ...gitArgs: string[]): string => plainGit(cwd, gitArgs, undefined, 256 * 2 ** 20);

interface Push {
  at: number;
  sha: string;
  ref: string;
}

/** A post-receive hook appends `<epoch ns> <new sha> <ref>` for every ref update. */
function seedBareRepo(bare: string, scratch: string, pushLog: string): void {
  initBareRepo(bare, scratch);
  const hook = join(bare, 'hooks', 'post-receive');
  writeFileSync(hook, `#!/bin/sh\nwhile read old new ref; do echo "$(date +%s%N) $new $ref" >> '${pushLog}'; done\n`);
  chmodSync(hook, 0o755);
}

function readPushes(pushLog: string): Push[] {
  if (!existsSync(pushLog)) return [];
  return readFileSync(pushLog, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [ns, sha, ref] = l.split(' ');
      return { at: Number(BigInt(ns!) / 1_000_000n), sha: sha!, ref: ref! };
    });
}

function repoSize(bare: string): { duBytes: number; countObjects: Record<string, string> } {
  const du = Number(spawnSync('du', ['-sb', bare], { encoding: 'utf8' }).stdout.split('\t')[0]);
  const countObjects = Object.fromEntries(
    git(bare, 'count-objects', '-vH')
      .trim()
      .split('\n')
      .map((l) => l.split(': ') as [string, string]),
  );
  return { duBytes: du, countObjects };
}

// ---------------------------------------------------------------------------
// the Manager, in process

interface Tally {
  status: number;
  events: number;
  other: number;
  byVerb: Record<string, number>;
}
const newTally = (): Tally => ({ status: 0, events: 0, other: 0, byVerb: {} });

const flushes: (FlushReport & { at: number; manager: number })[] = [];
const logProblems: Record<string, number> = {};
/** The batcher's own account of each flush (changes, changed, ms from the start of the flush to the push). */
const batchLog: Record<string, unknown>[] = [];
let managers = 0;

function newManager(cp: ControlPlane, bare: string, work: string, logStream: NodeJS.WritableStream): { manager: Manager; tally: Tally } {
  const id = ++managers;
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  const managerLog: Log = (level, msg, fields) => {
    logStream.write(`${JSON.stringify({ t: new Date().toISOString(), manager: id, level, msg, ...fields })}\n`);
    if (level !== 'info') logProblems[`${level}: ${msg}`] = (logProblems[`${level}: ${msg}`] ?? 0) + 1;
    if (msg.startsWith('git batch')) batchLog.push({ manager: id, msg, ...fields });
  };
  const manager = new Manager({
    kc,
    namespaces: [NS],
    concurrency,
    qps,
    burst: qps,
    resyncSeconds: 0,
    version: 'bench',
    log: managerLog,
    sink: 'git',
    git: {
      repo: bare,
      branch: 'main',
      basePath: BASE,
      cluster: CLUSTER,
      workDir: join(work, `clone-${id}`),
      author: { name: 'kiln bench', email: 'kiln-bench@example.com' },
      debounceMs,
      maxWaitMs,
      onFlush: (r) => flushes.push({ ...r, at: Date.now(), manager: id }),
    },
  });
  const tally = newTally();
  manager.client.onRequest = (verb, path) => {
    if (['GET', 'LIST', 'WATCH'].includes(verb)) return;
    tally.byVerb[verb] = (tally.byVerb[verb] ?? 0) + 1;
    if (verb === 'PATCH' && path.endsWith('/status')) tally.status++;
    else if (path.includes('/events')) tally.events++;
    else tally.other++;
  };
  return { manager, tally };
}

const snapshot = (t: Tally): Tally => ({ ...t, byVerb: { ...t.byVerb } });
const diffTally = (a: Tally, b: Tally): Tally => ({
  status: b.status - a.status,
  events: b.events - a.events,
  other: b.other - a.other,
  byVerb: Object.fromEntries(
    Object.keys(b.byVerb)
      .map((v): [string, number] => [v, b.byVerb[v]! - (a.byVerb[v] ?? 0)])
      .filter(([, n]) => n !== 0),
  ),
});
const writesOf = (t: Tally) => t.status + t.events + t.other;

/**
 * Waits until the Manager has nothing left to do: queue empty, no change
 * waiting for a batch, and no reconcile, write or push for a quiet period
 * longer than the debounce; then waits out any flush in progress.
 */
async function settle(m: Manager, pushLog: string, deadline: number): Promise<void> {
  const quietMs = Math.max(3000, debounceMs + 1000);
  const quiet = async (ms: number) => {
    let sig = '';
    let since = Date.now();
    for (;;) {
      await sleep(200);
      const s = `${m.reconciles}/${m.client.writes()}/${m.git!.pendingCount}/${m.queue.depth()}/${readPushes(pushLog).length}/${flushes.length}`;
      if (s !== sig) {
        sig = s;
        since = Date.now();
      } else if (m.queue.depth() === 0 && m.git!.pendingCount === 0 && Date.now() - since >= ms) {
        return;
      }
      if (Date.now() > deadline) throw new Error(`the Manager did not settle within ${timeoutS} s (queue ${m.queue.depth()}, pending ${m.git!.pendingCount})`);
    }
  };
  await quiet(quietMs);
  await m.git!.flush(); // after any flush in progress; nothing is pending
  await m.queue.idle();
  await quiet(1000);
}

// ---------------------------------------------------------------------------
// status of the N resources

interface Live {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; generation: number };
  spec: unknown;
  status?: { observedGeneration?: number; commit?: string; revision?: string; conditions?: { type: string; status: string; reason?: string; observedGeneration?: number }[] };
}

const isReady = (o: Live) => {
  const gen = o.metadata.generation;
  const ready = o.status?.conditions?.find((c) => c.type === 'Ready');
  return ready?.status === 'True' && ready.observedGeneration === gen && o.status?.observedGeneration === gen && typeof o.status.commit === 'string';
};

async function listAll(reader: KubeClient): Promise<Live[]> {
  const lists = await Promise.all(KINDS.map((k) => reader.list<Live>({ apiVersion: API, kind: k.kind, namespace: NS })));
  return lists.flatMap((l, i) => l.items.map((o) => ({ ...o, apiVersion: API, kind: KINDS[i]!.kind })));
}

/** Polls every 500 ms until all N are Ready for their generation (at least `minGeneration`); returns when, and the list. */
async function waitAllReady(reader: KubeClient, minGeneration: number, deadline: number): Promise<{ at: number; items: Live[] }> {
  let lastReport = 0;
  for (;;) {
    const items = await listAll(reader);
    const at = Date.now();
    const ready = items.filter((o) => isReady(o) && o.metadata.generation >= minGeneration).length;
    if (items.length === count && ready === count) return { at, items };
    if (at > deadline) throw new Error(`only ${ready}/${count} Ready after ${timeoutS} s`);
    if (at - lastReport > 5000) {
      log(`${ready}/${count} Ready`);
      lastReport = at;
    }
    await sleep(500);
  }
}

/** The revision the controller computes: the digest of the live resource's render. */
function revisionOf(o: Live): string {
  const v = validate({ apiVersion: o.apiVersion, kind: o.kind, metadata: o.metadata, spec: o.spec });
  if (!v.ok) throw new Error(`invalid live ${o.kind}/${o.metadata.name}`);
  return `sha256:${digest(render(v.resource))}`;
}

// ---------------------------------------------------------------------------
// run

const loadAtStart = load();
const work = mkdtempSync(join(tmpdir(), 'kiln-bench-git-'));
const bare = join(work, 'deploy.git');
const pushLog = join(work, 'pushes.log');
const managerLogFile = join(work, 'manager.log');
const logStream = createWriteStream(managerLogFile, { flags: 'a' });
const deadline = () => Date.now() + timeoutS * 1000;
const commitCount = () => Number(git(bare, 'rev-list', '--count', 'main').trim());
const mainSha = () => git(bare, 'rev-parse', 'main').trim();
const manifestsIn = (sha: string) =>
  git(bare, 'ls-tree', '-r', '--name-only', sha, '--', `${NS_DIR}/`)
    .split('\n')
    .filter((f) => f.endsWith('/manifest.yaml')).length;
const manifestsChanged = (from: string, to: string) =>
  git(bare, 'diff', '--name-only', from, to, '--', `${NS_DIR}/`)
    .split('\n')
    .filter((f) => f.endsWith('/manifest.yaml')).length;

let cp: ControlPlane | undefined;
let current: { manager: Manager; tally: Tally } | undefined;
let failed = true;

const stopManager = async (m: Manager | undefined) => {
  if (!m) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>(
    (r) =>
      (timer = setTimeout(() => {
        log('the Manager did not stop within 60 s');
        r();
      }, 60_000)),
  );
  await Promise.race([m.stop().catch((err: unknown) => log(`manager stop: ${String(err)}`)), timeout]);
  clearTimeout(timer);
};
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping`);
    void Promise.race([Promise.all([current?.manager.stop().catch(() => {}), cp?.stop().catch(() => {})]), sleep(15_000)]).finally(() => process.exit(130));
  });
}

interface Phase {
  phase: string;
  applySeconds: number | null;
  lastChangeAt: number;
  commits: number;
  /** from the last change (end of kubectl apply) to the push of the first commit holding all N */
  pushAfterLastChangeS: number | null;
  readyAfterLastChangeS: number | null;
  firstPushAfterApplyStartS: number | null;
  statusWrites: number;
  events: number;
  apiWrites: number;
  reconciles: number;
  cpuSeconds: number;
  loadAverage: number[];
  commitsDetail: { sha: string; pushedAfterLastChangeS: number; subject: string; manifestsChanged: number }[];
  statusCommits: number;
  contentCheck: string;
  /** a plain script publishing the same tree (create and change only) */
  floor?: FloorResult;
}

try {
  log(`check ${count} inputs (validate, render, no Secret with data, the change changes each render)`);
  const { objectsPerVariant } = checkInputs();
  seedBareRepo(bare, work, pushLog);

  log('control plane (no kube-controller-manager)');
  const binDir = await ensureBinaries();
  cp = await startControlPlane({ binDir, crdPaths: defaultCrdPaths(), controllerManager: false });
  await cp.kubectlOk(['create', 'namespace', NS]);
  const adminKc = new KubeConfig();
  adminKc.loadFromFile(cp.kubeconfig);
  const reader = new KubeClient(adminKc, { qps: 0 });

  log(`git-mode Manager (qps ${qps}, concurrency ${concurrency}, debounce ${debounceMs} ms, max wait ${maxWaitMs} ms)`);
  const managerStarted = Date.now();
  current = newManager(cp, bare, work, logStream);
  await current.manager.start();
  const managerStartS = (Date.now() - managerStarted) / 1000;

  const phases: Phase[] = [];
  const sizes: Record<string, ReturnType<typeof repoSize>> = {};
  let createTip = '';

  /** One burst: apply all N in one kubectl, wait for the push holding them and for Ready, then for the Manager to settle. */
  async function burst(name: string, variant: 0 | 1, holdsAll: (sha: string) => boolean, contentCheck: (tip: string) => string): Promise<Phase> {
    const m = current!.manager;
    const file = join(work, `${name}.yaml`);
    writeFileSync(file, toYamlStream(Array.from({ length: count }, (_, i) => resource(i, variant))));
    const commitsBefore = commitCount();
    const tipBefore = mainSha();
    const pushesBefore = readPushes(pushLog).length;
    const tallyBefore = snapshot(current!.tally);
    const reconcilesBefore = m.reconciles;
    const minGeneration = variant + 1;
    const cpuBefore = process.cpuUsage();
    log(`${name}: kubectl apply --server-side of ${count} resources`);
    const applyStart = Date.now();
    await cp!.kubectlOk(['apply', '--server-side', '--field-manager=bench', '-f', file], { timeoutMs: timeoutS * 1000 });
    const lastChangeAt = Date.now();
    log(`${name}: applied in ${round((lastChangeAt - applyStart) / 1000)} s; waiting until all are Ready`);
    const ready = await waitAllReady(reader, minGeneration, deadline());
    log(`${name}: all Ready ${round((ready.at - lastChangeAt) / 1000)} s after the apply; settling`);
    await settle(m, pushLog, deadline());
    const cpu = process.cpuUsage(cpuBefore);
    const pushes = readPushes(pushLog)
      .slice(pushesBefore)
      .filter((p) => p.ref === 'refs/heads/main');
    const full = pushes.find((p) => holdsAll(p.sha));
    const tip = mainSha();
    const newCommits = git(bare, 'rev-list', '--reverse', `${tipBefore}..${tip}`).trim().split('\n').filter(Boolean);
    const commitsDetail = newCommits.map((sha) => {
      // A commit pushed along with later ones (several local commits in one push) takes that push's time.
      const at = pushes.find((p) => p.sha === sha || isAncestor(sha, p.sha))?.at;
      return {
        sha,
        pushedAfterLastChangeS: at === undefined ? NaN : round((at - lastChangeAt) / 1000),
        subject: git(bare, 'log', '-1', '--format=%s', sha).trim(),
        manifestsChanged: git(bare, 'diff-tree', '--no-commit-id', '--name-only', '-r', sha)
          .split('\n')
          .filter((f) => f.endsWith('/manifest.yaml')).length,
      };
    });
    const after = ready.items;
    const badRevision = after.filter((o) => o.status?.revision !== revisionOf(o)).length;
    const statusCommits = new Set(after.map((o) => o.status?.commit)).size;
    const notInMain = [...new Set(after.map((o) => o.status!.commit!))].filter((sha) => !isAncestor(sha, tip)).length;
    const tally = diffTally(tallyBefore, current!.tally);
    const phase: Phase = {
      phase: name,
      applySeconds: round((lastChangeAt - applyStart) / 1000),
      lastChangeAt,
      commits: commitCount() - commitsBefore,
      pushAfterLastChangeS: full ? round((full.at - lastChangeAt) / 1000) : null,
      readyAfterLastChangeS: round((ready.at - lastChangeAt) / 1000),
      firstPushAfterApplyStartS: pushes[0] ? round((pushes[0].at - applyStart) / 1000) : null,
      statusWrites: tally.status,
      events: tally.events,
      apiWrites: writesOf(tally),
      reconciles: m.reconciles - reconcilesBefore,
      cpuSeconds: round((cpu.user + cpu.system) / 1e6),
      loadAverage: load(),
      commitsDetail,
      statusCommits,
      contentCheck: `${contentCheck(tip)}; status.revision matches the render for ${count - badRevision}/${count}; status.commit in main for ${statusCommits - notInMain}/${statusCommits} distinct commits`,
    };
    if (!full) throw new Error(`${name}: no pushed commit holds all ${count} (pushes ${JSON.stringify(pushes)})`);
    if (badRevision > 0 || notInMain > 0) throw new Error(`${name}: ${phase.contentCheck}`);
    log(`${name}: floor, a script publishing the same tree with git add, commit, push`);
    phase.floor = await gitFloor(bare, tipBefore, full.sha, work, floorRuns);
    if (!phase.floor.treeMatches) throw new Error(`${name}: the floor script's tree differs from kiln's`);
    return phase;
  }

  function isAncestor(a: string, b: string): boolean {
    return spawnSync('git', ['merge-base', '--is-ancestor', a, b], { cwd: bare, env: gitEnv }).status === 0;
  }

  // 1. create
  phases.push(
    await burst(
      'create',
      0,
      (sha) => manifestsIn(sha) === count,
      (tip) => {
        createTip = tip;
        return `main holds ${manifestsIn(tip)}/${count} manifests`;
      },
    ),
  );
  sizes['afterCreate'] = repoSize(bare);

  // 2. change all N
  phases.push(
    await burst(
      'change',
      1,
      (sha) => manifestsChanged(createTip, sha) === count,
      (tip) => `${manifestsChanged(createTip, tip)}/${count} manifests changed since the create phase`,
    ),
  );
  sizes['afterChange'] = repoSize(bare);

  /** 3. A resync of N unchanged resources: `start` returns the Manager to watch and whether its counts start now (running) or at zero (new). */
  async function resync(name: string, start: () => Promise<{ m: Manager; fresh: boolean }>, queueAll: boolean): Promise<Phase & { writesZero: boolean; commitsZero: boolean; seconds: number }> {
    const commitsBefore = commitCount();
    const tipBefore = mainSha();
    const cpuBefore = process.cpuUsage();
    const started = Date.now();
    const tallyBefore = snapshot(current!.tally);
    const reconcilesBefore = current!.manager.reconciles;
    const { m, fresh } = await start();
    if (queueAll) {
      for (let i = 0; i < count; i++) {
        const r = resource(i, 1);
        m.queue.add(`${r.kind}/${NS}/${r.metadata.name}`);
      }
    }
    await settle(m, pushLog, deadline());
    const cpu = process.cpuUsage(cpuBefore);
    const tally = diffTally(fresh ? newTally() : tallyBefore, current!.tally);
    const items = await listAll(reader);
    const stillReady = items.filter(isReady).length;
    const commits = commitCount() - commitsBefore;
    return {
      phase: name,
      applySeconds: null,
      lastChangeAt: started,
      commits,
      pushAfterLastChangeS: null,
      readyAfterLastChangeS: null,
      firstPushAfterApplyStartS: null,
      statusWrites: tally.status,
      events: tally.events,
      apiWrites: writesOf(tally),
      reconciles: m.reconciles - (fresh ? 0 : reconcilesBefore),
      cpuSeconds: round((cpu.user + cpu.system) / 1e6),
      loadAverage: load(),
      commitsDetail: [],
      statusCommits: new Set(items.map((o) => o.status?.commit)).size,
      contentCheck: `main unchanged: ${mainSha() === tipBefore}; Ready ${stillReady}/${count}; ${round((Date.now() - started) / 1000)} s until settled`,
      writesZero: writesOf(tally) === 0,
      commitsZero: commits === 0,
      seconds: round((Date.now() - started) / 1000),
    };
  }

  log('resync: every key queued again');
  const resyncQueued = await resync('resync (every key queued)', () => Promise.resolve({ m: current!.manager, fresh: false }), true);
  phases.push(resyncQueued);

  // 3b. restart: a new Manager with a fresh clone
  log('resync: restart the Manager (fresh clone)');
  const resyncRestart = await resync(
    'resync (restart, fresh clone)',
    async () => {
      await stopManager(current!.manager);
      current = newManager(cp!, bare, work, logStream);
      await current.manager.start();
      return { m: current.manager, fresh: true };
    },
    false,
  );
  phases.push(resyncRestart);

  await stopManager(current.manager);
  current = undefined;
  sizes['beforeGc'] = repoSize(bare);
  git(bare, 'gc', '--quiet');
  sizes['afterGc'] = repoSize(bare);

  const rows = phases.map((p) => ({
    phase: p.phase,
    applyS: p.applySeconds,
    commits: p.commits,
    pushAfterLastChangeS: p.pushAfterLastChangeS,
    readyAfterLastChangeS: p.readyAfterLastChangeS,
    reconciles: p.reconciles,
    statusWrites: p.statusWrites,
    events: p.events,
    apiWrites: p.apiWrites,
    cpuS: p.cpuSeconds,
    load1m: p.loadAverage[0],
  }));
  const floorRows = phases
    .filter((p) => p.floor && p.pushAfterLastChangeS !== null)
    .map((p) => {
      const kilnS = p.pushAfterLastChangeS!;
      const kilnLessDebounceS = round(kilnS - debounceMs / 1000);
      const floorS = round(p.floor!.seconds, 3);
      return {
        phase: p.phase,
        filesChanged: p.floor!.filesChanged,
        kilnPushAfterLastChangeS: kilnS,
        kilnLessDebounceS,
        floorS,
        ratio: round(kilnS / floorS, 1),
        ratioLessDebounce: round(kilnLessDebounceS / floorS, 1),
      };
    });
  const mib = (b: number) => round(b / 2 ** 20);
  const sizeRows = Object.entries(sizes).map(([when, s]) => ({
    when,
    duMiB: mib(s.duBytes),
    sizePack: s.countObjects['size-pack'],
    looseSize: s.countObjects['size'],
    looseObjects: Number(s.countObjects['count']),
    packedObjects: Number(s.countObjects['in-pack']),
  }));
  const change = phases[1]!;
  const create = phases[0]!;
  const verdict = {
    createCommitsWithinTarget: create.commits <= TARGETS.commitsPerBurst,
    changeCommitsWithinTarget: change.commits <= TARGETS.commitsPerBurst,
    createPushWithinTarget: create.pushAfterLastChangeS !== null && create.pushAfterLastChangeS <= TARGETS.pushWithinSecondsOfLastChange,
    changePushWithinTarget: change.pushAfterLastChangeS !== null && change.pushAfterLastChangeS <= TARGETS.pushWithinSecondsOfLastChange,
    resyncNoCommits: resyncQueued.commitsZero && resyncRestart.commitsZero,
    resyncNoWrites: resyncQueued.writesZero && resyncRestart.writesZero,
  };
  const result = {
    benchmark: 'git',
    date: new Date().toISOString(),
    machine: {
      cores: availableParallelism(),
      cpu: cpus()[0]?.model,
      node: process.version,
      git: git(work, '--version').trim(),
      kubernetes: cp.version,
      loadAverageAtStart: loadAtStart,
      loadAverageAtEnd: load(),
    },
    settings: {
      resources: count,
      kinds: KINDS.map((k) => k.kind),
      renderedObjects: objectsPerVariant,
      qps,
      burst: qps,
      concurrency,
      debounceMs,
      maxWaitMs,
      controllerDefaultQps: 20,
      manager: 'in process (controller/manager.ts, sink git), one namespace, no leader election, informer resync off',
      repository: 'bare repository on local disk, seeded with one commit; kiln writes clusters/bench/<namespace>/...',
      note:
        "Each burst is one `kubectl apply --server-side` of N resources; the last change = the end of that command. pushAfterLastChangeS: from then to the push (post-receive hook time) of the first commit holding all N (change: all N manifests differ from the create tip); negative when that push landed before kubectl returned. readyAfterLastChangeS: until all N are Ready for their generation with status.commit (500 ms polls). Writes are the Manager client's POST/PUT/PATCH/DELETE (status = PATCH .../status; events = POST events). Resync rows: queued = every key added to the running Manager's queue; restart = a new Manager with a fresh clone, its writes counted from start. cpuS = this process (Manager + bench), user + system. floor: after the create and the change phase, a script runs `git add -A && git commit && git push` of the tree kiln pushed (the diff from the phase's starting tip to kiln's commit holding all N, written into a fresh clone of a fresh bare repository holding kiln's history to that tip, before the clock starts; the floor's tree is checked equal to kiln's), timed from the start of `git add` to the post-receive hook, median of " +
        String(floorRuns) +
        "; ratio = kiln's pushAfterLastChangeS / floorS, ratioLessDebounce = (kiln's - debounce) / floorS. kiln's clock starts at the end of the apply, while it has been receiving and rendering changes during it.",
    },
    targets: TARGETS,
    verdict,
    rows,
    floor: floorRows,
    repositorySize: sizeRows,
    details: {
      managerStartSeconds: round(managerStartS),
      phases: phases.map(({ commitsDetail, contentCheck, statusCommits, firstPushAfterApplyStartS, phase, floor }) => ({
        phase,
        firstPushAfterApplyStartS,
        statusCommitsDistinct: statusCommits,
        contentCheck,
        commits: commitsDetail,
        ...(floor ? { floor } : {}),
      })),
      flushes: flushes.map((f) => ({
        manager: f.manager,
        commit: f.commit ?? null,
        sha: f.sha ?? null,
        changed: f.changed.length,
        results: f.results.length,
        push: f.push ?? null,
        error: f.error ?? null,
      })),
      batcherLog: batchLog,
      managerLogProblems: logProblems,
      repositorySize: sizes,
    },
  };
  console.table(rows);
  console.log(
    `floor: a script running \`git add -A && git commit && git push\` of the tree kiln pushed (median of ${floorRuns}), against kiln's time from the last change to that push; kiln's includes the ${debounceMs} ms debounce, shown also without it`,
  );
  console.table(floorRows);
  console.table(sizeRows);
  for (const p of phases) console.log(`${p.phase}: ${p.contentCheck}`);
  console.log(
    `targets: <= ${TARGETS.commitsPerBurst} commits per burst (create ${create.commits}, change ${change.commits}); pushed within ${TARGETS.pushWithinSecondsOfLastChange} s of the last change (create ${create.pushAfterLastChangeS} s, change ${change.pushAfterLastChangeS} s); resync 0 commits (${resyncQueued.commits} + ${resyncRestart.commits}) and 0 writes (${resyncQueued.apiWrites} + ${resyncRestart.apiWrites})`,
  );
  if (Object.keys(logProblems).length > 0) console.log(`manager warnings/errors: ${JSON.stringify(logProblems)}`);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results/git.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log('wrote bench/results/git.json');
  if (!verdict.resyncNoCommits || !verdict.resyncNoWrites) process.exitCode = 1;
  failed = false;
} finally {
  await stopManager(current?.manager);
  log('stopping the control plane');
  await cp?.stop().catch(() => {});
  log('stopped');
  logStream.end();
  if (failed) {
    process.exitCode = 1;
    log(`failed; logs kept in ${work}`);
  } else {
    rmSync(work, { recursive: true, force: true });
  }
}
