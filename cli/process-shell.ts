/**
 * What `kiln controller` and `kiln agent` share around their own work: the
 * flags for reaching the cluster, loading its configuration, the probe and
 * metrics servers, SIGTERM/SIGINT, and turning a failed start-up into one
 * line and exit 2. Each command adds only its own flags and its process.
 */
import type { Command } from 'commander';
import type { KubeClient } from '../kube/client.js';
import type { ClusterConfig } from '../kube/kubeconfig.js';
import type { Log } from '../lib/log.js';
import { nonNegativeNumber, startupFailure, wholeNumber, type RuntimeSettings } from './runtime-options.js';

export const collect = (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)];

/** The flags commander parses from addKubeAccessOptions. */
export interface KubeAccessFlags {
  kubeconfig?: string;
  context?: string;
  namespace: string[];
  concurrency: number;
  qps: number;
  burst: number;
}

/** --kubeconfig, --context, --namespace, --concurrency, --qps, --burst: the same on every long-running command. */
export function addKubeAccessOptions(cmd: Command, o: { concurrency: { default: number; help: string }; qps: { default: number; help: string }; burst: string }): Command {
  return cmd
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)')
    .option('--context <name>', 'kubeconfig context')
    .option('-n, --namespace <ns>', 'watch only this namespace (repeatable, or comma-separated); default all', collect, [])
    .option('--concurrency <n>', o.concurrency.help, wholeNumber(1), o.concurrency.default)
    .option('--qps <n>', o.qps.help, nonNegativeNumber, o.qps.default)
    .option('--burst <n>', o.burst, wholeNumber(1), 30);
}

/** One line on stderr, exit 2: a usage or configuration error. */
export function failer(command: string): (message: string) => never {
  return (message) => {
    process.stderr.write(`kiln ${command}: ${message}\n`);
    process.exit(2);
  };
}

/** The cluster's configuration from the flags, or exit 2 when there is none. */
export async function clusterConfig(flags: KubeAccessFlags, fail: (message: string) => never): Promise<ClusterConfig> {
  const { loadKubeConfig, NoClusterConfigError } = await import('../kube/kubeconfig.js');
  try {
    return loadKubeConfig({ kubeconfig: flags.kubeconfig, context: flags.context });
  } catch (err) {
    if (err instanceof NoClusterConfigError) fail(err.message);
    throw err;
  }
}

/** A controller process, as the shell runs it. */
export interface Runnable {
  readonly client: KubeClient;
  start(): Promise<void>;
  stop(opts?: { release?: boolean }): Promise<void>;
  hasSynced(): boolean;
  isLeader(): boolean;
}

/**
 * Serves /metrics, /healthz and /readyz, stops on SIGTERM/SIGINT, then starts
 * `process`. A start-up that cannot succeed (no API server, no Lease) ends in
 * one line and exit 2; anything else goes to `onStartError` or is thrown.
 */
export async function serve(p: {
  component: 'controller' | 'agent';
  version: string;
  runtime: RuntimeSettings;
  log: Log;
  process: Runnable;
  fail: (message: string) => never;
  /** Fields of the "starting" log line. */
  starting: Record<string, unknown>;
  onStartError?: (err: unknown) => Promise<never>;
}): Promise<void> {
  const { instrumentClient, setLeaderCheck } = await import('../lib/metrics.js');
  const { startHttpServers } = await import('../lib/http-server.js');
  const { runtime, log, process: proc, fail } = p;
  // Metrics: every API response, every run of the work queue, the Lease.
  instrumentClient(proc.client);
  if (runtime.leaderElection) setLeaderCheck(runtime.leaderElection.name, () => proc.isLeader());
  const servers = await startHttpServers({ metrics: runtime.metrics, health: runtime.health, ready: () => proc.hasSynced(), info: { version: p.version, component: p.component }, log }).catch(
    (err: Error) => fail(`cannot serve metrics or probes: ${err.message}`),
  );
  const shutdown = async (signal: string) => {
    log('info', 'shutting down', { signal });
    await proc.stop();
    await Promise.all(servers.map((s) => s.close()));
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  log('info', 'starting', p.starting);
  try {
    await proc.start();
  } catch (err) {
    // The API server never answered, or the Lease cannot be used: one message, no retrying.
    const message = await startupFailure(err);
    if (message) fail(message);
    if (p.onStartError) await p.onStartError(err);
    throw err;
  }
}
