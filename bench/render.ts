/**
 * Offline render benchmark: N mixed kiln resources to YAML through `kiln synth`
 * (whole process, compiled build, started as shipped: bin/kiln.js, so with its
 * compile cache, warmed by one run first as any second run finds it), against
 * `cdk8s synth` of the same resources the way cdk8s apps are usually written:
 * one App holding every chart (only up to --cdk8s-max resources: it takes
 * about 300 s for 10,000). Also peak RSS of kiln at --memory-counts, to show
 * that memory stays flat as the count grows. Prints tables and writes
 * bench/results/render.json.
 *
 *   npm run bench:render [-- --counts 1000,10000,100000 --cdk8s-timeout 300 --cdk8s-max 10000 --memory-counts 1000,10000,30000,100000 --skip-cdk8s]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeMixedInputs as writeInputs } from './inputs.js';
import { flags } from './args.js';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = flags(args).get;
const counts = flag('counts', '1000,10000').split(',').map(Number);
const cdk8sTimeoutS = Number(flag('cdk8s-timeout', '300'));
const cdk8sMax = flags(args).has('skip-cdk8s') ? 0 : Number(flag('cdk8s-max', '10000'));
const memoryCounts = flag('memory-counts', '1000,10000,30000,100000').split(',').map(Number);

interface Run {
  seconds: number | null;
  files: number;
  peakRssMiB: number | null;
  note?: string;
}

/** Runs a command under /usr/bin/time for wall time and peak memory. */
function timed(cmd: string[], timeoutS: number, outDir: string): Run {
  rmSync(outDir, { recursive: true, force: true });
  const started = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', ...cmd], {
    cwd: root,
    encoding: 'utf8',
    timeout: timeoutS * 1000,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * 2 ** 20,
    env: { ...process.env, KILN_USE_BUILD: '1' },
  });
  const seconds = (performance.now() - started) / 1000;
  if (r.error || r.signal) return { seconds: null, files: 0, peakRssMiB: null, note: `stopped after ${timeoutS}s` };
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const rssKiB = Number(r.stderr.trim().split('\n').pop());
  const files = readdirSync(outDir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).length;
  return { seconds, files, peakRssMiB: Number.isFinite(rssKiB) ? Math.round(rssKiB / 1024) : null };
}

const node = process.execPath;
const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, encoding: 'utf8' });
if (build.status !== 0) throw new Error(`npm run build failed: ${build.stdout}${build.stderr}`);

// Output goes to memory (tmpfs) when there is one, for both tools alike, so the
// figures measure rendering rather than this machine's disk (creating 10,000
// files on its root file system costs about 3.5 s of system time by itself);
// one extra row shows kiln writing to disk.
const memoryBase = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const work = mkdtempSync(join(memoryBase, 'kiln-bench-render-'));
const disk = mkdtempSync(join(tmpdir(), 'kiln-bench-render-disk-'));
const rows: { count: number; tool: string; run: Run }[] = [];
const memory: { count: number; run: Run }[] = [];
const kiln = (input: string, out: string) => timed([node, 'bin/kiln.js', 'synth', input, '-o', out, '--quiet'], 600, out);
try {
  const inputs = new Map<number, string>();
  const inputOf = (n: number) => {
    if (!inputs.has(n)) {
      inputs.set(n, join(work, `in-${n}`));
      writeInputs(inputs.get(n)!, n);
    }
    return inputs.get(n)!;
  };
  // Fills the compile cache, as any earlier run of kiln on the machine would have.
  kiln(inputOf(Math.min(...counts)), join(work, 'warm-up'));
  for (const n of counts) {
    const input = inputOf(n);
    const kilnRun = kiln(input, join(work, `kiln-${n}`));
    rows.push({ count: n, tool: 'kiln synth', run: kilnRun });
    if (n === Math.max(...counts)) rows.push({ count: n, tool: 'kiln synth (output on disk)', run: kiln(input, join(disk, `kiln-${n}`)) });
    if (n <= cdk8sMax) {
      const cdkOut = join(work, `cdk8s-${n}`);
      const cdkRun = timed([node, 'node_modules/.bin/cdk8s', 'synth', '--no-check-upgrade', '--app', `${node} build/bench/cdk8s-one-app.js ${input}`, '--output', cdkOut], cdk8sTimeoutS, cdkOut);
      rows.push({ count: n, tool: 'cdk8s synth (one App)', run: cdkRun });
    }
    rmSync(join(work, `kiln-${n}`), { recursive: true, force: true });
    rmSync(join(work, `cdk8s-${n}`), { recursive: true, force: true });
    console.error(`done ${n}`);
  }
  for (const n of memoryCounts) {
    const earlier = rows.find((r) => r.count === n && r.tool === 'kiln synth');
    memory.push({ count: n, run: earlier?.run ?? kiln(inputOf(n), join(work, `memory-${n}`)) });
    rmSync(join(work, `memory-${n}`), { recursive: true, force: true });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
  rmSync(disk, { recursive: true, force: true });
}

const kilnAt = (n: number) => rows.find((r) => r.count === n && r.tool === 'kiln synth')!.run;
const cdkAt = (n: number) => rows.find((r) => r.count === n && r.tool.startsWith('cdk8s'))?.run;
const table = rows.map((r) => ({
  resources: r.count,
  tool: r.tool,
  seconds: r.run.seconds === null ? null : Number(r.run.seconds.toFixed(2)),
  resourcesPerSecond: r.run.seconds === null ? null : Math.round(r.count / r.run.seconds),
  files: r.run.files,
  peakRssMiB: r.run.peakRssMiB,
  speedupVsCdk8s: r.tool.startsWith('kiln') && cdkAt(r.count)?.seconds ? Number((cdkAt(r.count)!.seconds! / r.run.seconds!).toFixed(1)) : null,
  note: r.run.note ?? (r.tool.startsWith('kiln') && !cdkAt(r.count) ? `cdk8s synth not run above ${cdk8sMax} resources` : ''),
}));
const [small, large] = [Math.min(...counts), Math.max(...counts)];
const linearity = kilnAt(small).seconds && kilnAt(large).seconds ? Number((kilnAt(large).seconds! / large / (kilnAt(small).seconds! / small)).toFixed(2)) : null;
/** Peak RSS by count: flat means the inputs are streamed, not held. */
const memoryVsCount = memory.map(({ count, run }) => ({ resources: count, peakRssMiB: run.peakRssMiB, seconds: run.seconds === null ? null : Number(run.seconds.toFixed(2)) }));
const rss = memoryVsCount.map((m) => m.peakRssMiB).filter((m): m is number => m !== null);
const result = {
  benchmark: 'render',
  date: new Date().toISOString(),
  machine: { cores: availableParallelism(), cpu: cpus()[0]?.model, node: process.version, outputOn: memoryBase },
  targets: { tenThousandSeconds: 3, speedupVsCdk8s: 8, thousandSeconds: 0.3, hundredThousandSeconds: 15, hundredThousandPeakRssMiB: 400 },
  rows: table,
  perResourceCostRatioLargeToSmall: linearity,
  memoryVsCount,
  /** Peak RSS at the largest memory count over that at the smallest one above 5,000 (1.0 = flat). */
  memoryGrowthLargeToSmall:
    memoryVsCount.length > 1 && rss.length === memoryVsCount.length ? Number((rss.at(-1)! / (memoryVsCount.find((m) => m.resources >= 5000)?.peakRssMiB ?? rss[0]!)).toFixed(2)) : null,
};
console.table(table);
console.table(memoryVsCount);
console.log(`per-resource cost at ${large} / at ${small}: ${linearity} (1.0 = linear)`);
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/render.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log('wrote bench/results/render.json');
