/** Writes the benchmark table in README.md from bench/results/*.json (npm run bench:table). */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';
const root = new URL('..', import.meta.url);
const file = new URL('bench/results/render.json', root);
if (!existsSync(file)) throw new Error('run npm run bench:render first');
const r = JSON.parse(readFileSync(file, 'utf8')) as {
  date: string; machine: { cores: number; cpu: string; node: string; outputOn: string };
  rows: { resources: number; tool: string; seconds: number | null; resourcesPerSecond: number | null; peakRssMiB: number | null; speedupVsCdk8s: number | null; note: string }[];
  perResourceCostRatioLargeToSmall: number | null;
};
const lines = [
  START,
  `Offline render (\`npm run bench:render\`), ${r.date.slice(0, 10)}, ${r.machine.cores} cores (${r.machine.cpu}), Node ${r.machine.node}; whole processes, output on ${r.machine.outputOn === '/dev/shm' ? 'tmpfs' : r.machine.outputOn} unless the row says disk. Mixed resources of every kind; cdk8s synth runs the same charts in one App, as cdk8s apps usually do. Targets: 10,000 in at most 3 s, at least 8x cdk8s synth.`,
  '',
  '| resources | tool | seconds | resources/s | peak RSS (MiB) | vs cdk8s synth | note |',
  '|---:|---|---:|---:|---:|---:|---|',
  ...r.rows.map((x) => `| ${x.resources} | ${x.tool} | ${x.seconds ?? '-'} | ${x.resourcesPerSecond ?? '-'} | ${x.peakRssMiB ?? '-'} | ${x.speedupVsCdk8s ? `${x.speedupVsCdk8s}x` : '-'} | ${x.note} |`),
  '',
  `Per-resource cost at the largest count divided by that at the smallest: ${r.perResourceCostRatioLargeToSmall} (1.0 is linear; below 1 the fixed start-up cost is being spread).`,
  END,
];
const readmeUrl = new URL('README.md', root);
const readme = readFileSync(readmeUrl, 'utf8');
const a = readme.indexOf(START);
const b = readme.indexOf(END);
writeFileSync(readmeUrl, readme.slice(0, a) + lines.join('\n') + readme.slice(b + END.length));
console.log('README.md: benchmark table updated');
