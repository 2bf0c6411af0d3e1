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
 * Use one of them for a given path, not both. The repository URL is printed
 * without any credential written into it; private repositories need the
 * tool's own credentials (Flux: `--secret-ref`, a Secret in the Flux
 * namespace; Argo CD: a repository Secret).
 */
import type { Command } from 'commander';
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
  only?: 'flux' | 'argocd';
}

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

/** The Flux and/or Argo CD objects for these options (validated: throws a message fit for the user). */
export function bootstrapObjects(input: Partial<BootstrapOptions> & { repo: string }): { path: string; flux: BootstrapObject[]; argocd: BootstrapObject[] } {
  const o: BootstrapOptions = { ...BOOTSTRAP_DEFAULTS, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) } as BootstrapOptions;
  if (!o.repo) throw new Error('--repo is required');
  const layout = checkLayoutOptions({ basePath: o.basePath, cluster: o.cluster });
  const name = o.name ?? `kiln-${layout.cluster}`;
  for (const [flag, value] of [['--name', name], ['--namespace', o.namespace], ['--argocd-namespace', o.argocdNamespace]] as const) {
    if (value.length > 63 || !DNS_LABEL.test(value)) throw new Error(`${flag} must be a DNS-1123 label (got ${JSON.stringify(value)})`);
  }
  for (const [flag, value] of [['--interval', o.interval], ['--sync-interval', o.syncInterval]] as const) {
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
  return { path, flux: o.only === 'argocd' ? [] : flux, argocd: o.only === 'flux' ? [] : argocd };
}

/** The YAML kiln gitops bootstrap prints. */
export function bootstrapYaml(input: Partial<BootstrapOptions> & { repo: string }): string {
  const { path, flux, argocd } = bootstrapObjects(input);
  const docs: string[] = [];
  const both = flux.length > 0 && argocd.length > 0;
  const head = `# Generated by kiln gitops bootstrap: consumers of ${path} in the repository, where kiln's git mode commits.\n${both ? '# Apply the Flux objects or the Argo CD Application, not both.\n' : ''}`;
  flux.forEach((obj, i) => docs.push(`${i === 0 ? `${head}# Flux: the branch as a source, and the directory applied from it.\n` : ''}${toYaml(obj)}`));
  argocd.forEach((obj) => docs.push(`${flux.length === 0 ? head : ''}# Argo CD: the same directory as an Application.\n${toYaml(obj)}`));
  return docs.join('---\n');
}

export function registerGitops(program: Command): void {
  const gitops = program.command('gitops').description('Helpers for git mode: what Flux or Argo CD need to consume the repository kiln writes.');
  gitops
    .command('bootstrap')
    .description('Print a Flux GitRepository + Kustomization and an Argo CD Application that apply <base-path>/<cluster> from the repository.')
    .requiredOption('--repo <url>', 'repository URL, as Flux / Argo CD fetch it')
    .option('--branch <branch>', 'branch to follow (kiln controller --branch)', BOOTSTRAP_DEFAULTS.branch)
    .option('--base-path <path>', 'the directory kiln owns in the repository', BOOTSTRAP_DEFAULTS.basePath)
    .option('--cluster <name>', 'the cluster\'s directory under the base path', BOOTSTRAP_DEFAULTS.cluster)
    .option('--namespace <ns>', 'namespace of the Flux objects', BOOTSTRAP_DEFAULTS.namespace)
    .option('--argocd-namespace <ns>', 'namespace of the Argo CD Application', BOOTSTRAP_DEFAULTS.argocdNamespace)
    .option('--name <name>', 'name of the objects (default kiln-<cluster>)')
    .option('--interval <duration>', 'Flux: how often the repository is fetched', BOOTSTRAP_DEFAULTS.interval)
    .option('--sync-interval <duration>', 'Flux: how often the cluster is reconciled with the directory', BOOTSTRAP_DEFAULTS.syncInterval)
    .option('--secret-ref <name>', 'Flux: Secret holding the repository credentials (private repositories)')
    .option('--project <name>', 'Argo CD project', BOOTSTRAP_DEFAULTS.project)
    .option('--only <tool>', 'print only the objects of one tool: flux or argocd')
    .action((opts: Partial<BootstrapOptions> & { repo: string; only?: string }) => {
      if (opts.only !== undefined && opts.only !== 'flux' && opts.only !== 'argocd') {
        process.stderr.write(`kiln gitops bootstrap: --only must be flux or argocd (got ${JSON.stringify(opts.only)})\n`);
        process.exitCode = 2;
        return;
      }
      let text: string;
      try {
        text = bootstrapYaml(opts as Partial<BootstrapOptions> & { repo: string });
      } catch (err) {
        process.stderr.write(`kiln gitops bootstrap: ${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      if (publicUrl(opts.repo) !== opts.repo) process.stderr.write('kiln gitops bootstrap: credentials in --repo are not printed; give Flux and Argo CD their own\n');
      process.stdout.write(text);
    });
}
