/**
 * A real Flux for the test control plane: source-controller and
 * kustomize-controller as processes (scripts/build-flux.sh builds them from the
 * Go module proxy), their CRDs from the same modules, the artifact server on
 * loopback. Flux needs no container runtime: source-controller clones the
 * repository into its storage path and serves the tarball over HTTP to
 * kustomize-controller, which applies it server-side through the API server,
 * exactly as in a cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlPlaneClient } from './connect.js';
import { freePorts } from './ports.js';
import { runBuildScript } from './run.js';
import { waitFor } from './wait.js';

const ROOT = new URL('../../', import.meta.url).pathname;
export const FLUX_NAMESPACE = 'flux-system';

/** The version directory (bin/, crds/), building what is missing (cached: about a second when built). */
export async function buildFlux(): Promise<string> {
  return runBuildScript(join(ROOT, 'scripts/build-flux.sh'));
}

export interface Flux {
  /** source-controller's artifact server, http://127.0.0.1:<port>. */
  storageUrl: string;
  /** Each controller's log so far. */
  log(controller: 'source-controller' | 'kustomize-controller'): string;
  stop(): Promise<void>;
}

/** Applies Flux's CRDs (server-side, idempotent) and waits until they are served. */
export async function installFluxCrds(cp: ControlPlaneClient, fluxDir: string): Promise<void> {
  const crds = join(fluxDir, 'crds');
  const files = readdirSync(crds).filter((f) => f.endsWith('.yaml'));
  if (files.length === 0) throw new Error(`no CRDs in ${crds}: run scripts/build-flux.sh`);
  await cp.kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', crds]);
  await cp.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/gitrepositories.source.toolkit.fluxcd.io', 'crd/kustomizations.kustomize.toolkit.fluxcd.io']);
}

/**
 * Starts both controllers against the control plane with its admin kubeconfig
 * (a Flux install binds them to cluster-admin), leader election off, watching
 * every namespace, and waits for their readiness endpoints.
 */
export async function startFlux(cp: ControlPlaneClient, opts: { fluxDir: string; dir: string }): Promise<Flux> {
  const bin = join(opts.fluxDir, 'bin');
  for (const name of ['source-controller', 'kustomize-controller']) {
    if (!existsSync(join(bin, name))) throw new Error(`${join(bin, name)} is missing: run scripts/build-flux.sh`);
  }
  await installFluxCrds(cp, opts.fluxDir);
  const ns = await cp.kubectl(['create', 'namespace', FLUX_NAMESPACE]);
  if (ns.code !== 0 && !/AlreadyExists/.test(ns.stderr)) throw new Error(`create namespace ${FLUX_NAMESPACE}: ${ns.stderr}`);

  const [storage, sourceMetrics, sourceHealth, kustomizeMetrics, kustomizeHealth] = await freePorts(5);
  const storageUrl = `http://127.0.0.1:${storage}`;
  mkdirSync(join(opts.dir, 'storage'), { recursive: true });
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: opts.dir, KUBECONFIG: cp.kubeconfig, RUNTIME_NAMESPACE: FLUX_NAMESPACE };
  const common = ['--log-level=debug', '--log-encoding=json', '--enable-leader-election=false', '--watch-all-namespaces=true'];
  const children: { name: string; child: ChildProcess; logFile: string; health: number }[] = [];
  const launch = (name: string, args: string[], health: number) => {
    const logFile = join(opts.dir, `${name}.log`);
    const out = createWriteStream(logFile);
    const child = spawn(join(bin, name), [...common, ...args], { env, cwd: opts.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(out);
    child.stderr.pipe(out);
    children.push({ name, child, logFile, health });
  };
  launch(
    'source-controller',
    [
      `--storage-path=${join(opts.dir, 'storage')}`,
      `--storage-addr=127.0.0.1:${storage}`,
      `--storage-adv-addr=127.0.0.1:${storage}`,
      `--metrics-addr=127.0.0.1:${sourceMetrics}`,
      `--health-addr=127.0.0.1:${sourceHealth}`,
    ],
    sourceHealth!,
  );
  launch('kustomize-controller', [`--metrics-addr=127.0.0.1:${kustomizeMetrics}`, `--health-addr=127.0.0.1:${kustomizeHealth}`], kustomizeHealth!);

  const readLog = (name: string) => {
    const c = children.find((x) => x.name === name);
    return c && existsSync(c.logFile) ? readFileSync(c.logFile, 'utf8') : '';
  };
  const stop = async () => {
    await Promise.all(
      children.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  };
  try {
    for (const { name, child, health } of children) {
      await waitFor(
        `${name} ready`,
        async () => {
          if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}:\n${readLog(name).slice(-3000)}`);
          const res = await fetch(`http://127.0.0.1:${health}/readyz`).catch(() => undefined);
          return res?.ok === true;
        },
        60_000,
        () => readLog(name).slice(-3000),
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { storageUrl, log: readLog, stop };
}
