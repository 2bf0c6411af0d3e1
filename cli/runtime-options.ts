/**
 * The flags `kiln controller` and `kiln agent` share with every kubebuilder
 * operator: `--leader-elect` (off unless given; `--leader-elect=false` too, as
 * pflag's booleans take), `--metrics-bind-address` and
 * `--health-probe-bind-address` (`:8080`, `127.0.0.1:8080`, `[::1]:8080`, or
 * `0` for off), the Lease's name, namespace and timings, and kiln's own
 * `--startup-timeout`.
 *
 * The names of the previous release (`--no-leader-elect`, `--metrics-port`,
 * `--health-port`, and the controller's `--bind-address`) still work for one
 * release: `--help` lists them under "Deprecated options", and each one used
 * prints one warning line on stderr.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { BindAddress } from '../lib/http-server.js';
import { checkWatchSelector, shardName } from '../lib/shard.js';

/**
 * Parsers for numeric flags: each refuses what is not the number it asks for
 * (commander prints "error: option '--concurrency <n>' argument 'abc' is
 * invalid. expected ...", and kiln exits 2). Every numeric flag of every
 * command goes through one of these.
 */
export function wholeNumber(min = 0, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^\+?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(max < Number.MAX_SAFE_INTEGER ? `expected a whole number from ${min} to ${max}` : `expected a whole number${min > 0 ? ` of at least ${min}` : ' (0 or more)'}`);
    }
    return n;
  };
}

/** A decimal number of at least 0 (e.g. a rate: 0.5, 20). */
export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!/^\+?(\d+\.?\d*|\.\d+)$/.test(value.trim()) || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number (0 or more)');
  return n;
}

const seconds = wholeNumber(1);

export interface LeaderElectionSettings {
  namespace: string;
  name: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
}

export interface RuntimeSettings {
  /** Present with --leader-elect. */
  leaderElection?: LeaderElectionSettings;
  /** undefined: off. */
  metrics?: BindAddress;
  /** undefined: off. */
  health?: BindAddress;
  startupTimeoutSeconds: number;
  /** --watch-label-selector, checked: only the kiln resources it selects are watched (static sharding). */
  watchLabelSelector?: string;
  /** One line per deprecated flag that was used, saying what to use instead. */
  warnings: string[];
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * A kubebuilder bind address: `0` (off: undefined), `:8080` (every interface),
 * `127.0.0.1:8080`, `localhost:8080`, `[::1]:8080`. Throws InvalidArgumentError otherwise.
 */
export function parseBindAddress(value: string): BindAddress | undefined {
  if (value === '0') return undefined;
  const fail = (why: string): never => {
    throw new InvalidArgumentError(`${why}: expected [host]:port, e.g. ":8080" or "127.0.0.1:8080", or "0" to turn it off`);
  };
  const colon = value.lastIndexOf(':');
  if (colon < 0) fail(`"${value}" has no port`);
  let host = value.slice(0, colon);
  const portText = value.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) fail(`"${portText}" is not a port (0-65535)`);
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (!isIPv6(host)) fail(`"${host}" is not an IPv6 address`);
  } else if (host.includes(':')) {
    fail(`"${value}": an IPv6 address goes in brackets, e.g. "[::1]:8080"`);
  } else if (host !== '' && !isIPv4(host) && !HOSTNAME.test(host)) {
    fail(`"${host}" is not a host name or address`);
  }
  return { ...(host ? { host } : {}), port: Number(portText) };
}

/** What pflag's booleans accept (strconv.ParseBool). */
export function parseBool(value: string): boolean {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  throw new InvalidArgumentError('expected true or false');
}

export function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!/^\+?(\d+\.?\d*|\.\d+)$/.test(value.trim()) || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number of seconds greater than 0');
  return n;
}

function port(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new InvalidArgumentError('expected a port number (0-65535)');
  return Number(value);
}

const DEPRECATED = 'Deprecated options (removed in the next release):';
const usedNegation = new WeakMap<Command, boolean>();

/**
 * Adds the shared runtime flags to a long-running command. `bindAddressAlias`: the
 * command had `--bind-address` (the controller did; the agent never had it).
 */
export function addRuntimeOptions(cmd: Command, o: { leaseName: string; bindAddressAlias?: boolean }): Command {
  cmd
    .addOption(
      new Option(
        '--leader-elect [bool]',
        'campaign for a Lease so that one replica works and the others stand by (needed when more than one replica runs); off unless given, as in kubebuilder; --leader-elect=false also accepted',
      )
        .argParser(parseBool)
        .default(false),
    )
    .option('--leader-election-namespace <ns>', 'namespace of the Lease (with --leader-elect); it must exist', process.env['POD_NAMESPACE'] ?? 'kiln-system')
    .option(
      '--leader-election-id <name>',
      `name of the Lease (with --leader-elect); default ${o.leaseName}, and with --watch-label-selector one Lease per shard: ${o.leaseName}-<value> for key=value, ${o.leaseName}-unsharded for !key, otherwise ${o.leaseName}-<first 10 hex digits of the selector's SHA-256>`,
      o.leaseName,
    )
    .addOption(
      new Option(
        '--watch-label-selector <selector>',
        "static sharding (as Flux's): watch and work on only the kiln resources this label selector picks, e.g. kiln.dev/shard=shard1 for a shard and !kiln.dev/shard for the rest; the labels it names are copied onto every object made for a resource (app.kubernetes.io/*, applyset.kubernetes.io/* and kiln.dev/owner-* are kiln's own and refused)",
      ).argParser(checkedSelector),
    )
    .option('--lease-duration <seconds>', 'how long a lease is valid without renewal (whole seconds, more than --renew-deadline)', seconds, 15)
    .option('--renew-deadline <seconds>', 'a leader that cannot renew for this long stops (whole seconds, more than --retry-period)', seconds, 10)
    .option('--retry-period <seconds>', 'how often to try to acquire or renew (whole seconds)', seconds, 2)
    .addOption(
      new Option(
        '--metrics-bind-address <address>',
        'where /metrics (Prometheus text format) listens: ":8080" (every interface), "127.0.0.1:8080", or "0" (off); the same address as --health-probe-bind-address: one server for all three paths',
      )
        .default(':8080')
        .argParser(checked),
    )
    .addOption(
      new Option('--health-probe-bind-address <address>', 'where /healthz (alive) and /readyz (caches filled) listen: ":8081", "127.0.0.1:8081", or "0" (off)').default(':8081').argParser(checked),
    )
    .addOption(
      new Option('--startup-timeout <seconds>', 'exit 2 if the API server has not answered within this many seconds of start-up (an outage after start-up is retried, as always)')
        .argParser(positiveSeconds)
        .default(60),
    )
    .addOption(new Option('--no-leader-elect', 'deprecated: leader election is off unless --leader-elect is given').helpGroup(DEPRECATED))
    .addOption(new Option('--metrics-port <port>', 'deprecated: use --metrics-bind-address :<port> (0: off)').argParser(port).conflicts('metricsBindAddress').helpGroup(DEPRECATED))
    .addOption(new Option('--health-port <port>', 'deprecated: use --health-probe-bind-address :<port> (0: off)').argParser(port).conflicts('healthProbeBindAddress').helpGroup(DEPRECATED));
  if (o.bindAddressAlias) {
    cmd.addOption(
      new Option(
        '--bind-address <address>',
        'deprecated: give the host in --metrics-bind-address and --health-probe-bind-address (e.g. 127.0.0.1:8080); sets the host of each address given without one',
      ).helpGroup(DEPRECATED),
    );
  }
  cmd.on('option:no-leader-elect', () => usedNegation.set(cmd, true));
  return cmd;
}

/** A wrong selector stops the command at parse time (exit 2), naming the selector and the reason. */
function checkedSelector(value: string): string {
  try {
    return checkWatchSelector(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** Validates at parse time (commander reports the flag); the value stays text until runtimeSettings. */
function checked(value: string): string {
  parseBindAddress(value);
  return value;
}

interface RuntimeFlags {
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  leaseDuration: number;
  renewDeadline: number;
  retryPeriod: number;
  metricsBindAddress: string;
  healthProbeBindAddress: string;
  startupTimeout: number;
  watchLabelSelector?: string;
  metricsPort?: number;
  healthPort?: number;
  bindAddress?: string;
}

/** The settings a parsed command's runtime flags give (after addRuntimeOptions and parse). */
export function runtimeSettings(cmd: Command): RuntimeSettings {
  const f = cmd.opts<RuntimeFlags>();
  const fromCli = (key: keyof RuntimeFlags) => cmd.getOptionValueSource(key) === 'cli';
  const warnings: string[] = [];
  if (usedNegation.get(cmd)) warnings.push('--no-leader-elect is deprecated and will be removed in the next release: leader election is off unless --leader-elect is given');
  const host = f.bindAddress;
  const resolve = (address: string, alias: number | undefined): BindAddress | undefined => {
    const parsed = alias === undefined ? parseBindAddress(address) : alias === 0 ? undefined : { port: alias };
    return parsed && host !== undefined && parsed.host === undefined ? { host, port: parsed.port } : parsed;
  };
  if (fromCli('metricsPort'))
    warnings.push(`--metrics-port is deprecated and will be removed in the next release: use --metrics-bind-address ${f.metricsPort === 0 ? '0' : `${host ?? ''}:${f.metricsPort}`}`);
  if (fromCli('healthPort'))
    warnings.push(`--health-port is deprecated and will be removed in the next release: use --health-probe-bind-address ${f.healthPort === 0 ? '0' : `${host ?? ''}:${f.healthPort}`}`);
  if (host !== undefined)
    warnings.push('--bind-address is deprecated and will be removed in the next release: give the host in --metrics-bind-address and --health-probe-bind-address (e.g. 127.0.0.1:8080)');
  if (f.leaderElect) {
    // client-go's rules (leaderelection.NewLeaderElector): a leader must renew well within its lease.
    if (f.renewDeadline >= f.leaseDuration)
      cmd.error(`error: --lease-duration (${f.leaseDuration}) must be greater than --renew-deadline (${f.renewDeadline})`, { exitCode: 2, code: 'kiln.invalidArgument' });
    if (f.renewDeadline <= 1.2 * f.retryPeriod)
      cmd.error(`error: --renew-deadline (${f.renewDeadline}) must be greater than 1.2 x --retry-period (${f.retryPeriod})`, { exitCode: 2, code: 'kiln.invalidArgument' });
  }
  // One Lease per shard unless named: shards elect their leaders apart, replicas of one shard share one.
  const selector = f.watchLabelSelector;
  const leaseName = selector && !fromCli('leaderElectionId') ? `${f.leaderElectionId}-${shardName(selector)}` : f.leaderElectionId;
  return {
    leaderElection: f.leaderElect
      ? { namespace: f.leaderElectionNamespace, name: leaseName, leaseDurationSeconds: f.leaseDuration, renewDeadlineSeconds: f.renewDeadline, retryPeriodSeconds: f.retryPeriod }
      : undefined,
    metrics: resolve(f.metricsBindAddress, f.metricsPort),
    health: resolve(f.healthProbeBindAddress, f.healthPort),
    startupTimeoutSeconds: f.startupTimeout,
    ...(selector ? { watchLabelSelector: selector } : {}),
    warnings,
  };
}

/** The one message a command prints (then exits 2) when start-up fails in a way no retry fixes; undefined for other errors. */
export async function startupFailure(err: unknown): Promise<string | undefined> {
  const { StartupTimeoutError } = await import('../kube/startup.js');
  const { LeaseUnavailableError } = await import('../kube/leader.js');
  if (err instanceof StartupTimeoutError) {
    return `${err.message}. Check the cluster address (--kubeconfig, --context, $KUBECONFIG) and that the API server runs; --startup-timeout sets how long to wait.`;
  }
  if (err instanceof LeaseUnavailableError) {
    const fix =
      err.reason === 'NamespaceNotFound'
        ? `create the namespace (kubectl create namespace ${err.namespace}), pass --leader-election-namespace <an existing namespace>, or run without --leader-elect (one replica only)`
        : `grant get, create and update on leases in namespace "${err.namespace}" (kiln install's Role does), pass --leader-election-namespace <a namespace where it may>, or run without --leader-elect (one replica only)`;
    return `leader election: ${err.message}. To fix: ${fix}.`;
  }
  return undefined;
}

/** --log-level, the same on every long-running command: pino levels, JSON lines on stderr. */
export function logLevelOption(): Option {
  return new Option('--log-level <level>', 'least severe level logged; logs go to stderr (see --log-format)').choices(['debug', 'info', 'warn', 'error']).default('info');
}

/** --log-format, the same on every long-running command (lib/log.ts). */
export function logFormatOption(): Option {
  return new Option(
    '--log-format <format>',
    'console: one readable line per entry (local time, colour); json: one JSON object per line with an ISO 8601 "time" and the level\'s name, for log collectors (default: console when stderr is a terminal, json otherwise)',
  ).choices(['console', 'json']);
}
