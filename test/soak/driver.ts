/**
 * The soak: kiln's controller and agent under a steady, seeded-random stream
 * of creates, updates and deletes of every kind, while the network to the
 * API server, PostgreSQL and slapd misbehaves at random (delay, blackhole,
 * reset, half-close), then a consistency check once the faults are cleared
 * and a settle period has passed, and the children's memory and open file
 * descriptors at the end beside those after the warm-up.
 *
 * Used by `npm run soak` (scripts/soak.ts) and test/integration/soak.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isNotFound } from '../../kube/client.js';
import type { ControlPlaneClient } from '../harness/connect.js';
import type { Fault } from '../harness/fault-proxy.js';
import { checkConsistency, type ConsistencyResult } from './consistency.js';
import { startPvcProtection } from './pvc-protection.js';
import { startEnvironment, type SoakEnvironment, type Target } from './environment.js';
import { GIT_KINDS, KINDS, PERMANENT, namespaceFixtures, resource, soakLayout, sourceConfigMap, type SoakKind, type SoakLayout } from './templates.js';

export interface SoakOptions {
  minutes: number;
  seed: number;
  /** operations per second */
  rate: number;
  namespaces: number;
  /** the longest wait for the end state after the faults are cleared */
  settleSeconds: number;
  /** the highest sample in the minute after this long is the baseline the end is compared with */
  warmupSeconds: number;
  workDir: string;
  /** leave the namespaces in the cluster when the soak fails, to look at */
  keepOnFailure?: boolean;
  log: (line: string) => void;
}

export interface ProcessSample {
  rssMiB: number;
  fds: number;
}

export interface SoakReport {
  seed: number;
  minutes: number;
  rate: number;
  runId: string;
  namespaces: string[];
  operations: Record<string, Record<'create' | 'update' | 'delete' | 'error', number>>;
  operationErrors: string[];
  faults: Record<string, number>;
  /** connections each proxy accepted: kiln's traffic to each dependency went through it */
  connections: Record<Target, number>;
  /** when the load started (ISO 8601), the origin of faultLog's times */
  startedAt: string;
  faultLog: { at: number; target: Target; fault: string; existing: boolean; seconds: number }[];
  settleSeconds: number;
  consistency: ConsistencyResult;
  processes: Record<Who, { pid: number; start: ProcessSample; warm: ProcessSample; end: ProcessSample; exited: boolean; errorLines: number; limit: ProcessSample; grew: string[] }>;
  ok: boolean;
  failures: string[];
  logDir: string;
}

/** A small seeded generator (mulberry32): the same seed gives the same sequence of operations and faults. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function sample(pid: number): ProcessSample {
  // A process that has exited measures nothing (its exit is reported on its own).
  if (!existsSync(`/proc/${pid}/status`)) return { rssMiB: 0, fds: 0 };
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rssMiB: Math.round((kb / 1024) * 10) / 10, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/**
 * How much more than after the warm-up the end may hold: V8 grows its heap in
 * steps and keeps what it took, so a fixed share plus a floor, not zero. A
 * leak of a socket or a timer per reconcile or per fault shows far above it
 * over a run's hundreds of operations.
 */
export function limitFor(warm: ProcessSample): ProcessSample {
  return { rssMiB: Math.round(Math.max(warm.rssMiB * 1.5, warm.rssMiB + 48)), fds: warm.fds + 24 };
}

const API = 'kiln.dev/v1alpha1';

async function exists(env: SoakEnvironment, kind: SoakKind, ns: string, name: string): Promise<boolean> {
  try {
    await env.client.get({ apiVersion: API, kind, namespace: ns, name });
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

async function prepareNamespaces(cp: ControlPlaneClient, layout: SoakLayout): Promise<void> {
  const all = [...layout.namespaces.flatMap((ns) => [ns, layout.targets[ns]!]), layout.gitNamespace];
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: all.map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kiln.dev/soak': 'true' } } })) }),
  });
}

const FAULT_KINDS = ['delay', 'blackhole', 'reset', 'half-close'] as const;
const TARGETS: Target[] = ['apiserver', 'postgres', 'slapd', 'git'];
const PROCESSES = ['controller', 'gitController', 'agent'] as const;
type Who = (typeof PROCESSES)[number];

export async function runSoak(cp: ControlPlaneClient, opts: SoakOptions): Promise<SoakReport> {
  const random = rng(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const runId = randomBytes(3).toString('hex');
  const layout = soakLayout(runId, opts.namespaces);
  const { log } = opts;

  await prepareNamespaces(cp, layout);
  const env = await startEnvironment(cp, layout, opts.workDir, async (postgres, slapd) => {
    const items = layout.namespaces.flatMap((ns) => namespaceFixtures(ns, layout.targets[ns]!, { postgresPassword: postgres.password, ldapAdminPassword: slapd.adminPassword, ldapCa: slapd.caPem }));
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
  });
  const pvcProtection = startPvcProtection(env.client, [...layout.namespaces, layout.gitNamespace]);
  const pids = Object.fromEntries(PROCESSES.map((w) => [w, env[w].child.pid!])) as Record<Who, number>;
  const sampleAll = () => Object.fromEntries(PROCESSES.map((w) => [w, sample(pids[w])])) as Record<Who, ProcessSample>;
  const start = sampleAll();
  log(`soak ${runId}: seed ${opts.seed}, ${opts.minutes} min at ${opts.rate} op/s over ${layout.namespaces.join(', ')}; pids ${JSON.stringify(pids)}; logs in ${env.logDir}`);

  const operations: SoakReport['operations'] = Object.fromEntries(KINDS.map((k) => [k, { create: 0, update: 0, delete: 0, error: 0 }]));
  const operationErrors: string[] = [];
  const faults: Record<string, number> = {};
  const faultLog: SoakReport['faultLog'] = [];
  const t0 = Date.now();
  let passed = false;
  const endAt = t0 + opts.minutes * 60_000;
  let warm: typeof start | undefined;
  let variant = 1;

  try {
    // Everything once at the start, so that every kind is under load from the first minute.
    for (const ns of [...layout.namespaces, layout.gitNamespace]) {
      for (const kind of ns === layout.gitNamespace ? GIT_KINDS : KINDS) {
        for (const name of layout.pools[kind]) {
          await env.client.apply(resource(kind, ns, name, 0, layout), 'soak');
          operations[kind]!.create++;
        }
      }
    }

    // The baseline: the most each process held in the minute after the warm-up (one sample can land in a lull, e.g. while a fault has closed its connections).
    const baselineLoop = (async () => {
      await sleep(opts.warmupSeconds * 1000);
      const windowEnd = Math.min(endAt, Date.now() + 60_000);
      const peak = sampleAll();
      while (Date.now() < windowEnd) {
        await sleep(5_000);
        const now = sampleAll();
        for (const w of PROCESSES) peak[w] = { rssMiB: Math.max(peak[w].rssMiB, now[w].rssMiB), fds: Math.max(peak[w].fds, now[w].fds) };
      }
      warm = peak;
      log(`baseline after the warm-up: ${JSON.stringify(warm)}`);
    })();

    // One fault loop per dependency, each with its own seeded sequence: faults on different dependencies overlap, as outages do.
    const faultLoop = Promise.all(
      TARGETS.map(async (target, i) => {
        const r = rng(opts.seed * 31 + i + 1);
        const within = (lo: number, hi: number) => lo + r() * (hi - lo);
        while (Date.now() < endAt) {
          await sleep(within(5_000, 25_000));
          if (Date.now() >= endAt) break;
          const kind = FAULT_KINDS[Math.floor(r() * FAULT_KINDS.length)]!;
          const fault: Fault = kind === 'delay' ? { kind, ms: Math.round(within(200, 5_000)) } : { kind };
          const existing = r() < 0.7;
          const seconds = Math.round(within(3, 20));
          const name = `${target}:${kind}`;
          faults[name] = (faults[name] ?? 0) + 1;
          faultLog.push({ at: Math.round((Date.now() - t0) / 1000), target, fault: fault.kind === 'delay' ? `delay ${fault.ms} ms` : kind, existing, seconds });
          env.proxies[target].setFault(fault, { existing });
          await sleep(Math.min(seconds * 1000, Math.max(0, endAt - Date.now())));
          env.proxies[target].setFault({ kind: 'none' }, { existing: true });
        }
      }),
    );

    const interval = 1000 / opts.rate;
    let next = Date.now();
    while (Date.now() < endAt) {
      // The git namespace gets its share: one namespace among the others.
      const ns = pick([...layout.namespaces, layout.gitNamespace]);
      const kind = pick(ns === layout.gitNamespace ? GIT_KINDS : KINDS);
      const name = pick(layout.pools[kind]);
      const roll = random();
      const v = variant++;
      let op: 'create' | 'update' | 'delete' = 'create';
      try {
        if (await exists(env, kind, ns, name)) {
          op = roll < 0.35 && !PERMANENT.has(`${kind}/${name}`) ? 'delete' : 'update';
          if (op === 'delete') await env.client.delete({ apiVersion: API, kind, namespace: ns, name });
          else {
            await env.client.apply(resource(kind, ns, name, v, layout), 'soak');
            if (kind === 'ConfigMapSync') await env.client.apply(sourceConfigMap(ns, v), 'soak');
          }
        } else await env.client.apply(resource(kind, ns, name, v, layout), 'soak');
        operations[kind]![op]++;
      } catch (err) {
        operations[kind]!.error++;
        if (operationErrors.length < 20) operationErrors.push(`${op} ${kind} ${ns}/${name}: ${(err as Error).message}`);
      }
      next += interval;
      await sleep(Math.max(0, next - Date.now()));
    }
    await faultLoop;
    await baselineLoop;
    for (const p of Object.values(env.proxies)) p.setFault({ kind: 'none' }, { existing: true });
    warm ??= sampleAll();
    const total = Object.values(operations).reduce((n, o) => n + o.create + o.update + o.delete, 0);
    log(`load over: ${total} operations, ${faultLog.length} faults; settling (at most ${opts.settleSeconds} s)`);

    // Settle: the check again until it passes or the time is up; a soak that converges late is still reported with its time.
    const settleStart = Date.now();
    let consistency: ConsistencyResult;
    for (;;) {
      consistency = await checkConsistency({ client: env.client, layout, postgres: env.postgres, slapd: env.slapd, runId, bareRepo: env.bareRepo });
      if (consistency.ok || Date.now() - settleStart > opts.settleSeconds * 1000) break;
      await sleep(5_000);
    }
    const settleSeconds = Math.round((Date.now() - settleStart) / 1000);
    const end = sampleAll();

    const failures: string[] = [...consistency.findings];
    const processes = {} as SoakReport['processes'];
    for (const who of PROCESSES) {
      const p = env[who];
      const limit = limitFor(warm[who]);
      const grew: string[] = [];
      if (end[who].rssMiB > limit.rssMiB) grew.push(`RSS ${end[who].rssMiB} MiB > ${limit.rssMiB} MiB`);
      if (end[who].fds > limit.fds) grew.push(`open fds ${end[who].fds} > ${limit.fds}`);
      const exited = p.child.exitCode !== null || p.child.signalCode !== null;
      if (exited) failures.push(`${who} exited during the soak (${p.child.exitCode ?? p.child.signalCode})`);
      for (const g of grew) failures.push(`${who}: ${g}`);
      const errorLines = p.lines.filter((l) => /"level":"(error|fatal)"/.test(l)).length;
      processes[who] = { pid: pids[who], start: start[who], warm: warm[who], end: end[who], exited, errorLines, limit, grew };
    }
    passed = failures.length === 0;
    return {
      seed: opts.seed,
      minutes: opts.minutes,
      rate: opts.rate,
      runId,
      namespaces: [...layout.namespaces, layout.gitNamespace],
      startedAt: new Date(t0).toISOString(),
      operations,
      operationErrors,
      faults,
      connections: Object.fromEntries(Object.entries(env.proxies).map(([t, p]) => [t, p.accepted])) as Record<Target, number>,
      faultLog,
      settleSeconds,
      consistency,
      processes,
      ok: failures.length === 0,
      failures,
      logDir: env.logDir,
    };
  } finally {
    // The namespaces go while kiln still runs: its finalizers (database reclaim, ConfigMap copies) need it, and the claims need the pvc-protection stand-in.
    if (passed || !opts.keepOnFailure) {
      const all = [...layout.namespaces.flatMap((ns) => [ns, layout.targets[ns]!]), layout.gitNamespace];
      await cp.kubectl(['delete', 'namespace', ...all, '--wait=false']);
      const r = await cp.kubectl(['wait', '--for=delete', 'namespace', ...all, '--timeout=120s'], { timeoutMs: 130_000 });
      if (r.code !== 0) log(`namespaces not gone after 120 s: ${r.stderr.trim()}`);
    }
    await pvcProtection.stop();
    await env.stop();
  }
}

/** The report as a table for a terminal. */
export function formatReport(r: SoakReport): string {
  const lines: string[] = [];
  const row = (cells: (string | number)[], widths: number[]) =>
    cells
      .map((c, i) => String(c).padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  lines.push(`kiln soak ${r.runId} from ${r.startedAt}: seed ${r.seed}, ${r.minutes} min, ${r.rate} op/s, namespaces ${r.namespaces.join(', ')} (${r.namespaces.at(-1)} in git mode)`);
  lines.push('', 'Operations');
  const w = [18, 7, 7, 7, 7];
  lines.push(row(['kind', 'create', 'update', 'delete', 'error'], w));
  for (const [k, o] of Object.entries(r.operations)) lines.push(row([k, o.create, o.update, o.delete, o.error], w));
  lines.push(
    '',
    `Faults injected (${r.faultLog.length}); connections through the proxies: ${Object.entries(r.connections)
      .map(([t, n]) => `${t} ${n}`)
      .join(', ')}`,
  );
  for (const [k, n] of Object.entries(r.faults).sort()) lines.push(row([k, n], [24, 4]));
  // The timeline, so a finding can be set beside the faults that came before it (times from the start of the load).
  lines.push(`  ${r.faultLog.map((f) => `+${f.at}s ${f.target} ${f.fault}${f.existing ? ' (open connections too)' : ''} ${f.seconds}s`).join('; ')}`);
  lines.push('', `Consistency after ${r.settleSeconds} s of settling: ${r.consistency.ok ? 'PASS' : 'FAIL'}`);
  lines.push(`  ${r.consistency.resources} resources: ${r.consistency.ready} Ready, ${r.consistency.stalled.length} Stalled; ${r.consistency.children} rendered children compared`);
  if (r.consistency.waiting.length) lines.push(`  ${r.consistency.waiting.length} waiting for a resource the soak deleted`);
  for (const s of r.consistency.stalled) lines.push(`  Stalled ${s.resource}: ${s.reason}: ${s.message}`);
  for (const w of r.consistency.waiting) lines.push(`  Waiting ${w.resource}: ${w.message}`);
  for (const f of r.consistency.findings) lines.push(`  FINDING ${f}`);
  lines.push('', 'Processes');
  const pw = [14, 14, 14, 14, 14, 8];
  lines.push(row(['process', 'RSS start', 'RSS warm', 'RSS end', 'RSS limit', 'errors'], pw));
  for (const [who, p] of Object.entries(r.processes)) lines.push(row([who, `${p.start.rssMiB} MiB`, `${p.warm.rssMiB} MiB`, `${p.end.rssMiB} MiB`, `${p.limit.rssMiB} MiB`, p.errorLines], pw));
  lines.push(row(['process', 'fds start', 'fds warm', 'fds end', 'fds limit'], pw));
  for (const [who, p] of Object.entries(r.processes)) lines.push(row([who, p.start.fds, p.warm.fds, p.end.fds, p.limit.fds], pw));
  lines.push('', r.ok ? 'soak: PASS' : `soak: FAIL (${r.failures.length})`);
  for (const f of r.failures) lines.push(`  ${f}`);
  lines.push(`logs: ${r.logDir}`);
  return lines.join('\n');
}
