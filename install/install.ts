/**
 * kiln's own install manifests, rendered by kiln's cdk8s constructs: the
 * CRDs (crds/*.yaml), the namespace, a ServiceAccount, least-privilege RBAC
 * (install/rbac.ts), a metrics Service and a Deployment for the
 * controller (apply or git mode) and for the runtime agent.
 *
 * No Secret is rendered: git mode mounts a Secret the operator creates
 * (`--git-token-secret`, key `token`) and passes the file to --git-token-file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KILN_ENTRYPOINT, NODE_ENV, NODE_FLAGS } from './node-runtime.js';
import { ApiObject, App, Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { crdDirectory } from '../lib/paths.js';
import { fromYaml } from '../lib/yaml.js';
import { compareObjects } from '../kinds/object-order.js';
import type { K8sObject } from '../kinds/types.js';
import { parseFluxRef } from '../gitops/flux.js';
import { SHARD_LABEL } from '../lib/shard.js';
import { grants, type Component, type GrantScope, type NamedRule, type PolicyRule } from './rbac.js';

export interface GitInstallOptions {
  repo: string;
  branch: string;
  basePath?: string;
  /** This cluster's directory under the base path; no default, as the controller's --cluster. */
  cluster: string;
  /** Secret in the install namespace holding the token under key `token`; none for a repository that needs no token. */
  tokenSecret?: string;
  /** Basic or Bearer (sets $KILN_GIT_AUTH_SCHEME); default: the controller's default. */
  authScheme?: 'Basic' | 'Bearer';
  /** $KILN_GIT_USERNAME for Basic. */
  username?: string;
  review?: boolean;
  reviewBranch?: string;
  pullRequestApi?: string;
  author?: string;
  committer?: string;
  /** Passes --allow-insecure-http: plain http:// for loopback test servers. */
  allowInsecureHttp?: boolean;
  debounceMs?: number;
  maxWaitMs?: number;
  /** `--flux <namespace>/<name>`: the Flux Kustomization kiln follows; its rights are granted in that namespace only. */
  flux?: string;
}

export interface InstallOptions {
  mode: 'apply' | 'git';
  version: string;
  /** Namespace kiln runs in (default kiln-system). */
  namespace?: string;
  /** Container image (default kiln:<version>). */
  image?: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Controller replicas (leader election keeps one active). Default 1. */
  replicas?: number;
  /** Render the runtime agent. Default true. */
  agent?: boolean;
  agentReplicas?: number;
  /** CRDs: include (default), skip (everything else), only (just the CRDs). */
  crds?: 'include' | 'skip' | 'only';
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** git mode only. */
  git?: GitInstallOptions;
  /**
   * Name of this installation (default kiln): the components are <name>-controller
   * and <name>-agent (Deployments, ServiceAccounts, ClusterRoles, Leases).
   */
  name?: string;
  /**
   * Namespaces where ConfigMapSync may act as a ServiceAccount: the apply-mode
   * controller gets a RoleBinding there to its TokenRequest ClusterRole
   * (<name>-controller-serviceaccount-tokens) and nowhere else. More can be
   * bound later by hand, with a RoleBinding to that ClusterRole.
   */
  tokenNamespaces?: string[];
  /**
   * Namespaces the agent serves. Given, the agent watches only these and its
   * Secret rights are a ClusterRole (<name>-agent-secrets) bound by a
   * RoleBinding in each, so it can read no Secret elsewhere (kube-system's,
   * other teams'). Default: every namespace, with cluster-wide Secret rights.
   */
  agentNamespaces?: string[];
  /**
   * A namespace-scoped install: the controller and the agent watch only these
   * namespaces (their `-n`), and every right is a Role bound in the namespace it
   * is used in: the kiln rules in each of these, the Lease in `namespace`,
   * TokenRequest in each tokenNamespaces (a subset of these), Flux's in the
   * Kustomization's namespace, git mode's cluster identity in kube-system.
   * Nothing cluster-scoped is rendered: no ClusterRole or ClusterRoleBinding,
   * no Namespace (`namespace` must exist), no CRDs (a cluster admin applies
   * them: `crds: 'only'`).
   */
  watchNamespaces?: string[];
  /**
   * Rules to leave out, to show what breaks without them: `component:rule-id`
   * drops a rule, `component:rule-id:verb` one verb of it (e.g.
   * `controller-apply:jobs:patch`). Components: controller-apply, controller-git, agent.
   */
  omitRules?: string[];
  /**
   * Static shards (`kiln install --shards shard1,shard2`), as Flux's: the controller (and the agent)
   * gets one more Deployment per shard, `<name>-controller-<shard>` with
   * `--watch-label-selector kiln.dev/shard=<shard>` on the Lease of the same name, and the main one
   * takes `!kiln.dev/shard` (every resource without the label). They share the component's
   * ServiceAccount and rights; the Lease Role names every shard's Lease.
   */
  shards?: string[];
  /**
   * Dynamic sharding (`kiln install --sharding dynamic`, apply mode): every controller replica works,
   * `--sharding dynamic` instead of `--leader-elect`, each on a Lease of its own; the Lease Role then
   * lets it list, watch and update the ring's Leases and delete those of members gone.
   */
  sharding?: 'dynamic';
}

/** A shard name is a label value and a part of Deployment, Lease and Service names. */
const SHARD_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Why `shards` cannot be rendered for an install named `instance`, if they cannot; the checks the command runs too. */
export function shardsProblem(shards: readonly string[], instance: string): string | undefined {
  const seen = new Set<string>();
  for (const shard of shards) {
    if (!SHARD_NAME.test(shard)) return `--shards: ${JSON.stringify(shard)} is not a shard name (lower-case letters, digits and '-', starting and ending with a letter or digit)`;
    // `!kiln.dev/shard` goes by "unsharded" (its Lease with the default --leader-election-id): no shard may take it.
    if (shard === 'unsharded') return '--shards: "unsharded" is the name of the resources without the kiln.dev/shard label; choose another';
    if (seen.has(shard)) return `--shards: ${JSON.stringify(shard)} is given twice`;
    seen.add(shard);
    // The longest name made from it: the controller shard's metrics Service (a DNS-1035 label, at most 63 characters).
    const longest = `${instance}-controller-${shard}-metrics`;
    if (longest.length > 63) return `--shards: ${JSON.stringify(shard)} is too long: ${longest} would be ${longest.length} characters (at most 63)`;
  }
  return undefined;
}

export const METRICS_PORT = 8080;
export const HEALTH_PORT = 8081;
export const GIT_TOKEN_DIR = '/var/run/secrets/kiln/git';
/** The image's user (node's `node` user in node:24-slim). */
const RUN_AS = 1000;

function labels(instance: string, component: string, version: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'kiln',
    'app.kubernetes.io/instance': instance,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': 'kiln',
    'app.kubernetes.io/version': version,
  };
}

function selector(instance: string, component: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'kiln', 'app.kubernetes.io/instance': instance, 'app.kubernetes.io/component': component };
}

/** The rules left after `omit` (see InstallOptions.omitRules). */
export function keepRules(component: Component, rules: NamedRule[], omit: string[]): PolicyRule[] {
  return rules.flatMap((r) => {
    if (omit.includes(`${component}:${r.id}`)) return [];
    const verbs = r.rule.verbs.filter((v) => !omit.includes(`${component}:${r.id}:${v}`));
    return verbs.length ? [{ ...r.rule, verbs }] : [];
  });
}

/** The CRDs exactly as crds/*.yaml holds them. */
export class KilnCrds extends Construct {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    const dir = crdDirectory();
    for (const file of readdirSync(dir)
      .filter((f) => f.endsWith('.yaml'))
      .sort()) {
      const crd = fromYaml(readFileSync(join(dir, file), 'utf8')) as { apiVersion: string; kind: string; metadata: { name: string } } & Record<string, unknown>;
      const { apiVersion, kind, metadata, ...rest } = crd;
      new ApiObject(this, crd.metadata.name, { apiVersion, kind, metadata, ...rest });
    }
  }
}

interface ComponentProps {
  instance: string;
  namespace: string;
  version: string;
  /** controller-apply, controller-git or agent: which rules. */
  rules: Component;
  /** Deployment, ServiceAccount, roles and Lease name. */
  name: string;
  component: 'controller' | 'agent';
  image: string;
  imagePullPolicy: string;
  replicas: number;
  args: string[];
  env?: k8s.EnvVar[];
  volumes?: k8s.Volume[];
  volumeMounts?: k8s.VolumeMount[];
  resources: { cpu: string; memory: string; memoryLimit: string };
  omitRules: string[];
  /** Where its rules are granted (install/rbac.ts grants()); name and installNamespace come from the props above. */
  scope: Omit<GrantScope, 'name' | 'installNamespace' | 'shards'>;
  /** Static shards: one Deployment (and metrics Service) more per shard; the main one takes the unlabelled rest. */
  shards?: string[];
}

/**
 * The arguments of a shard's process: the component's own, on the shard's Lease, with the shard's
 * selector. `shard` undefined: the main process, which takes every resource without the label.
 */
function shardArgs(args: string[], name: string, shard: string | undefined): string[] {
  const out = [...args];
  const id = out.indexOf('--leader-election-id');
  if (shard !== undefined && id >= 0) out[id + 1] = `${name}-${shard}`;
  return [...out, '--watch-label-selector', shard === undefined ? `!${SHARD_LABEL}` : `${SHARD_LABEL}=${shard}`];
}

/** One kiln process: its identity, its rights, its Deployment and its metrics Service. */
export class KilnComponent extends Construct {
  constructor(scope: Construct, id: string, p: ComponentProps) {
    super(scope, id);
    const meta = (name: string, namespaced = true) => ({ name, ...(namespaced ? { namespace: p.namespace } : {}), labels: labels(p.instance, p.component, p.version) });
    const keep = (rules: NamedRule[]) => keepRules(p.rules, rules, p.omitRules);
    new k8s.KubeServiceAccount(this, 'ServiceAccount', { metadata: meta(p.name), automountServiceAccountToken: true });
    const subjects = [{ kind: 'ServiceAccount', name: p.name, namespace: p.namespace }];
    for (const g of grants(p.rules, { ...p.scope, name: p.name, installNamespace: p.namespace, shards: p.shards })) {
      const roleRef = { apiGroup: 'rbac.authorization.k8s.io', kind: g.kind, name: g.name };
      if (g.kind === 'ClusterRole') new k8s.KubeClusterRole(this, `ClusterRole-${g.name}`, { metadata: meta(g.name, false), rules: keep(g.rules) });
      if (g.boundIn === 'cluster') {
        new k8s.KubeClusterRoleBinding(this, `ClusterRoleBinding-${g.name}`, { metadata: meta(g.name, false), roleRef, subjects });
        continue;
      }
      for (const ns of g.boundIn) {
        if (g.kind === 'Role') new k8s.KubeRole(this, `Role-${g.name}-${ns}`, { metadata: { ...meta(g.name), namespace: ns }, rules: keep(g.rules) });
        new k8s.KubeRoleBinding(this, `RoleBinding-${g.name}-${ns}`, { metadata: { ...meta(g.name), namespace: ns }, roleRef, subjects });
      }
    }
    const shards = p.shards ?? [];
    for (const shard of [undefined, ...shards]) this.process(p, shard, shards.length > 0);
  }

  /**
   * The metrics Service and the Deployment of the component, or of one of its shards: a shard's pods
   * carry the component label `<component>-<shard>`, so that no two Deployments select the same pods.
   */
  private process(p: ComponentProps, shard: string | undefined, sharded: boolean): void {
    const name = shard === undefined ? p.name : `${p.name}-${shard}`;
    const component = shard === undefined ? p.component : `${p.component}-${shard}`;
    const id = (what: string) => (shard === undefined ? what : `${what}-${shard}`);
    const meta = (n: string) => ({ name: n, namespace: p.namespace, labels: labels(p.instance, component, p.version) });
    const args = sharded ? shardArgs(p.args, p.name, shard) : p.args;
    new k8s.KubeService(this, id('MetricsService'), {
      metadata: meta(`${name}-metrics`),
      spec: {
        type: 'ClusterIP',
        selector: selector(p.instance, component),
        ports: [{ name: 'metrics', port: METRICS_PORT, targetPort: k8s.IntOrString.fromString('metrics'), protocol: 'TCP' }],
      },
    });
    const probe = (path: string, periodSeconds: number, failureThreshold: number): k8s.Probe => ({
      httpGet: { path, port: k8s.IntOrString.fromString('health'), scheme: 'HTTP' },
      periodSeconds,
      timeoutSeconds: 5,
      failureThreshold,
      successThreshold: 1,
    });
    new k8s.KubeDeployment(this, id('Deployment'), {
      metadata: meta(name),
      spec: {
        replicas: p.replicas,
        revisionHistoryLimit: 5,
        selector: { matchLabels: selector(p.instance, component) },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: k8s.IntOrString.fromNumber(1), maxUnavailable: k8s.IntOrString.fromNumber(0) } },
        template: {
          metadata: { labels: labels(p.instance, component, p.version), annotations: { 'kubectl.kubernetes.io/default-container': p.component } },
          spec: {
            serviceAccountName: p.name,
            automountServiceAccountToken: true,
            enableServiceLinks: false,
            terminationGracePeriodSeconds: 30,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: RUN_AS,
              runAsGroup: RUN_AS,
              fsGroup: RUN_AS,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: p.component,
                image: p.image,
                imagePullPolicy: p.imagePullPolicy,
                command: ['node', ...NODE_FLAGS, KILN_ENTRYPOINT],
                args,
                env: [
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                  ...Object.entries(NODE_ENV).map(([name, value]) => ({ name, value })),
                  // git writes its configuration and credentials helpers under HOME: the writable /tmp.
                  { name: 'HOME', value: '/tmp' },
                  ...(p.env ?? []),
                ],
                ports: [
                  { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
                  { name: 'health', containerPort: HEALTH_PORT, protocol: 'TCP' },
                ],
                startupProbe: probe('/healthz', 2, 30),
                livenessProbe: probe('/healthz', 20, 3),
                readinessProbe: probe('/readyz', 10, 3),
                resources: {
                  requests: { cpu: k8s.Quantity.fromString(p.resources.cpu), memory: k8s.Quantity.fromString(p.resources.memory) },
                  limits: { memory: k8s.Quantity.fromString(p.resources.memoryLimit) },
                },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  runAsNonRoot: true,
                  privileged: false,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, ...(p.volumeMounts ?? [])],
              },
            ],
            volumes: [{ name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('1Gi') } }, ...(p.volumes ?? [])],
          },
        },
      },
    });
  }
}

/** The whole installation as one chart. */
export class KilnInstallChart extends Chart {
  constructor(scope: Construct, id: string, o: InstallOptions) {
    super(scope, id, { disableResourceNameHashes: true });
    const watched = o.watchNamespaces?.length ? [...new Set(o.watchNamespaces)].sort() : undefined;
    if (watched) namespacedProblems(o, watched);
    // CRDs are cluster-scoped: a namespace-scoped install leaves them to a cluster admin (crds: 'only').
    const crds = o.crds ?? (watched ? 'skip' : 'include');
    if (crds !== 'skip') new KilnCrds(this, 'Crds');
    if (crds === 'only') return;
    const namespace = o.namespace ?? 'kiln-system';
    const image = o.image ?? `kiln:${o.version}`;
    const imagePullPolicy = o.imagePullPolicy ?? 'IfNotPresent';
    const logLevel = o.logLevel ?? 'info';
    const omitRules = o.omitRules ?? [];
    const instance = o.name ?? 'kiln';
    const CONTROLLER = `${instance}-controller`;
    const AGENT = `${instance}-agent`;
    const shards = o.shards ?? [];
    const shardProblem = shardsProblem(shards, instance);
    if (shardProblem) throw new Error(shardProblem);
    if (o.sharding === 'dynamic' && o.mode === 'git') throw new Error('--sharding dynamic is for apply mode: in git mode one writer owns a branch (use --shards)');
    // The ring is named after the controller: its Leases are <ring>-<replica> (cli/controller-command.ts checks the same).
    if (o.sharding === 'dynamic' && !/^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/.test(CONTROLLER))
      throw new Error(`--sharding dynamic: the ring is named ${CONTROLLER}, longer than 40 characters; choose a shorter --name`);
    if (o.sharding === 'dynamic' && shards.length > 0) throw new Error('--sharding dynamic and --shards: choose one (the dynamic ring assigns every resource itself)');
    // A Namespace is cluster-scoped: a namespace-scoped install runs in one that exists.
    if (!watched) {
      new k8s.KubeNamespace(this, 'Namespace', {
        metadata: {
          name: namespace,
          labels: {
            ...labels(instance, 'namespace', o.version),
            // Everything kiln runs passes the restricted Pod Security Standard.
            'pod-security.kubernetes.io/enforce': 'restricted',
            'pod-security.kubernetes.io/enforce-version': 'latest',
          },
        },
      });
    }
    const watchArgs = watched ? ['--namespace', watched.join(',')] : [];
    // Replicas stand by on the Lease (leader election is off unless asked for, as in kubebuilder).
    const common = [
      '--leader-elect',
      '--leader-election-namespace',
      namespace,
      '--metrics-bind-address',
      `:${METRICS_PORT}`,
      '--health-probe-bind-address',
      `:${HEALTH_PORT}`,
      '--log-level',
      logLevel,
    ];
    if (o.mode === 'git') {
      const g = o.git;
      if (!g?.repo || !g.branch || !g.cluster) throw new Error('git mode needs the repository URL, branch and cluster name');
      const args = [
        'controller',
        '--mode',
        'git',
        '--leader-election-id',
        CONTROLLER,
        ...common,
        '--repo',
        g.repo,
        '--branch',
        g.branch,
        '--base-path',
        g.basePath ?? 'clusters',
        '--cluster',
        g.cluster,
        ...watchArgs,
      ];
      if (g.allowInsecureHttp) args.push('--allow-insecure-http');
      if (g.tokenSecret) args.push('--git-token-file', `${GIT_TOKEN_DIR}/token`);
      if (g.reviewBranch) args.push('--review-branch', g.reviewBranch);
      else if (g.review) args.push('--review');
      if (g.pullRequestApi) args.push('--pull-request-api', g.pullRequestApi);
      if (g.author) args.push('--author', g.author);
      if (g.committer) args.push('--committer', g.committer);
      if (g.debounceMs !== undefined) args.push('--debounce', String(g.debounceMs));
      if (g.maxWaitMs !== undefined) args.push('--max-wait', String(g.maxWaitMs));
      const flux = g.flux !== undefined ? parseFluxRef(g.flux) : undefined;
      if (flux) args.push('--flux', `${flux.namespace}/${flux.name}`);
      const env: k8s.EnvVar[] = [];
      if (g.authScheme) env.push({ name: 'KILN_GIT_AUTH_SCHEME', value: g.authScheme });
      if (g.username) env.push({ name: 'KILN_GIT_USERNAME', value: g.username });
      new KilnComponent(this, 'Controller', {
        instance,
        namespace,
        version: o.version,
        rules: 'controller-git',
        name: CONTROLLER,
        component: 'controller',
        image,
        imagePullPolicy,
        replicas: o.replicas ?? 1,
        args,
        env,
        omitRules,
        // The token is a file from a Secret the operator creates; readable by the pod's group only.
        volumes: g.tokenSecret ? [{ name: 'git-token', secret: { secretName: g.tokenSecret, defaultMode: 0o440, items: [{ key: 'token', path: 'token' }] } }] : [],
        volumeMounts: g.tokenSecret ? [{ name: 'git-token', mountPath: GIT_TOKEN_DIR, readOnly: true }] : [],
        resources: { cpu: '200m', memory: '256Mi', memoryLimit: '1Gi' },
        scope: { watched, fluxNamespace: flux?.namespace },
        shards,
      });
    } else {
      new KilnComponent(this, 'Controller', {
        instance,
        namespace,
        version: o.version,
        rules: 'controller-apply',
        name: CONTROLLER,
        component: 'controller',
        image,
        imagePullPolicy,
        replicas: o.replicas ?? 1,
        args:
          o.sharding === 'dynamic'
            ? // Every replica works: a Lease of its own (<ring>-<replica>) instead of the leader's.
              ['controller', '--mode', 'apply', '--sharding', 'dynamic', '--sharding-ring', CONTROLLER, ...common.filter((a) => a !== '--leader-elect'), ...watchArgs]
            : ['controller', '--mode', 'apply', '--leader-election-id', CONTROLLER, ...common, ...watchArgs],
        omitRules,
        resources: { cpu: '200m', memory: '256Mi', memoryLimit: '1Gi' },
        scope: { watched, tokenNamespaces: o.tokenNamespaces ?? [], dynamicSharding: o.sharding === 'dynamic' },
        shards,
      });
    }
    const agentNamespaces = [...new Set(o.agentNamespaces ?? [])].sort();
    if (o.agent ?? true) {
      new KilnComponent(this, 'Agent', {
        instance,
        namespace,
        version: o.version,
        rules: 'agent',
        name: AGENT,
        component: 'agent',
        image,
        imagePullPolicy,
        replicas: o.agentReplicas ?? 1,
        omitRules,
        args: ['agent', '--leader-election-id', AGENT, ...common, ...(watched ? watchArgs : agentNamespaces.length ? ['--namespace', agentNamespaces.join(',')] : [])],
        // Namespaces given: the agent watches only them, and may read and write Secrets, and scale and delete
        // etcd members, only there.
        scope: { watched, agentNamespaces },
        resources: { cpu: '100m', memory: '128Mi', memoryLimit: '512Mi' },
        shards,
      });
    }
  }
}

/** Why a namespace-scoped install cannot be rendered as asked; throws the message. */
function namespacedProblems(o: InstallOptions, watched: string[]): void {
  if (o.crds === 'include') {
    throw new Error('a namespace-scoped install renders no CRDs (cluster-scoped objects): a cluster admin applies them first, kiln install --crds only');
  }
  if (o.agentNamespaces?.length) throw new Error('a namespace-scoped install: the agent serves the watched namespaces (-n); --agent-namespace is for the cluster-wide install');
  const unwatched = (o.tokenNamespaces ?? []).filter((ns) => !watched.includes(ns));
  if (unwatched.length) throw new Error(`--token-namespace ${unwatched.join(',')}: not watched; a ConfigMapSync there would never be reconciled (add it with -n)`);
}

/** Cluster-scoped and referenced objects first, workloads last (the order `kubectl apply -f` needs). */
const INSTALL_ORDER = ['CustomResourceDefinition', 'Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Service', 'Deployment'];

export function installObjects(o: InstallOptions): K8sObject[] {
  const app = new App();
  const chart = new KilnInstallChart(app, 'kiln-install', o);
  const objects = chart.toJson() as K8sObject[];
  const rank = (k: string) => (INSTALL_ORDER.includes(k) ? INSTALL_ORDER.indexOf(k) : INSTALL_ORDER.length);
  return objects.sort((a, b) => rank(a.kind) - rank(b.kind) || compareObjects(a, b));
}
