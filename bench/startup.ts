/**
 * Start-up benchmark: what running kiln costs before it does any work, for one
 * or more source trees in one run (e.g. a checkout of an older commit beside
 * this one), each run the way a user runs it, `node <tree>/bin/kiln.js ...`:
 *
 *  - `kiln agent` and `kiln controller` (apply mode), each against the shared
 *    dev cluster (npm run cluster:up) in a namespace of its own that this
 *    benchmark creates and deletes: time from spawn until /readyz answers 200,
 *    RSS (VmRSS) and peak RSS (VmHWM) after --idle seconds with nothing to do,
 *    and the CPU time used by then;
 *  - `kiln synth <file> -o <dir>` and `kiln --version`: wall time of the whole
 *    process.
 *
 * Each case runs once unmeasured first: that run warms the disk cache and
 * tsx's compile cache, and counts the modules the process loads (a
 * module.registerHooks load hook, which would slow the measured runs). Then
 * --runs measured runs; the table shows median (min). bin/kiln.js decides
 * whether the TypeScript sources run through tsx or the compiled build/ runs
 * (KILN_USE_BUILD=1 forces build/); the "runs" line says which it was, from
 * the loaded modules. Prints a table and writes bench/results/startup.json.
 *
 *   npm run bench:startup [-- --tree /tmp/kiln-before --tree . --runs 3 --idle 10 --synth-input examples/directory/directoryservice.yaml --node-args '--optimize-for-size']
 *
 * As the image runs it (compiled, the Deployment's node flags and malloc settings):
 *
 *   KILN_USE_BUILD=1 MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=65536 npm run bench:startup -- --node-args '--max-semi-space-size=2 --optimize-for-size'
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { cpus, homedir, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { flags } from './args.js';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = flags(args).get;
const trees = args.flatMap((a, i) => (a === '--tree' && args[i + 1] ? [resolve(args[i + 1]!)] : []));
if (!trees.length) trees.push(resolve(root));
const runs = Number(flag('runs', '3'));
const idleSeconds = Number(flag('idle', '10'));
/** The same input file for every tree, from this checkout: examples may move between trees. */
const synthInput = resolve(root, flag('synth-input', 'examples/directory/directoryservice.yaml'));
/** node flags for every kiln process, e.g. those the install's Deployment uses (install/node-runtime.ts); its MALLOC_* variables pass through from this environment. */
const nodeArgs = flag('node-args', '').split(' ').filter(Boolean);
if (!(runs > 0) || !(idleSeconds >= 0)) throw new Error('--runs must be positive, --idle 0 or more');

const node = process.execPath;
const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const log = (msg: string) => process.stderr.write(`[bench:startup ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number, d = 0) => Math.round(n * 10 ** d) / 10 ** d;

const work = mkdtempSync(join(tmpdir(), 'kiln-bench-startup-'));
const hook = join(work, 'count-modules.mjs');
writeFileSync(
  hook,
  [
    "import { registerHooks } from 'node:module';",
    "import { writeFileSync } from 'node:fs';",
    'const seen = new Set();',
    'registerHooks({ load(url, context, next) { seen.add(url); return next(url, context); } });',
    "process.on('exit', () => writeFileSync(process.env.KILN_BENCH_MODULES_FILE, JSON.stringify([...seen])));",
    '',
  ].join('\n'),
);

// ---------------------------------------------------------------------------
// the shared dev cluster

const statePath = join(homedir(), '.cache/kiln/cluster/state.json');
if (!existsSync(statePath)) throw new Error(`no dev cluster (${statePath}): run npm run cluster:up`);
const cluster = JSON.parse(readFileSync(statePath, 'utf8')) as { kubeconfig: string; binDir: string; version: string };
function kubectl(...kargs: string[]): void {
  const r = spawnSync(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfig, ...kargs], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl ${kargs.join(' ')}: ${r.stderr}`);
}
const namespace = `bench-startup-${process.pid}`;

// ---------------------------------------------------------------------------
// processes

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => res(port));
    });
  });
}

function readyz(port: number): Promise<boolean> {
  return new Promise((res) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/readyz', timeout: 1000 }, (r) => {
      r.resume();
      res(r.statusCode === 200);
    });
    req.on('error', () => res(false));
    req.on('timeout', () => req.destroy());
  });
}

function procStatus(pid: number): { rssMiB: number; hwmMiB: number; cpuSeconds: number } {
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rssMiB: round(kib('VmRSS') / 1024, 1), hwmMiB: round(kib('VmHWM') / 1024, 1), cpuSeconds: round((Number(f[11]) + Number(f[12])) / clockTicks, 2) };
}

interface Sample {
  readyMs?: number;
  rssMiB?: number;
  hwmMiB?: number;
  cpuSeconds?: number;
  wallMs?: number;
  modules?: string[];
}

/** One process, node [--import hook] <tree>/bin/kiln.js <args>. */
function start(tree: string, kargs: string[], countModules: boolean) {
  const modulesFile = join(work, `modules-${Math.random().toString(36).slice(2)}.json`);
  const t0 = performance.now();
  const child = spawn(node, [...nodeArgs, ...(countModules ? ['--import', hook] : []), join(tree, 'bin/kiln.js'), ...kargs], {
    cwd: tree,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KUBECONFIG: '', KILN_BENCH_MODULES_FILE: modulesFile },
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<number | null>((res) => child.once('close', (code) => res(code)));
  const modules = () => (countModules && existsSync(modulesFile) ? (JSON.parse(readFileSync(modulesFile, 'utf8')) as string[]) : undefined);
  return { child, t0, exited, output: () => output, modules };
}

/** `kiln agent` or `kiln controller`: spawn -> /readyz 200, then RSS after idling. */
async function daemon(tree: string, command: 'agent' | 'controller', countModules: boolean): Promise<Sample> {
  const port = await freePort();
  const p = start(
    tree,
    [command, '--kubeconfig', cluster.kubeconfig, '--namespace', namespace, '--health-probe-bind-address', `127.0.0.1:${port}`, '--metrics-bind-address', `127.0.0.1:${port}`, '--log-level', 'warn'],
    countModules,
  );
  let exitCode: number | null | undefined;
  void p.exited.then((c) => (exitCode = c));
  let sample: Sample;
  try {
    let readyMs: number | undefined;
    while (readyMs === undefined) {
      if (exitCode !== undefined) throw new Error(`kiln ${command} exited (${exitCode}) before ready:\n${p.output().slice(-2000)}`);
      if (performance.now() - p.t0 > 60_000) throw new Error(`kiln ${command} not ready after 60 s:\n${p.output().slice(-2000)}`);
      if (await readyz(port)) readyMs = performance.now() - p.t0;
      else await sleep(10);
    }
    await sleep(idleSeconds * 1000);
    sample = { readyMs: round(readyMs), ...procStatus(p.child.pid!) };
  } finally {
    p.child.kill('SIGTERM');
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
    await p.exited;
    clearTimeout(timer);
  }
  // The hook writes the module list on exit.
  return { ...sample, modules: p.modules() };
}

/** A command that exits by itself: its wall time. */
async function oneShot(tree: string, kargs: string[], countModules: boolean): Promise<Sample> {
  const p = start(tree, kargs, countModules);
  const code = await p.exited;
  const wallMs = performance.now() - p.t0;
  if (code !== 0) throw new Error(`kiln ${kargs.join(' ')} exited ${code}:\n${p.output().slice(-2000)}`);
  return { wallMs: round(wallMs), modules: p.modules() };
}

// ---------------------------------------------------------------------------
// cases

interface Metric {
  median: number;
  min: number;
  n: number;
}
const metric = (xs: number[]): Metric => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { median: round(s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2, 1), min: s[0]!, n: s.length };
};

async function measure(what: string, once: (count: boolean) => Promise<Sample>) {
  log(`${what}: 1 warm-up run counting modules, ${runs} measured`);
  const counted = await once(true);
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) samples.push(await once(false));
  const pick = (k: keyof Omit<Sample, 'modules'>) => (samples[0]![k] === undefined ? undefined : metric(samples.map((s) => s[k] as number)));
  return { readyMs: pick('readyMs'), rssMiB: pick('rssMiB'), hwmMiB: pick('hwmMiB'), cpuSeconds: pick('cpuSeconds'), wallMs: pick('wallMs'), modules: counted.modules };
}

function describeModules(tree: string, urls: string[] | undefined) {
  if (!urls) return undefined;
  const own = urls.filter((u) => u.startsWith('file://') && !u.includes('/node_modules/'));
  const packages = new Set(urls.flatMap((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? []));
  // The heavy ones: the renderer's (cdk8s, constructs), validation's (ajv, CEL), each mode's own clients.
  const heavy = /^(cdk8s|cdk8s-plus-\d+|constructs|ajv|@bufbuild\/cel|@kubernetes\/client-node|simple-git|pg|ldapts)$/;
  return {
    total: urls.length,
    kiln: own.length,
    nodeModules: urls.filter((u) => u.includes('/node_modules/')).length,
    builtin: urls.filter((u) => u.startsWith('node:')).length,
    runsWith: own.some((u) => u.startsWith(`file://${tree}/`) && u.endsWith('.ts')) ? 'tsx (TypeScript sources)' : 'compiled build/',
    heavyPackages: [...packages].filter((p) => heavy.test(p)).sort(),
    packages: [...packages].sort(),
  };
}

function treeInfo(tree: string) {
  const git = (...g: string[]) => spawnSync('git', ['-C', tree, ...g], { encoding: 'utf8' }).stdout.trim();
  return {
    tree,
    commit: git('rev-parse', '--short', 'HEAD'),
    subject: git('log', '-1', '--format=%s').slice(0, 80),
    uncommittedFiles: git('status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/results').split('\n').filter(Boolean).length,
  };
}

const results: { info: ReturnType<typeof treeInfo>; cases: Record<string, Awaited<ReturnType<typeof measure>> & { moduleSummary?: ReturnType<typeof describeModules> }> }[] = [];
const loadAtStart = loadavg().map((l) => round(l, 2));
try {
  kubectl('create', 'namespace', namespace);
  for (const tree of trees) {
    const info = treeInfo(tree);
    log(`tree ${tree} (${info.commit}${info.uncommittedFiles ? `, ${info.uncommittedFiles} files changed` : ''})`);
    const out = join(work, 'synth-out');
    const cases = {
      agent: await measure('kiln agent', (c) => daemon(tree, 'agent', c)),
      controller: await measure('kiln controller', (c) => daemon(tree, 'controller', c)),
      synth: await measure('kiln synth', (c) => {
        rmSync(out, { recursive: true, force: true });
        return oneShot(tree, ['synth', synthInput, '-o', out], c);
      }),
      version: await measure('kiln --version', (c) => oneShot(tree, ['--version'], c)),
    };
    results.push({ info, cases: Object.fromEntries(Object.entries(cases).map(([k, v]) => [k, { ...v, moduleSummary: describeModules(tree, v.modules), modules: undefined }])) });
  }
} finally {
  try {
    kubectl('delete', 'namespace', namespace, '--wait=false');
  } catch (err) {
    log(`namespace ${namespace} not deleted: ${(err as Error).message}`);
  }
  rmSync(work, { recursive: true, force: true });
}

const result = {
  benchmark: 'startup',
  date: new Date().toISOString(),
  machine: {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? '',
    node: process.version,
    kubernetes: cluster.version,
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: loadavg().map((l) => round(l, 2)),
  },
  settings: {
    runs,
    idleSeconds,
    synthInput: synthInput.replace(root, ''),
    kilnUseBuild: process.env['KILN_USE_BUILD'] ?? null,
    nodeArgs,
    mallocEnv: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_'))),
    note: 'median and min of the measured runs; readyMs: spawn of node bin/kiln.js until GET /readyz answers 200 (polled every 10 ms); rssMiB/hwmMiB: VmRSS/VmHWM after idleSeconds without work (a namespace with no kiln resources); cpuSeconds: user+system by then; wallMs: spawn to exit; modules: counted in an extra unmeasured run',
  },
  trees: results,
};
writeFileSync(new URL('results/startup.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);

const cell = (m: Metric | undefined, unit = '') => (m ? `${m.median}${unit} (${m.min})` : '-');
const rows: [string, (r: (typeof results)[number]) => string][] = [
  ['runs with', (r) => r.cases.agent!.moduleSummary?.runsWith ?? '-'],
  ['agent: spawn -> ready, ms', (r) => cell(r.cases.agent!.readyMs)],
  [`agent: RSS after ${idleSeconds} s idle, MiB`, (r) => cell(r.cases.agent!.rssMiB)],
  ['agent: peak RSS, MiB', (r) => cell(r.cases.agent!.hwmMiB)],
  [`agent: CPU s by then`, (r) => cell(r.cases.agent!.cpuSeconds)],
  [
    'agent: modules loaded (kiln / packages)',
    (r) => {
      const m = r.cases.agent!.moduleSummary;
      return m ? `${m.total} (${m.kiln} / ${m.nodeModules})` : '-';
    },
  ],
  ['controller: spawn -> ready, ms', (r) => cell(r.cases.controller!.readyMs)],
  [`controller: RSS after ${idleSeconds} s idle, MiB`, (r) => cell(r.cases.controller!.rssMiB)],
  ['controller: peak RSS, MiB', (r) => cell(r.cases.controller!.hwmMiB)],
  ['controller: CPU s by then', (r) => cell(r.cases.controller!.cpuSeconds)],
  [
    'controller: modules loaded (kiln / packages)',
    (r) => {
      const m = r.cases.controller!.moduleSummary;
      return m ? `${m.total} (${m.kiln} / ${m.nodeModules})` : '-';
    },
  ],
  ['synth one file: wall ms', (r) => cell(r.cases.synth!.wallMs)],
  ['synth: modules loaded', (r) => `${r.cases.synth!.moduleSummary?.total ?? '-'}`],
  ['--version: wall ms', (r) => cell(r.cases.version!.wallMs)],
  ['--version: modules loaded', (r) => `${r.cases.version!.moduleSummary?.total ?? '-'}`],
  ...(['agent', 'controller', 'synth', 'version'] as const).map((c): (typeof rows)[number] => [
    `${c === 'version' ? '--version' : c}: heavy packages loaded`,
    (r) => r.cases[c]!.moduleSummary?.heavyPackages.join(', ') || '-',
  ]),
];
console.log(
  `\nStart-up, ${result.date.slice(0, 10)}, ${result.machine.cores} cores, Node ${result.machine.node}, load ${loadAtStart.join(' ')} -> ${result.machine.loadAverageAtEnd.join(' ')}; median (min) of ${runs} runs; synth input ${result.settings.synthInput}${nodeArgs.length ? `; node ${nodeArgs.join(' ')}` : ''}\n`,
);
console.log(`| metric | ${results.map((r) => `${r.info.tree} (${r.info.commit}${r.info.uncommittedFiles ? '+' : ''})`).join(' | ')} |`);
console.log(`|---|${results.map(() => '---:').join('|')}|`);
for (const [name, f] of rows) console.log(`| ${name} | ${results.map(f).join(' | ')} |`);
