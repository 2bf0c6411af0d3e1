/**
 * `kiln gitops bootstrap`: the objects that make Flux or Argo CD apply what
 * git mode commits. Printed, not applied: the user reviews them and commits
 * or applies them as the rest of their GitOps setup.
 *
 * - Flux: a GitRepository for the branch and a Kustomization pointing at
 *   `./<base>/<cluster>` (prune: a resource deleted in the cluster leaves the
 *   repository, then the cluster; wait: ready means the objects are ready).
 * - Argo CD: an Application with the same source path, automated sync with
 *   prune and self-heal, into the cluster it runs in.
 *
 * One tool per run: `--flux` or `--argocd` (neither: exit 2 naming both), so
 * the output applies to a cluster that has only that tool's CRDs. The repository URL is printed
 * without any credential written into it; private repositories need the
 * tool's own credentials (Flux: `--secret-ref`, a Secret in the Flux
 * namespace; Argo CD: a repository Secret).
 */
import { Option, type Command } from 'commander';
import { checkLayoutOptions, clusterDir } from '../gitops/layout.js';
import { toYaml } from '../lib/yaml.js';

export interface BootstrapOptions {
  repo: string;
  branch: string;
  basePath: string;
  cluster: string;
  /** Namespace of the Flux objects (default flux-system). */
  namespace: string;
  /** Namespace of the Argo CD Application (default argocd). */
  argocdNamespace: string;
  /** Name of the objects (default kiln-<cluster>). */
  name?: string;
  /** Flux: how often the source is fetched (default 1m). */
  interval: string;
  /** Flux: how often the Kustomization is reconciled against the cluster (default 10m). */
  syncInterval: string;
  /** Flux: Secret with the repository credentials. */
  secretRef?: string;
  /** Argo CD project (default default). */
  project: string;
}

export type GitopsTool = 'flux' | 'argocd';

export const BOOTSTRAP_DEFAULTS: Omit<BootstrapOptions, 'repo'> = {
  branch: 'main',
  basePath: 'clusters',
  cluster: 'default',
  namespace: 'flux-system',
  argocdNamespace: 'argocd',
  interval: '1m',
  syncInterval: '10m',
  project: 'default',
};

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DURATION = /^(\d+(\.\d+)?(ms|s|m|h))+$/;

/** The URL without `user:password@`: a credential is never printed. */
export function publicUrl(url: string): string {
  if (!/^https?:\/\//i.test(url)) return url;
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.toString();
}

export interface BootstrapObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}

/** The Flux and the Argo CD objects for these options (validated: throws a message fit for the user). */
export function bootstrapObjects(input: Partial<BootstrapOptions> & { repo: string }): { path: string; flux: BootstrapObject[]; argocd: BootstrapObject[] } {
  const o: BootstrapOptions = { ...BOOTSTRAP_DEFAULTS, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) } as BootstrapOptions;
  if (!o.repo) throw new Error('--repo is required');
  const layout = checkLayoutOptions({ basePath: o.basePath, cluster: o.cluster });
  const name = o.name ?? `kiln-${layout.cluster}`;
  for (const [flag, value] of [
    ['--name', name],
    ['--namespace', o.namespace],
    ['--argocd-namespace', o.argocdNamespace],
  ] as const) {
    if (value.length > 63 || !DNS_LABEL.test(value)) throw new Error(`${flag} must be a DNS-1123 label (got ${JSON.stringify(value)})`);
  }
  for (const [flag, value] of [
    ['--interval', o.interval],
    ['--sync-interval', o.syncInterval],
  ] as const) {
    if (!DURATION.test(value)) throw new Error(`${flag} must be a duration such as 1m or 30s (got ${JSON.stringify(value)})`);
  }
  if (!o.branch || /\s/.test(o.branch)) throw new Error(`--branch must be a branch name (got ${JSON.stringify(o.branch)})`);
  const repoURL = publicUrl(o.repo);
  const path = clusterDir(layout);
  const labels = { 'app.kubernetes.io/managed-by': 'kiln', 'app.kubernetes.io/part-of': 'kiln' };

  const flux: BootstrapObject[] = [
    {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata: { name, namespace: o.namespace, labels },
      spec: {
        interval: o.interval,
        url: repoURL,
        ref: { branch: o.branch },
        ...(o.secretRef ? { secretRef: { name: o.secretRef } } : {}),
      },
    },
    {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { name, namespace: o.namespace, labels },
      spec: {
        interval: o.syncInterval,
        retryInterval: '1m',
        timeout: '5m',
        sourceRef: { kind: 'GitRepository', name },
        path: `./${path}`,
        prune: true,
        wait: true,
      },
    },
  ];
  const argocd: BootstrapObject[] = [
    {
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'Application',
      metadata: { name, namespace: o.argocdNamespace, labels },
      spec: {
        project: o.project,
        source: { repoURL, targetRevision: o.branch, path },
        destination: { server: 'https://kubernetes.default.svc' },
        syncPolicy: { automated: { prune: true, selfHeal: true } },
      },
    },
  ];
  return { path, flux, argocd };
}

/** The YAML `kiln gitops bootstrap --<tool>` prints: that tool's objects only. */
export function bootstrapYaml(input: Partial<BootstrapOptions> & { repo: string }, tool: GitopsTool): string {
  const objects = bootstrapObjects(input);
  const head = `# Generated by kiln gitops bootstrap: consumers of ${objects.path} in the repository, where kiln's git mode commits.\n`;
  if (tool === 'flux') {
    return objects.flux.map((obj, i) => `${i === 0 ? `${head}# Flux: the branch as a source, and the directory applied from it.\n` : ''}${toYaml(obj)}`).join('---\n');
  }
  return objects.argocd.map((obj) => `${head}# Argo CD: the directory as an Application.\n${toYaml(obj)}`).join('---\n');
}

/** Which tool the flags name: exactly one of --flux, --argocd (or the older --only <tool>); else a message. */
export function chooseTool(opts: { flux?: boolean; argocd?: boolean; only?: string }): GitopsTool | { error: string } {
  if (opts.only !== undefined && opts.only !== 'flux' && opts.only !== 'argocd') return { error: `--only must be flux or argocd (got ${JSON.stringify(opts.only)})` };
  const tools = new Set<GitopsTool>();
  if (opts.flux) tools.add('flux');
  if (opts.argocd) tools.add('argocd');
  if (opts.only) tools.add(opts.only);
  if (tools.size === 1) return [...tools][0]!;
  if (tools.size === 0) return { error: 'say which tool applies the repository: --flux (a GitRepository and a Kustomization) or --argocd (an Application)' };
  return { error: '--flux and --argocd print objects for different tools: give one (run it twice for both)' };
}

export function registerGitops(program: Command): void {
  const gitops = program.command('gitops').description('Helpers for git mode: what Flux or Argo CD need to consume the repository kiln writes.');
  gitops
    .command('bootstrap')
    .description('Print the objects that make Flux (--flux: a GitRepository and a Kustomization) or Argo CD (--argocd: an Application) apply <base-path>/<cluster> from the repository.')
    .option('--flux', "print Flux's objects (source.toolkit.fluxcd.io GitRepository, kustomize.toolkit.fluxcd.io Kustomization)")
    .option('--argocd', "print Argo CD's object (argoproj.io Application)")
    .requiredOption('--repo <url>', 'repository URL, as Flux / Argo CD fetch it')
    .option('--branch <branch>', 'branch to follow (kiln controller --branch)', BOOTSTRAP_DEFAULTS.branch)
    .option('--base-path <path>', 'the directory kiln owns in the repository', BOOTSTRAP_DEFAULTS.basePath)
    .requiredOption('--cluster <name>', "the cluster's directory under the base path (kiln controller --cluster)")
    .option('--namespace <ns>', 'namespace of the Flux objects', BOOTSTRAP_DEFAULTS.namespace)
    .option('--argocd-namespace <ns>', 'namespace of the Argo CD Application', BOOTSTRAP_DEFAULTS.argocdNamespace)
    .option('--name <name>', 'name of the objects (default kiln-<cluster>)')
    .option('--interval <duration>', 'Flux: how often the repository is fetched', BOOTSTRAP_DEFAULTS.interval)
    .option('--sync-interval <duration>', 'Flux: how often the cluster is reconciled with the directory', BOOTSTRAP_DEFAULTS.syncInterval)
    .option('--secret-ref <name>', 'Flux: Secret holding the repository credentials (private repositories)')
    .option('--project <name>', 'Argo CD project', BOOTSTRAP_DEFAULTS.project)
    .addOption(new Option('--only <tool>', 'older spelling of --flux / --argocd').hideHelp())
    .action((opts: Partial<BootstrapOptions> & { repo: string; flux?: boolean; argocd?: boolean; only?: string }) => {
      const tool = chooseTool(opts);
      if (typeof tool !== 'string') {
        process.stderr.write(`kiln gitops bootstrap: ${tool.error}\n`);
        process.exitCode = 2;
        return;
      }
      const { flux: _flux, argocd: _argocd, only: _only, ...options } = opts;
      let text: string;
      try {
        text = bootstrapYaml(options, tool);
      } catch (err) {
        process.stderr.write(`kiln gitops bootstrap: ${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      if (publicUrl(opts.repo) !== opts.repo) process.stderr.write('kiln gitops bootstrap: credentials in --repo are not printed; give the tool its own\n');
      process.stdout.write(text);
    });
}
