/**
 * A long-running local control plane for development.
 *
 *   tsx scripts/cluster.ts up       build binaries if needed, start etcd +
 *                                   kube-apiserver + kube-controller-manager in a
 *                                   detached process, print `export KUBECONFIG=...`
 *   tsx scripts/cluster.ts down     stop it
 *   tsx scripts/cluster.ts status   print the state and whether it answers
 *   tsx scripts/cluster.ts env      print `export KUBECONFIG=...` again
 *
 * State lives in ${KILN_CACHE:-~/.cache/kiln}/cluster/: state.json (pid,
 * server, kubeconfig, admin token, ...), cluster.log, and data/ (the control
 * plane's working dir: certs, etcd data, server logs).
 */
import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { attachControlPlane, defaultCacheRoot, defaultCrdPaths, ensureBinaries, startControlPlane, type ControlPlaneInfo } from '../test/harness/controlplane.js';
import { startStandInKubelet } from '../test/harness/stand-in-kubelet.js';

interface State extends ControlPlaneInfo {
  pid: number;
  serverPids: Record<string, number>;
  startedAt: string;
  startupMs: number;
  log: string;
}

const clusterDir = path.join(defaultCacheRoot(), 'cluster');
const stateFile = path.join(clusterDir, 'state.json');
const logFile = path.join(clusterDir, 'cluster.log');
const dataDir = path.join(clusterDir, 'data');
const self = fileURLToPath(import.meta.url);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readState(): State | undefined {
  if (!existsSync(stateFile)) return undefined;
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

function exportLine(s: State): string {
  return `export KUBECONFIG=${s.kubeconfig}`;
}

async function logTail(lines = 40): Promise<string> {
  try {
    return (await readFile(logFile, 'utf8'))
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

async function up(): Promise<number> {
  const existing = readState();
  if (existing && alive(existing.pid)) {
    console.error(`cluster already running (pid ${existing.pid}, ${existing.server})`);
    console.log(exportLine(existing));
    return 0;
  }
  if (existing) await rm(stateFile, { force: true });

  // Build in the foreground so progress is visible (a cold build takes a while).
  const binDir = await ensureBinaries();
  await mkdir(clusterDir, { recursive: true });
  const fd = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...process.execArgv, self, 'serve', binDir], {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: process.env,
  });
  closeSync(fd);
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  child.unref();

  const deadline = Date.now() + 180_000;
  for (;;) {
    const s = readState();
    if (s && s.pid === child.pid) {
      console.error(`cluster up in ${s.startupMs} ms: ${s.server} (pid ${s.pid}, log ${s.log})`);
      console.log(exportLine(s));
      return 0;
    }
    if (exited !== undefined) {
      console.error(`cluster process exited (${exited}) before becoming ready; ${logFile}:\n${await logTail()}`);
      return 1;
    }
    if (Date.now() > deadline) {
      console.error(`cluster not ready after 180 s; ${logFile}:\n${await logTail()}`);
      if (child.pid) process.kill(child.pid, 'SIGTERM');
      return 1;
    }
    await sleep(200);
  }
}

async function serve(binDir: string): Promise<void> {
  await rm(dataDir, { recursive: true, force: true });
  const cp = await startControlPlane({ binDir, dir: dataDir, crdPaths: defaultCrdPaths(), keepDir: true });
  // Pods "run" (their status says so) so that kiln's resources can become Ready here.
  const kubelet = startStandInKubelet(cp.info(), (msg) => console.log(`${new Date().toISOString()} ${msg}`));
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${new Date().toISOString()} stopping (${why})`);
    kubelet.stop();
    await cp.stop();
    const s = readState();
    if (s?.pid === process.pid) await rm(stateFile, { force: true });
    console.log(`${new Date().toISOString()} stopped`);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => void shutdown('SIGHUP'));

  const state: State = {
    ...cp.info(),
    pid: process.pid,
    serverPids: cp.pids,
    startedAt: new Date().toISOString(),
    startupMs: cp.startupMs,
    log: logFile,
  };
  await writeFile(`${stateFile}.tmp`, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await rename(`${stateFile}.tmp`, stateFile);
  console.log(`${new Date().toISOString()} ready in ${cp.startupMs} ms at ${cp.server}; pids ${JSON.stringify(cp.pids)}`);

  // Stay alive; if a server dies, go down as a whole so `up` can start afresh.
  setInterval(() => {
    for (const [name, pid] of Object.entries(cp.pids)) {
      if (!alive(pid)) void shutdown(`${name} (pid ${pid}) died`);
    }
  }, 2000);
}

async function down(): Promise<number> {
  const s = readState();
  if (!s) {
    console.error('no cluster running');
    return 0;
  }
  if (alive(s.pid)) {
    process.kill(s.pid, 'SIGTERM');
    const deadline = Date.now() + 30_000;
    while (alive(s.pid) && Date.now() < deadline) await sleep(200);
    if (alive(s.pid)) {
      // Did not stop in time: kill it and the servers' process groups.
      for (const pid of [s.pid, ...Object.values(s.serverPids ?? {})]) {
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
    }
  }
  await rm(stateFile, { force: true });
  await rm(dataDir, { recursive: true, force: true });
  console.error(`cluster stopped (was pid ${s.pid})`);
  return 0;
}

async function status(): Promise<number> {
  const s = readState();
  if (!s || !alive(s.pid)) {
    console.log('not running');
    return 1;
  }
  const r = await attachControlPlane(s).kubectl(['get', '--raw', '/readyz']);
  console.log(`running: pid ${s.pid}, ${s.server}, since ${s.startedAt}, readyz: ${r.code === 0 ? r.stdout.trim() : r.stderr.trim()}`);
  console.log(exportLine(s));
  return r.code === 0 ? 0 : 1;
}

async function main(): Promise<void> {
  const [cmd, arg] = process.argv.slice(2);
  switch (cmd) {
    case 'up':
      process.exitCode = await up();
      return;
    case 'serve':
      await serve(arg ?? (await ensureBinaries()));
      return;
    case 'down':
      process.exitCode = await down();
      return;
    case 'status':
      process.exitCode = await status();
      return;
    case 'env': {
      const s = readState();
      if (!s) {
        console.error('no cluster running');
        process.exitCode = 1;
      } else console.log(exportLine(s));
      return;
    }
    default:
      console.error('usage: tsx scripts/cluster.ts up|down|status|env');
      process.exitCode = 2;
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
