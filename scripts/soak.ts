/**
 * npm run soak -- --minutes N [--seed S] [--rate R] [--namespaces K] [--settle SECONDS] [--json FILE]
 *
 * Starts its own control plane (with the stand-in kubelet), PostgreSQL, slapd,
 * fault proxies and kiln's controller and agent, runs test/soak/driver.ts,
 * prints the table and writes the report as JSON (bench/results/soak.json by
 * default). Exit status 0 when the consistency check passed and nothing grew,
 * 1 otherwise. KILN_USE_CLUSTER=1 uses the cluster of `npm run cluster:up`
 * instead of starting one.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { flags } from '../bench/args.js';
import {
  attachControlPlane,
  defaultCacheRoot,
  defaultCrdPaths,
  ensureBinaries,
  startControlPlane,
  type ControlPlane,
  type ControlPlaneClient,
  type ControlPlaneInfo,
} from '../test/harness/controlplane.js';
import { startStandInKubelet, type StandInKubelet } from '../test/harness/stand-in-kubelet.js';
import { formatReport, runSoak } from '../test/soak/driver.js';

const f = flags();
const number = (name: string, dflt: number) => {
  const v = Number(f.get(name, String(dflt)));
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`soak: --${name} must be a positive number`);
    process.exit(2);
  }
  return v;
};
const minutes = number('minutes', 30);
const seed = Math.floor(number('seed', Math.floor(Math.random() * 2 ** 31) + 1));
const rate = number('rate', 1);
const namespaces = Math.floor(number('namespaces', 3));
const settleSeconds = number('settle', 180);
const jsonFile = f.get('json', path.join(import.meta.dirname, '..', 'bench', 'results', 'soak.json'));

let own: ControlPlane | undefined;
let kubelet: StandInKubelet | undefined;
let cp: ControlPlaneClient;
if (process.env.KILN_USE_CLUSTER === '1') {
  const stateFile = path.join(defaultCacheRoot(), 'cluster', 'state.json');
  if (!existsSync(stateFile)) throw new Error(`KILN_USE_CLUSTER=1 but ${stateFile} is missing: run npm run cluster:up`);
  cp = attachControlPlane(JSON.parse(readFileSync(stateFile, 'utf8')) as ControlPlaneInfo);
  await cp.installCrds(defaultCrdPaths());
} else {
  own = await startControlPlane({ binDir: await ensureBinaries(), crdPaths: defaultCrdPaths() });
  cp = own;
  kubelet = startStandInKubelet(own.info());
  console.error(`control plane ${own.info().version} at ${own.server} in ${own.startupMs} ms`);
}

const log = (line: string) => console.error(`${new Date().toISOString()} ${line}`);
let code = 1;
const workDir = mkdtempSync(path.join(os.tmpdir(), 'kiln-soak-'));
try {
  const report = await runSoak(cp, { minutes, seed, rate, namespaces, settleSeconds, warmupSeconds: Math.min(120, minutes * 15), workDir, keepOnFailure: true, log });
  console.log(formatReport(report));
  const machine = { cores: os.cpus().length, cpu: os.cpus()[0]?.model.split(' ').slice(0, 2).join(' '), node: process.version, loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100) };
  writeFileSync(jsonFile, JSON.stringify({ date: new Date().toISOString(), machine, ...report }, null, 2) + '\n');
  console.error(`report written to ${jsonFile}`);
  code = report.ok ? 0 : 1;
} finally {
  kubelet?.stop();
  // The control plane's directory goes with it: keep its logs (kube-controller-manager's above all) for a failed run.
  if (code !== 0 && own) {
    for (const f of readdirSync(own.info().dir).filter((n) => n.endsWith('.log'))) copyFileSync(path.join(own.info().dir, f), path.join(workDir, f));
    console.error(`control-plane logs kept in ${workDir}`);
  }
  await own?.stop();
}
process.exit(code);
