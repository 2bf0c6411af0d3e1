import type { Command } from 'commander';
import type { LogFormat, LogLevel } from '../lib/log.js';
import { DEFAULT_EXTENSIONS, postgresPolicy } from '../agent/policy.js';
import { addKubeAccessOptions, clusterConfig, collect, failer, serve, type KubeAccessFlags } from './process-shell.js';
import { addRuntimeOptions, logFormatOption, logLevelOption, runtimeSettings, wholeNumber } from './runtime-options.js';
const repeat = (v: string, prev: string[]) => [...prev, v];

/** The values commander parses from `kiln agent`'s own flags (defaults applied); runtimeSettings reads the shared ones. */
interface AgentFlags extends KubeAccessFlags {
  passwordInterval: number;
  databaseCheckInterval: number;
  endpoint: string[];
  allowedExtension: string[];
  allowInsecureAuthNamespace: string[];
  postgresTimeout: number;
  etcdReplaceAfter: number;
  etcdSnapshotDir?: string;
  logLevel: LogLevel;
  logFormat?: LogFormat;
}

export function registerAgent(program: Command, version: string): void {
  const command = addKubeAccessOptions(
    program.command('agent').description('Run the kiln runtime agent: keep directory passwords equal to their Secrets (LDAP) and Postgres databases, roles and connection Secrets in place (pg).'),
    {
      concurrency: { default: 4, help: 'resources worked on at once' },
      qps: { default: 0, help: "client-side limit, average API requests per second (0, the default: none, the API server's Priority and Fairness governs)" },
      burst: 'API request burst when --qps is set',
    },
  )
    .option(
      '--password-interval <seconds>',
      "check directory passwords, and each database's role, owner and connection Secret, again this often when nothing changed (a Secret or spec change is acted on at once)",
      wholeNumber(1),
      300,
    )
    .option(
      '--database-check-interval <seconds>',
      "the longest a dropped database stays missing: each instance's catalog is read (one query) twice per interval and a dropped database is re-created (recreateIfDropped) or reported",
      wholeNumber(1),
      10,
    )
    .option(
      '--endpoint <Kind/namespace/name=address>',
      'reach a server at this address instead of its Service DNS name, e.g. DirectoryService/identity/ds=ldaps://127.0.0.1:1636, PostgresInstance/shop/db=127.0.0.1:5432 or, per etcd member, EtcdCluster/platform/config-0=<client URL>,<peer URL> (repeatable; for running outside the cluster)',
      repeat,
      [],
    )
    .option(
      '--allowed-extension <name>',
      `an extension PostgresDatabase spec.extensions may name (they are created as superuser; repeatable, or comma-separated; replaces the default list: ${DEFAULT_EXTENSIONS.join(', ')})`,
      collect,
      [],
    )
    .option(
      '--allow-insecure-auth-namespace <ns>',
      'a namespace whose PostgresInstances may set spec.allowInsecureAuth: the agent then answers cleartext and MD5 password requests there (repeatable, or comma-separated; default none: only SCRAM-SHA-256)',
      collect,
      [],
    )
    .option(
      '--etcd-replace-after <seconds>',
      'an EtcdCluster member that stays unreachable this long while the others hold a quorum is replaced: removed, added again and started on an empty volume (its data is lost or it could not come back)',
      wholeNumber(10, 86_400),
      300,
    )
    .option(
      '--etcd-snapshot-dir <dir>',
      'write a snapshot of an EtcdCluster here before its version changes (recorded in status.lastSnapshot); default none: no snapshot is taken. In a cluster, mount a volume there',
    )
    .option(
      '--postgres-timeout <seconds>',
      'the longest one PostgreSQL statement may take (statement_timeout, and the client-side read timeout 5 s later); connecting has a third of it, lock_timeout a third',
      wholeNumber(3, 3600),
      30,
    );
  addRuntimeOptions(command, { leaseName: 'kiln-agent' })
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action(async (opts: AgentFlags, cmd: Command) => {
      const runtime = runtimeSettings(cmd);
      for (const w of runtime.warnings) process.stderr.write(`kiln agent: ${w}\n`);
      const { Agent } = await import('../agent/agent.js');
      const { exitOnLostLeadership, lostLeadershipGraceMs } = await import('../kube/leader.js');
      const { parseEndpoint } = await import('../agent/context.js');
      const { newLogger } = await import('../lib/log.js');
      const { recordAgentTask } = await import('../lib/metrics.js');
      const log = newLogger(opts.logLevel, 'kiln-agent', opts.logFormat);
      const fail: (message: string) => never = failer('agent');
      let endpoints: Record<string, string> = {};
      try {
        endpoints = Object.fromEntries(opts.endpoint.map(parseEndpoint));
      } catch (err) {
        fail((err as Error).message);
      }
      for (const flag of ['passwordInterval', 'databaseCheckInterval', 'concurrency'] as const) {
        if (!Number.isInteger(opts[flag]) || opts[flag] < 1) fail(`--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a positive whole number`);
      }
      const kc = await clusterConfig(opts, fail);
      const agent = new Agent({
        kc,
        namespaces: opts.namespace,
        concurrency: opts.concurrency,
        qps: opts.qps,
        burst: opts.burst,
        passwordIntervalSeconds: opts.passwordInterval,
        databaseCheckSeconds: opts.databaseCheckInterval,
        endpoints,
        leaderElection: runtime.leaderElection,
        watchLabelSelector: runtime.watchLabelSelector,
        startupTimeoutSeconds: runtime.startupTimeoutSeconds,
        log,
        onTask: recordAgentTask,
        etcd: { replaceAfterMs: opts.etcdReplaceAfter * 1000, snapshotDir: opts.etcdSnapshotDir },
        postgres: postgresPolicy({ extensions: opts.allowedExtension, insecureAuthNamespaces: opts.allowInsecureAuthNamespace, timeoutSeconds: opts.postgresTimeout }),
        onLostLeadership: exitOnLostLeadership({ component: 'agent', log, stop: (): Promise<void> => agent.stop({ release: false }), graceMs: lostLeadershipGraceMs(runtime.leaderElection) }),
      });
      agent.queue.instrument((kind) => `${kind.toLowerCase()}-agent`, ['DirectoryService', 'PostgresInstance', 'PostgresDatabase', 'EtcdCluster']);
      await serve({
        component: 'agent',
        version,
        runtime,
        log,
        process: agent,
        fail,
        starting: {
          server: kc.server,
          namespaces: opts.namespace.length ? opts.namespace : 'all',
          ...(runtime.watchLabelSelector ? { watchLabelSelector: runtime.watchLabelSelector } : {}),
          version,
          endpoints: Object.keys(endpoints),
        },
      });
    });
}
