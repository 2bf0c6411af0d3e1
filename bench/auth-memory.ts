/**
 * What kubeconfig authentication costs in memory: kiln's own modules
 * (kube/kubeconfig.ts with exec-credential.ts, oidc.ts, proxy.ts, bundled
 * as the production build loads them) beside @kubernetes/client-node's
 * exec and OIDC modules (deep imports). Each import runs in a fresh Node
 * process that first loads what kiln's controller already holds (the ESM
 * loader, node:https/http/net/tls/crypto/child_process/readline, js-yaml);
 * the figure is the growth of resident memory and heap after GC, median of
 * --runs (5) processes. Prints a table and writes bench/results/auth-memory.json.
 *
 *   npx tsx bench/auth-memory.ts
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
// Inside the checkout, so that `js-yaml` resolves from its node_modules for the probe and the bundle alike.
const work = path.join(root, 'node_modules/.cache/kiln-auth-memory');
mkdirSync(work, { recursive: true });
const probe = path.join(work, 'probe.mjs');
writeFileSync(
  probe,
  `
for (const m of ['node:child_process', 'node:https', 'node:http', 'node:net', 'node:tls', 'node:crypto', 'node:readline', 'js-yaml']) await import(m);
const snap = () => { globalThis.gc(); globalThis.gc(); const m = process.memoryUsage(); return { rss: m.rss, heap: m.heapUsed }; };
await new Promise((r) => setTimeout(r, 50));
const a = snap();
if (process.argv[2] !== 'none') await import(process.argv[2]);
await new Promise((r) => setTimeout(r, 50));
const b = snap();
console.log(JSON.stringify({ rss: (b.rss - a.rss) / 1048576, heap: (b.heap - a.heap) / 1048576 }));
`,
);
const bundle = path.join(work, 'kiln-auth.mjs');
execFileSync(path.join(root, 'node_modules/.bin/esbuild'), [
  path.join(root, 'kube/kubeconfig.ts'),
  '--bundle',
  '--platform=node',
  '--format=esm',
  '--external:js-yaml',
  `--outfile=${bundle}`,
  '--log-level=warning',
]);
const cn = path.join(root, 'node_modules/@kubernetes/client-node/dist');
const targets: [string, string][] = [
  ['nothing (baseline)', 'none'],
  ['kiln: kubeconfig + exec + oidc + proxy', bundle],
  ['client-node dist/exec_auth.js', path.join(cn, 'exec_auth.js')],
  ['client-node dist/oidc_auth.js', path.join(cn, 'oidc_auth.js')],
  ['client-node (whole)', path.join(cn, 'index.js')],
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows = targets.map(([name, target]) => {
  const samples = Array.from({ length: runs }, () => JSON.parse(execFileSync(process.execPath, ['--expose-gc', probe, target], { cwd: root, encoding: 'utf8' })) as { rss: number; heap: number });
  return { name, rssMiB: +median(samples.map((s) => s.rss)).toFixed(2), heapMiB: +median(samples.map((s) => s.heap)).toFixed(2) };
});
console.log(`Node ${process.version}, median of ${runs}`);
console.log('| import | RSS MiB | heap MiB |\n|---|---|---|');
for (const r of rows) console.log(`| ${r.name} | ${r.rssMiB} | ${r.heapMiB} |`);
mkdirSync(path.join(root, 'bench/results'), { recursive: true });
writeFileSync(path.join(root, 'bench/results/auth-memory.json'), JSON.stringify({ node: process.version, runs, rows }, null, 2) + '\n');
