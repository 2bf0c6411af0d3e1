import type { Command } from 'commander';
import type { LogFormat, LogLevel } from '../lib/log.js';
import type { GitSinkOptions } from '../controller/git/sink.js';
import type { RingSettings } from '../kube/sharding/membership.js';
import { addKubeAccessOptions, clusterConfig, failer, serve, type KubeAccessFlags } from './process-shell.js';
import { addRuntimeOptions, logFormatOption, logLevelOption, runtimeSettings, wholeNumber } from './runtime-options.js';

export function registerController(program: Command, version: string): void {
  const command = addKubeAccessOptions(
    program
      .command('controller')
      .description('Run the kiln controller: watch kiln resources and keep the cluster (apply mode) or a Git repository (git mode) equal to what kiln renders.')
      .option('--mode <mode>', 'apply (server-side apply into the cluster) or git (commit to a repository)', 'apply'),
    // No client-side limit by default, as controller-runtime (QPS -1 since v0.15) and kiln's agent: the API
    // server's Priority and Fairness governs, and --concurrency bounds what is in flight. With client-go's
    // old 20/30, bench/apply's 1,000 DirectoryServices (7,000 requests) could not converge in under 350 s.
    // 16 workers: a reconcile spends most of its time waiting for the API server, so with 4 a burst of new
    // resources waited in the queue while the server had room (bench/apply, 1,000 DirectoryServices on 2
    // cores: queue wait p50 4.8 s -> 0.17 s, converge 110 -> 97 s, the same peak RSS).
    {
      concurrency: { default: 16, help: 'resources reconciled at once' },
      qps: { default: 0, help: "client-side limit, average API requests per second (0, the default: none, the API server's Priority and Fairness governs)" },
      burst: 'API request burst when --qps is set',
    },
  )
    .option('--resync <seconds>', 'reconcile every resource again this often (0: never)', wholeNumber(0), 300)
    .option(
      '--sharding <mode>',
      'none: one replica works (with --leader-elect the others stand by); dynamic (apply mode): every replica works, each on the resources a consistent-hash ring of the live replicas gives it, moved with a drain handshake when replicas come and go (README "Scaling out"); uses --leader-election-namespace and the lease timings',
      'none',
    )
    .option('--sharding-ring <name>', 'with --sharding dynamic: the ring; its Leases are <ring>-<replica> and <ring>-sharder', 'kiln-controller');
  addRuntimeOptions(command, { leaseName: 'kiln-controller', bindAddressAlias: true })
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .option(
      '--repo <url>',
      'git mode: repository URL (https, ssh, file:// or a path); a token comes from --git-token-file or $KILN_GIT_TOKEN, never from the command line (a URL with credentials is refused)',
    )
    .option('--allow-insecure-http', 'git mode: accept plain http:// for the repository and the pull-request API (the token and manifests travel unencrypted; for loopback test servers)', false)
    .option('--branch <branch>', 'git mode: the branch Flux or Argo CD read')
    .option('--review', 'git mode: push to a review branch (<branch>-next unless --review-branch) and open or update a pull request into --branch', false)
    .option('--review-branch <branch>', 'git mode: the review branch (implies --review), started from --branch')
    .option(
      '--pull-request-api <url>',
      'git mode, review: GitHub-compatible REST API (default https://api.github.com, for github.com repositories only; Gitea: https://<host>/api/v1); "none" pushes the review branch without a pull request',
    )
    .option('--base-path <path>', 'git mode: the directory kiln owns in the repository', 'clusters')
    .option('--cluster <name>', "git mode (required): this cluster's directory under the base path; marked with the cluster's identity (kube-system's UID), so another cluster is refused")
    .option(
      '--allow-mass-delete',
      "git mode: let start-up delete more than half of the cluster's resources from the repository (refused by default: a wrong --cluster or kube context would empty it)",
      false,
    )
    .option('--work-dir <dir>', 'git mode: the local clone (default: one under the temporary directory per repository and branch)')
    .option(
      '--git-token-file <file>',
      'git mode: file holding the token for an https repository (a mounted Secret), read again when it changes; $KILN_GIT_USERNAME and $KILN_GIT_AUTH_SCHEME (Basic|Bearer) apply',
    )
    .option('--author <identity>', 'git mode: author of kiln\'s commits, "Name <email>" (default: the committer)')
    .option('--committer <identity>', 'git mode: committer of kiln\'s commits, "Name <email>" (default: kiln <noreply@kiln.dev>)')
    .option('--debounce <ms>', 'git mode: quiet time after the last change before a commit', wholeNumber(0), 2000)
    .option('--max-wait <ms>', 'git mode: longest wait after the first change of a batch', wholeNumber(0), 30_000)
    .option(
      '--flux <namespace/name>',
      "git mode: the Flux Kustomization that applies kiln's directory: after each push kiln asks its GitRepository to fetch at once, and a resource is Ready only when Flux applied its commit (and its health checks passed)",
    )
    .action(async (opts: ControllerFlags, cmd: Command) => {
      const runtime = runtimeSettings(cmd);
      for (const w of runtime.warnings) process.stderr.write(`kiln controller: ${w}\n`);
      // Loaded here, not at the top: `kiln --help` and `kiln synth` need none of it.
      const { Manager } = await import('../controller/manager.js');
      const { exitOnLostLeadership, lostLeadershipGraceMs } = await import('../kube/leader.js');
      const { newLogger } = await import('../lib/log.js');
      const log = newLogger(opts.logLevel, 'kiln-controller', opts.logFormat);
      const fail: (message: string) => never = failer('controller');
      if (opts.mode !== 'apply' && opts.mode !== 'git') fail(`--mode must be apply or git (got ${JSON.stringify(opts.mode)})`);
      const sharding = dynamicSharding(opts, cmd, fail);
      let git: GitSinkOptions | undefined;
      if (opts.mode === 'git') {
        try {
          git = await gitOptions(opts);
        } catch (err) {
          // Messages name options and files, never a token.
          fail((err as Error).message);
        }
      }
      const kc = await clusterConfig(opts, fail);
      let manager: InstanceType<typeof Manager>;
      if (git) {
        const { kubeSystemUid } = await import('../controller/git/sink.js');
        // The manager's client (its rate limit, its credentials), once it exists: start() asks after construction.
        git.clusterIdentity = () => kubeSystemUid((ref) => manager.client.get(ref), log);
      }
      try {
        manager = new Manager({
          kc,
          namespaces: opts.namespace,
          concurrency: opts.concurrency,
          qps: opts.qps,
          burst: opts.burst,
          resyncSeconds: opts.resync,
          leaderElection: runtime.leaderElection,
          sharding,
          startupTimeoutSeconds: runtime.startupTimeoutSeconds,
          version,
          log,
          sink: opts.mode,
          git,
          watchLabelSelector: runtime.watchLabelSelector,
          // A replica that lost its lease exits (within the renew deadline, whatever is in flight); its Deployment restarts it as a standby.
          onLostLeadership: exitOnLostLeadership({ component: 'controller', log, stop: () => manager.stop({ release: false }), graceMs: lostLeadershipGraceMs(runtime.leaderElection) }),
        });
      } catch (err) {
        if (opts.mode !== 'git') throw err;
        // The repository options the writer refuses (branch name, a token with a non-https URL): no credential in these.
        fail((err as Error).message);
      }
      manager.queue.instrument(undefined, [...manager.resources.keys()]);
      const sink = manager.git;
      await serve({
        component: 'controller',
        version,
        runtime,
        log,
        process: manager,
        fail,
        starting: {
          mode: opts.mode,
          server: kc.server,
          namespaces: opts.namespace.length ? opts.namespace : 'all',
          ...(runtime.watchLabelSelector ? { watchLabelSelector: runtime.watchLabelSelector } : {}),
          version,
          ...sink?.describe(),
        },
        // A clone that cannot be made (URL, credentials) ends here; the writer's messages hold no credential.
        onStartError: sink
          ? async (err) => {
              log('error', 'could not start', { error: sink.scrub(err) });
              await manager.stop().catch(() => undefined);
              process.exit(1);
            }
          : undefined,
      });
    });
}

/** --sharding dynamic's ring settings, checked; undefined for --sharding none. */
function dynamicSharding(opts: ControllerFlags, cmd: Command, fail: (message: string) => never): RingSettings | undefined {
  if (opts.sharding === 'none') return undefined;
  if (opts.sharding !== 'dynamic') fail(`--sharding must be none or dynamic (got ${JSON.stringify(opts.sharding)})`);
  if (opts.mode !== 'apply') fail('--sharding dynamic is for apply mode: in git mode one writer owns a branch (shard with --watch-label-selector, one directory per shard)');
  const f = cmd.opts<{ leaderElect: boolean; leaderElectionNamespace: string; leaseDuration: number; renewDeadline: number; retryPeriod: number }>();
  if (f.leaderElect) fail('--sharding dynamic replaces --leader-elect: every replica works, each holding a Lease of its own');
  if (!/^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/.test(opts.shardingRing)) fail(`--sharding-ring must be a DNS label of at most 40 characters (got ${JSON.stringify(opts.shardingRing)})`);
  // The same rules as leader election's (client-go's): a member must renew well within its lease.
  if (f.renewDeadline >= f.leaseDuration) fail(`--lease-duration (${f.leaseDuration}) must be greater than --renew-deadline (${f.renewDeadline})`);
  if (f.renewDeadline <= 1.2 * f.retryPeriod) fail(`--renew-deadline (${f.renewDeadline}) must be greater than 1.2 x --retry-period (${f.retryPeriod})`);
  return {
    ring: opts.shardingRing,
    leaseNamespace: f.leaderElectionNamespace,
    leaseDurationSeconds: f.leaseDuration,
    renewDeadlineSeconds: f.renewDeadline,
    retryPeriodSeconds: f.retryPeriod,
  };
}

/** The values commander parses from `kiln controller`'s own flags (defaults applied); runtimeSettings reads the shared ones. */
interface ControllerFlags extends GitFlags, KubeAccessFlags {
  sharding: string;
  shardingRing: string;
  /** Checked at run time: apply or git. */
  mode: string;
  resync: number;
  logLevel: LogLevel;
  logFormat?: LogFormat;
}

interface GitFlags {
  repo?: string;
  branch?: string;
  review?: boolean;
  reviewBranch?: string;
  pullRequestApi?: string;
  basePath: string;
  cluster?: string;
  allowInsecureHttp?: boolean;
  allowMassDelete?: boolean;
  workDir?: string;
  gitTokenFile?: string;
  author?: string;
  committer?: string;
  debounce: number;
  maxWait: number;
  flux?: string;
}

/** Git mode's options from the flags and the environment; throws a message fit for the user. */
export async function gitOptions(flags: GitFlags, env: NodeJS.ProcessEnv = process.env): Promise<GitSinkOptions> {
  const { authFromFileWatched, parseIdentity } = await import('../controller/git/sink.js');
  const { parseFluxRef } = await import('../controller/git/flux.js');
  const { authFromEnv, repositoryUrlProblem } = await import('../gitops/repo.js');
  const { checkLayoutOptions } = await import('../gitops/layout.js');
  if (!flags.repo) throw new Error('--mode git needs --repo <url>');
  if (!flags.branch) throw new Error('--mode git needs --branch <branch>');
  // No default: two clusters (or a wrong kube context) sharing one directory delete each other's resources.
  if (!flags.cluster) throw new Error('--mode git needs --cluster <name>: the directory of this cluster under the base path (one per cluster)');
  const urlProblem = repositoryUrlProblem(flags.repo, flags.allowInsecureHttp);
  if (urlProblem) throw new Error(`--repo: ${urlProblem}`);
  if (!Number.isInteger(flags.debounce) || flags.debounce < 0) throw new Error('--debounce must be a number of milliseconds');
  if (!Number.isInteger(flags.maxWait) || flags.maxWait < 0) throw new Error('--max-wait must be a number of milliseconds');
  const layout = checkLayoutOptions({ basePath: flags.basePath, cluster: flags.cluster });
  let auth: GitSinkOptions['auth'];
  let firstToken: string | undefined;
  let currentToken: (() => string) | undefined;
  if (flags.gitTokenFile) {
    const file = flags.gitTokenFile;
    const watched = authFromFileWatched(file, env);
    const read = () => {
      try {
        return watched();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new Error(code ? `cannot read --git-token-file ${file} (${code})` : (err as Error).message, { cause: err });
      }
    };
    firstToken = read().token;
    auth = read;
    currentToken = () => read().token;
  } else {
    const fromEnv = authFromEnv(env);
    auth = fromEnv;
    firstToken = fromEnv?.token;
    currentToken = fromEnv ? () => fromEnv.token : undefined;
  }
  const scheme = (typeof auth === 'function' ? auth() : auth)?.scheme;
  const reviewBranch = flags.reviewBranch ?? (flags.review ? `${flags.branch}-next` : undefined);
  let pullRequests;
  if (reviewBranch && flags.pullRequestApi !== 'none') {
    // The pull request is opened with the same token that pushes.
    if (!firstToken || !currentToken) throw new Error('--review opens a pull request and needs a token (--git-token-file or $KILN_GIT_TOKEN); --pull-request-api none pushes the branch only');
    const { GitHubPullRequests } = await import('../gitops/pull-request.js');
    pullRequests = new GitHubPullRequests({
      token: currentToken,
      scheme: scheme === 'Bearer' ? 'Bearer' : 'token',
      apiUrl: flags.pullRequestApi,
      repositoryUrl: flags.repo,
      allowInsecureHttp: flags.allowInsecureHttp,
    });
  }
  return {
    repo: flags.repo,
    branch: flags.branch,
    reviewBranch,
    pullRequests,
    basePath: layout.basePath,
    cluster: layout.cluster,
    workDir: flags.workDir,
    author: flags.author ? parseIdentity(flags.author) : undefined,
    committer: flags.committer ? parseIdentity(flags.committer) : undefined,
    auth,
    allowInsecureHttp: flags.allowInsecureHttp,
    allowMassDelete: flags.allowMassDelete,
    debounceMs: flags.debounce,
    maxWaitMs: flags.maxWait,
    ...(flags.flux !== undefined ? { flux: parseFluxRef(flags.flux) } : {}),
  };
}
