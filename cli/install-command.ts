import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Option, type Command } from 'commander';
import type { InstallOptions } from '../install/install.js';
import { wholeNumber } from './runtime-options.js';

/** The values commander parses from `kiln install`'s flags (defaults applied). */
interface InstallFlags {
  mode: InstallOptions['mode'];
  namespace: string;
  name: string;
  image?: string;
  imagePullPolicy: NonNullable<InstallOptions['imagePullPolicy']>;
  replicas: number;
  agentReplicas: number;
  agent: boolean;
  agentNamespace: string[];
  tokenNamespace: string[];
  namespaced: boolean;
  watchNamespace: string[];
  crds: NonNullable<InstallOptions['crds']>;
  logLevel: NonNullable<InstallOptions['logLevel']>;
  repo?: string;
  branch?: string;
  basePath: string;
  cluster?: string;
  allowInsecureHttp: boolean;
  gitTokenSecret: string;
  gitAuthScheme?: 'Basic' | 'Bearer';
  gitUsername?: string;
  review: boolean;
  reviewBranch?: string;
  pullRequestApi?: string;
  author?: string;
  committer?: string;
  flux?: string;
  shards: string[];
  sharding: string;
  output?: string;
}

export function registerInstall(program: Command, version: string): void {
  program
    .command('install')
    .description(
      "Print the manifests that install kiln (CRDs, namespace, ServiceAccounts, least-privilege RBAC, controller and agent Deployments), rendered by kiln's own cdk8s constructs. Apply them with `kubectl apply --server-side -f`. No Secret is rendered: git mode mounts one you create.",
    )
    .addOption(new Option('--mode <mode>', "the controller's mode: apply (server-side apply into the cluster) or git (commit to a repository)").choices(['apply', 'git']).default('apply'))
    .option('--namespace <ns>', 'namespace kiln runs in (its Deployments, ServiceAccounts and Leases; with --namespaced: the first -n unless given)', 'kiln-system')
    .option(
      '--namespaced',
      'a namespace-scoped install: the controller and the agent watch only the -n namespaces, and every right is a Role and RoleBinding in the namespace it is used in; nothing cluster-scoped is printed (no ClusterRole, no CRDs: a cluster admin applies `kiln install --crds only`; no Namespace: --namespace must exist)',
      false,
    )
    .option(
      '-n, --watch-namespace <ns>',
      'with --namespaced: a namespace the controller and the agent watch (their -n) and hold Roles in (repeatable, or comma-separated)',
      (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)],
      [] as string[],
    )
    .option('--name <name>', 'name of the installation: the components are <name>-controller and <name>-agent', 'kiln')
    .option('--image <image>', 'container image of the controller and the agent (default: kiln:<version>)')
    .addOption(new Option('--image-pull-policy <policy>', 'when the kubelet pulls the image').choices(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'))
    .option('--replicas <n>', 'controller replicas (one leads, the others stand by)', wholeNumber(0), 1)
    .option('--agent-replicas <n>', 'agent replicas (one leads, the others stand by)', wholeNumber(0), 1)
    .option('--no-agent', 'leave out the runtime agent (its Deployment, ServiceAccount and RBAC)')
    .option(
      '--agent-namespace <ns>',
      'the runtime agent serves only this namespace, and may read and write Secrets only there (a RoleBinding to <name>-agent-secrets; repeatable, or comma-separated; default: every namespace, with cluster-wide Secret rights)',
      (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)],
      [] as string[],
    )
    .option(
      '--token-namespace <ns>',
      'apply mode: a namespace where ConfigMapSync may act as a ServiceAccount: the controller may request tokens there (a RoleBinding to <name>-controller-serviceaccount-tokens) and nowhere else (repeatable, or comma-separated; default none)',
      (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)],
      [] as string[],
    )
    .addOption(
      new Option('--crds <what>', 'include the CRDs, skip them (upgrade or uninstall kiln but keep every kiln resource), or only them').choices(['include', 'skip', 'only']).default('include'),
    )
    .addOption(new Option('--log-level <level>', 'the --log-level of the controller and the agent').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .option('--repo <url>', 'git mode: repository URL the controller commits to')
    .option('--branch <branch>', 'git mode: the branch Flux or Argo CD read')
    .option('--base-path <path>', 'git mode: the directory kiln owns in the repository', 'clusters')
    .option('--cluster <name>', "git mode: this cluster's directory under the base path (required in git mode: two clusters sharing one name would prune each other)")
    .option('--allow-insecure-http', 'git mode: let the controller use plain http:// for the repository and the pull-request API (for loopback test servers)', false)
    .option(
      '--git-token-secret <name>',
      'git mode: Secret in --namespace whose key "token" is mounted as the --git-token-file (create it yourself; "" for a repository that needs no token)',
      'kiln-git',
    )
    .addOption(new Option('--git-auth-scheme <scheme>', 'git mode: how the token is sent ($KILN_GIT_AUTH_SCHEME)').choices(['Basic', 'Bearer']))
    .option('--git-username <name>', 'git mode: user name sent with the token for Basic ($KILN_GIT_USERNAME)')
    .option('--review', 'git mode: push to <branch>-next and open a pull request', false)
    .option('--review-branch <branch>', 'git mode: the review branch (implies --review)')
    .option('--pull-request-api <url>', 'git mode, review: GitHub-compatible REST API, or "none"')
    .option('--flux <namespace/name>', 'git mode: the Flux Kustomization the controller follows (--flux); read and fetch rights in its namespace only')
    .option('--author <identity>', 'git mode: author of kiln\'s commits, "Name <email>"')
    .option('--committer <identity>', 'git mode: committer of kiln\'s commits, "Name <email>"')
    .option(
      '--shards <names>',
      "static sharding, as Flux's: one more controller (and agent) Deployment per shard, <name>-controller-<shard> with --watch-label-selector kiln.dev/shard=<shard> on a Lease of its own; the main Deployments take the resources without the label (!kiln.dev/shard). Label a resource kiln.dev/shard=<shard> to hand it to a shard (repeatable, or comma-separated)",
      (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)],
      [] as string[],
    )
    .option(
      '--sharding <mode>',
      'dynamic (apply mode): every controller replica works (--replicas of them), each on the resources a consistent-hash ring of the live replicas gives it; none: one replica leads',
      'none',
    )
    .option('-o, --output <file>', 'write to this file instead of standard output')
    .action(async (opts: InstallFlags, cmd: Command) => {
      const { installObjects, shardsProblem } = await import('../install/install.js');
      const { toYamlStream } = await import('../lib/yaml.js');
      const fail = (message: string): never => {
        process.stderr.write(`kiln install: ${message}\n`);
        process.exit(2);
      };
      if (opts.mode === 'git' && opts.crds !== 'only' && (!opts.repo || !opts.branch || !opts.cluster)) fail('--mode git needs --repo <url>, --branch <branch> and --cluster <name>');
      if (opts.mode === 'git' && !opts.allowInsecureHttp) {
        for (const [flag, url] of [
          ['--repo', opts.repo],
          ['--pull-request-api', opts.pullRequestApi],
        ] as const) {
          if (typeof url === 'string' && /^http:\/\//i.test(url)) fail(`${flag} ${url}: plain http:// sends the token and manifests unencrypted; use https://, or pass --allow-insecure-http`);
        }
      }
      for (const flag of ['replicas', 'agentReplicas'] as const) {
        if (!Number.isInteger(opts[flag]) || opts[flag] < 0) fail(`--${flag === 'replicas' ? 'replicas' : 'agent-replicas'} must be a whole number`);
      }
      if (opts.namespaced && opts.watchNamespace.length === 0) fail('--namespaced needs the namespaces to watch: -n <ns> (repeatable)');
      if (!opts.namespaced && opts.watchNamespace.length > 0) fail('-n (--watch-namespace) is for a namespace-scoped install: add --namespaced');
      if (opts.namespaced && cmd.getOptionValueSource('crds') === 'cli' && opts.crds === 'include') {
        fail('--namespaced prints no CRDs (they are cluster-scoped): a cluster admin applies `kiln install --crds only` first');
      }
      if (opts.namespaced && opts.agentNamespace.length > 0) fail('--namespaced: the agent serves the -n namespaces; --agent-namespace is for the cluster-wide install');
      const unwatched = opts.namespaced ? opts.tokenNamespace.filter((ns) => !opts.watchNamespace.includes(ns)) : [];
      if (unwatched.length > 0) fail(`--token-namespace ${unwatched.join(',')}: not among the -n namespaces, so a ConfigMapSync there would never be reconciled`);
      const shardProblem = shardsProblem(opts.shards, opts.name);
      if (shardProblem) fail(shardProblem);
      if (opts.sharding !== 'none' && opts.sharding !== 'dynamic') fail(`--sharding must be none or dynamic (got ${JSON.stringify(opts.sharding)})`);
      if (opts.sharding === 'dynamic' && opts.mode === 'git') fail('--sharding dynamic is for apply mode: in git mode one writer owns a branch (use --shards)');
      if (opts.sharding === 'dynamic' && opts.shards.length > 0) fail('--sharding dynamic and --shards: choose one (the dynamic ring assigns every resource itself)');
      if (opts.repo && /^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(opts.repo)) fail('--repo must not carry a credential; put the token in the Secret named by --git-token-secret');
      const objects = installObjects({
        mode: opts.mode,
        version,
        // A namespace-scoped install runs in the first namespace it watches unless told otherwise.
        namespace: opts.namespaced && cmd.getOptionValueSource('namespace') !== 'cli' ? opts.watchNamespace[0] : opts.namespace,
        watchNamespaces: opts.namespaced ? opts.watchNamespace : undefined,
        name: opts.name,
        image: opts.image,
        imagePullPolicy: opts.imagePullPolicy,
        replicas: opts.replicas,
        agent: opts.agent,
        agentReplicas: opts.agentReplicas,
        tokenNamespaces: opts.tokenNamespace,
        agentNamespaces: opts.agentNamespace,
        // --namespaced without --crds: none (the default 'include' is the cluster-wide install's).
        crds: opts.namespaced && cmd.getOptionValueSource('crds') !== 'cli' ? undefined : opts.crds,
        logLevel: opts.logLevel,
        shards: opts.shards,
        ...(opts.sharding === 'dynamic' ? { sharding: 'dynamic' as const } : {}),
        git:
          opts.mode === 'git'
            ? {
                // Checked above; only --crds only gets here without them, and renders no controller.
                repo: opts.repo ?? '',
                branch: opts.branch ?? '',
                basePath: opts.basePath,
                cluster: opts.cluster ?? '',
                tokenSecret: opts.gitTokenSecret || undefined,
                authScheme: opts.gitAuthScheme,
                username: opts.gitUsername,
                review: opts.review,
                reviewBranch: opts.reviewBranch,
                pullRequestApi: opts.pullRequestApi,
                author: opts.author,
                committer: opts.committer,
                allowInsecureHttp: opts.allowInsecureHttp || undefined,
                flux: opts.flux,
              }
            : undefined,
      });
      const watched = [...new Set(opts.watchNamespace)].sort();
      const where = objects.find((o) => o.kind === 'Deployment')?.metadata.namespace;
      // What a namespace-scoped install leaves to a cluster admin, where whoever applies it reads it.
      const header =
        opts.namespaced && opts.crds !== 'only'
          ? `# kiln, namespace-scoped (--namespaced): watches ${watched.join(', ')}; runs in ${where ?? opts.namespace}, which must exist.\n` +
            '# Every right is a Role bound in the namespace it is used in. Not printed, as they are cluster-scoped:\n' +
            '# the CRDs (a cluster admin applies `kiln install --crds only` first) and the Namespace.\n'
          : '';
      const text = header + toYamlStream(objects);
      if (opts.output) {
        mkdirSync(dirname(opts.output), { recursive: true });
        writeFileSync(opts.output, text);
        process.stderr.write(`kiln install: wrote ${objects.length} objects to ${opts.output}\n`);
      } else {
        process.stdout.write(text);
      }
    });
}
