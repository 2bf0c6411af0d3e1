/**
 * What each kiln component may do in the cluster, one rule per behaviour, so
 * that a test can drop any single rule and show what breaks
 * (test/integration/rbac.test.ts holds the table rule id -> behaviour).
 *
 * Derived from the code, not guessed:
 * - the controller watches kiln's kinds (controller/manager.ts: informers =
 *   list + watch; no GET: reconcilers read the caches), server-side applies
 *   status (PATCH .../status), merge-patches the ApplySet labels and
 *   annotations onto each resource (controller/apply/reconciler.ts) and the
 *   ConfigMapSync finalizer (kinds/config-map-sync/finalizer.ts);
 * - apply mode also watches the kinds it renders (kinds/api.ts
 *   CHILD_KINDS, label selector managed-by=kiln), applies them (a server-side
 *   apply PATCH, which the API server authorizes as `create` when the object
 *   does not exist yet and as `patch` when it does), prunes them with DELETE (never a
 *   PersistentVolumeClaim);
 * - apply mode requests ServiceAccount tokens for ConfigMapSync (whose copies
 *   are written with the tenant's token, not these rules) only in the
 *   namespaces the platform admin opted in (TOKEN_RULES: a ClusterRole bound
 *   by a RoleBinding per namespace, never cluster-wide);
 * - both record Events (POST only) and hold a Lease in their own namespace
 *   (kube/leader.ts: read, create, replace);
 * - git mode applies nothing: no write on any rendered kind; it lists and
 *   watches Jobs (kiln's, managed-by=kiln), whose completion a restore's
 *   VolumeSnapshot waits for before it is committed (kinds/registry.ts
 *   childKindsWaitedFor);
 * - the agent (agent/) watches DirectoryService, PostgresInstance,
 *   PostgresDatabase and Secrets (metadata only), reads by name the Secrets
 *   kiln resources name, creates or patches Secrets it generates and applies
 *   connection Secrets, writes its conditions into status, and adds and removes
 *   PostgresDatabase finalizers.
 *
 * No wildcard verb, resource or group anywhere; Secrets only for the agent.
 *
 * The same lists serve both forms of the install (grants() below): the default
 * binds them cluster-wide, a namespace-scoped install (`kiln install
 * --namespaced -n <ns>`) grants each in a Role in every watched namespace, so a
 * rule added here lands in both.
 */
import { KINDS } from '../crds/schema/kinds.js';
import { GROUP } from '../kinds/api.js';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface NamedRule {
  /** Stable id: tests refer to rules by it. */
  id: string;
  /** What the component does with it. */
  why: string;
  rule: PolicyRule;
  /**
   * Namespace-scoped install: the one namespace this rule is granted in, when it
   * is not the watched namespaces (a request on a Namespace object is authorized
   * in that namespace, so a Role there grants it).
   */
  namespacedIn?: string;
}

export type Component = 'controller-apply' | 'controller-git' | 'agent';

/** PostgresDatabase is the agent's: the controller neither watches nor renders it. */
const CONTROLLER_KINDS = KINDS.filter((k) => k.kind !== 'PostgresDatabase')
  .map((k) => k.plural)
  .sort();
const AGENT_KINDS = ['directoryservices', 'etcdclusters', 'postgresdatabases', 'postgresinstances'];

const kilnRead = (kinds: string[]): NamedRule => ({
  id: 'kiln-watch',
  why: 'list and watch the kiln resources it serves (its informers)',
  rule: { apiGroups: [GROUP], resources: kinds, verbs: ['list', 'watch'] },
});
const kilnStatus = (kinds: string[]): NamedRule => ({
  id: 'kiln-status',
  why: 'write status (conditions, inventory, commit) by server-side apply of the status subresource',
  rule: { apiGroups: [GROUP], resources: kinds.map((k) => `${k}/status`), verbs: ['patch'] },
});
const eventsCreate: NamedRule = {
  id: 'events',
  why: 'record Events on the resources it serves',
  rule: { apiGroups: [''], resources: ['events'], verbs: ['create'] },
};

/** Cluster-wide rules of the apply-mode controller. */
export const CONTROLLER_APPLY_RULES: NamedRule[] = [
  kilnRead(CONTROLLER_KINDS),
  {
    id: 'kiln-patch',
    why: 'label each resource as its ApplySet parent and add or remove the ConfigMapSync finalizer (merge and JSON patches)',
    rule: { apiGroups: [GROUP], resources: CONTROLLER_KINDS, verbs: ['patch'] },
  },
  kilnStatus(CONTROLLER_KINDS),
  {
    id: 'core-children',
    why: 'watch, server-side apply (create, then patch) and prune the ConfigMaps and Services it renders; get one whose owned fields it has no record of, to compare',
    rule: { apiGroups: [''], resources: ['configmaps', 'services'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'] },
  },
  {
    id: 'claims',
    why: 'watch, get (to compare) and server-side apply the claims of DirectoryBackup and DirectoryRestore; claims are never pruned, so no delete',
    rule: { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['create', 'get', 'list', 'patch', 'watch'] },
  },
  {
    id: 'statefulsets',
    why: 'watch, get (to compare), server-side apply and prune StatefulSets (their status feeds status.readyReplicas)',
    rule: { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'] },
  },
  {
    id: 'deployments',
    why: 'watch, get (to compare), server-side apply and prune the Deployments of Memcached (their status feeds status.readyReplicas)',
    rule: { apiGroups: ['apps'], resources: ['deployments'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'] },
  },
  {
    id: 'pods',
    why: "list and watch the metadata of the pods of kiln's workloads whose kind lists them in status (Memcached status.nodes)",
    rule: { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
  },
  {
    id: 'jobs',
    why: 'watch, get (to compare), server-side apply and prune the Jobs of DirectoryBackup and DirectoryRestore',
    rule: { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'] },
  },
  {
    id: 'poddisruptionbudgets',
    why: 'watch, get (to compare), server-side apply and prune PodDisruptionBudgets',
    rule: { apiGroups: ['policy'], resources: ['poddisruptionbudgets'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'] },
  },
  {
    id: 'volumesnapshots',
    why: 'watch, get (to compare), server-side apply and prune the VolumeSnapshots of DirectoryBackup and DirectoryRestore',
    rule: { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshots'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'] },
  },
  eventsCreate,
];

/**
 * The apply-mode controller's TokenRequest right, in a ClusterRole of its own
 * that is bound per namespace only (a RoleBinding in each namespace where
 * ConfigMapSync may act as a ServiceAccount: `kiln install
 * --token-namespace`, or the platform admin's own RoleBinding). Bound
 * cluster-wide it would let the controller mint a token for any
 * ServiceAccount in the cluster (kube-system's included), so a compromised
 * controller would hold every identity. Per-namespace binding is what RBAC
 * enforces and a SubjectAccessReview shows; an opt-in annotation on the
 * ServiceAccount would be checked only by kiln's own code, which is exactly
 * what must not be trusted here. A platform admin who wants it narrower
 * still binds a Role of their own with resourceNames (the ServiceAccounts).
 */
export const TOKEN_RULES: NamedRule[] = [
  {
    id: 'serviceaccount-tokens',
    why: "request a token for a ConfigMapSync's spec.serviceAccountName (TokenRequest) in a namespace bound to it; the copies are written with that token's rights",
    rule: { apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] },
  },
];

/** Cluster-wide rules of the git-mode controller: it reads resources and writes status; Git gets the rest. */
export const CONTROLLER_GIT_RULES: NamedRule[] = [
  kilnRead(CONTROLLER_KINDS),
  kilnStatus(CONTROLLER_KINDS),
  eventsCreate,
  {
    id: 'cluster-identity',
    why: "read the kube-system namespace's UID, the cluster's identity kept in <base-path>/<cluster>/.kiln-cluster: a controller of another cluster (or a wrong kube context) with the same --cluster is refused",
    rule: { apiGroups: [''], resources: ['namespaces'], resourceNames: ['kube-system'], verbs: ['get'] },
    namespacedIn: 'kube-system',
  },
  {
    id: 'jobs-watch',
    why: "list and watch kiln's Jobs as Flux applied them (label managed-by=kiln, conditions only): a DirectoryRestore's VolumeSnapshot is committed once its Job is Complete",
    rule: { apiGroups: ['batch'], resources: ['jobs'], verbs: ['list', 'watch'] },
  },
];

/** git mode with --flux: in the Flux Kustomization's namespace only (a RoleBinding there). */
export const FLUX_RULES: NamedRule[] = [
  {
    id: 'flux-kustomizations',
    why: "read the Flux Kustomization named by --flux (watch: its status says whether Flux applied kiln's commit); a resource is Ready only then",
    rule: { apiGroups: ['kustomize.toolkit.fluxcd.io'], resources: ['kustomizations'], verbs: ['get', 'list', 'watch'] },
  },
  {
    id: 'flux-fetch',
    why: "ask Flux to fetch after each push: the reconcile.fluxcd.io/requestedAt annotation on the Kustomization's GitRepository (what `flux reconcile source git` writes)",
    rule: { apiGroups: ['source.toolkit.fluxcd.io'], resources: ['gitrepositories'], verbs: ['patch'] },
  },
];

/** Cluster-wide rules of the runtime agent. */
export const AGENT_RULES: NamedRule[] = [
  kilnRead(AGENT_KINDS),
  kilnStatus(AGENT_KINDS),
  {
    id: 'database-finalizers',
    why: 'add and remove the PostgresDatabase finalizer (reclaimPolicy Delete) by server-side apply',
    rule: { apiGroups: [GROUP], resources: ['postgresdatabases'], verbs: ['patch'] },
  },
  {
    // Each verb, and what needs it:
    // - list, watch: the agent's Secret informer, so a changed password or CA wakes the resources naming it at
    //   once. It asks for metadata only (PartialObjectMetadata, agent/secret-cache.ts): no Secret's data is sent
    //   to the agent, and of the metadata it keeps names and resourceVersions.
    // - get: the Secrets a kiln resource names, read by name when the informer shows a new resourceVersion
    //   (ReferencedSecrets), and before generating a missing superuser password (agent/secrets.ts).
    // - create: a superuser Secret that does not exist yet (POST), and a new connection Secret (a server-side
    //   apply PATCH, authorized as create when the object does not exist).
    // - patch: a create: true key added to an existing Secret (merge patch), a connection Secret brought up to date
    //   (server-side apply).
    // What RBAC cannot say: "only the Secrets a kiln resource names" (tenants choose those names at run time;
    // resourceNames is fixed at install, and a list or watch cannot be limited by it anyway) and "metadata only"
    // (a metadata list is authorized as a list: these rights would let a stolen token read every Secret in
    // reach). What it can say, kiln says: with --agent-namespace this rule is bound by a RoleBinding in each of
    // those namespaces only (kube-system's and other teams' Secrets out of reach), and no delete, no update.
    id: 'secrets',
    why: 'notice changes to Secrets (list, watch: metadata only), read by name the Secrets resources name (passwords, superuser, truststore, TLS CA), generate missing ones and write connection Secrets',
    rule: { apiGroups: [''], resources: ['secrets'], verbs: ['create', 'get', 'list', 'patch', 'watch'] },
  },
  // EtcdCluster membership (agent/etcd-reconciler.ts). Five rules, because one rule grants each of its verbs on
  // each of its resources: the agent may scale a StatefulSet but not patch its spec.
  {
    id: 'etcd-statefulsets',
    why: "read an EtcdCluster's StatefulSet (its replicas, and that kiln's labels are on it)",
    rule: { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get'] },
  },
  {
    id: 'etcd-scale',
    why: "grow and shrink an EtcdCluster's StatefulSet one member at a time, through its scale subresource, around MemberAdd and MemberRemove",
    rule: { apiGroups: ['apps'], resources: ['statefulsets/scale'], verbs: ['patch'] },
  },
  {
    id: 'etcd-members',
    why: 'read, create and update the ConfigMap <name>-members the members read at start (initial cluster and state)',
    rule: { apiGroups: [''], resources: ['configmaps'], verbs: ['create', 'get', 'patch'] },
  },
  {
    id: 'etcd-claims',
    why: 'start a replaced etcd member on an empty volume: delete its claim (the StatefulSet makes a new one)',
    rule: { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['delete'] },
  },
  {
    id: 'etcd-pods',
    why: "restart etcd members one at a time after a template change (read each pod's revision, delete the next one), and restart a replaced member",
    rule: { apiGroups: [''], resources: ['pods'], verbs: ['delete', 'get'] },
  },
  eventsCreate,
];

/**
 * Rules in the component's own namespace: its leader-election Lease (create cannot be limited to a
 * name), and with static shards one Lease per shard (`<name>-<shard>`).
 */
export function leaseRules(leaseName: string, ...shardLeases: string[]): NamedRule[] {
  return [
    {
      id: 'lease-create',
      why: 'create the leader-election Lease the first time',
      rule: { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    },
    {
      id: 'lease',
      why: `read and renew the leader-election Lease ${[leaseName, ...shardLeases].join(', ')}`,
      rule: { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [leaseName, ...shardLeases], verbs: ['get', 'update'] },
    },
  ];
}

/**
 * Dynamic sharding's Leases in the component's namespace: each replica creates and renews its own
 * (`<ring>-<replica>`: a name no rule can know in advance), the assigner watches them all and
 * deletes those of replicas gone, and the replicas campaign for `<ring>-sharder`.
 */
export function ringLeaseRules(ring: string): NamedRule[] {
  return [
    leaseRules(ring)[0]!,
    {
      id: 'lease-ring',
      why: `hold this replica's Lease ${ring}-<replica> and campaign for ${ring}-sharder; the assigner lists and watches the ring's Leases and deletes those silent for ten minutes`,
      rule: { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['delete', 'get', 'list', 'update', 'watch'] },
    },
  ];
}

export function clusterRules(component: Component): NamedRule[] {
  return component === 'controller-apply' ? CONTROLLER_APPLY_RULES : component === 'controller-git' ? CONTROLLER_GIT_RULES : AGENT_RULES;
}

/** One role of a component and where it is bound. */
export interface Grant {
  /** ClusterRole in the default install, Role (one per namespace) in a namespace-scoped one. */
  kind: 'ClusterRole' | 'Role';
  /** The role's (and its bindings') name. */
  name: string;
  rules: NamedRule[];
  /** 'cluster': a ClusterRoleBinding; else a RoleBinding in each namespace (for a Role: the Role too). */
  boundIn: 'cluster' | string[];
}

export interface GrantScope {
  /** The component's name (<install>-controller, <install>-agent): ServiceAccount, roles, Lease. */
  name: string;
  /** Where kiln runs: the Lease's namespace. */
  installNamespace: string;
  /** Namespace-scoped install: the namespaces it watches. Undefined: every namespace, cluster-wide rules. */
  watched?: string[];
  /** controller-apply: where ConfigMapSync may act as a ServiceAccount. */
  tokenNamespaces?: string[];
  /** controller-git with --flux: the Kustomization's namespace. */
  fluxNamespace?: string;
  /** agent, default install: the namespaces its Secret rights are bound in (none: cluster-wide). */
  agentNamespaces?: string[];
  /** Static shards (kiln install --shards): each runs a Deployment of its own on the Lease `<name>-<shard>`. */
  shards?: string[];
  /** Dynamic sharding: the replicas' ring Leases (`<name>-<replica>`, `<name>-sharder`), not one named Lease. */
  dynamicSharding?: boolean;
}

const uniqueSorted = (xs: string[]) => [...new Set(xs)].sort();

/**
 * The roles of one component, from the rule lists above. The default install:
 * one ClusterRole bound cluster-wide, plus rules bound per namespace only
 * (tokens, Flux, the agent's Secrets with --agent-namespace) as a ClusterRole
 * with a RoleBinding in each. Namespace-scoped: the same rules as Roles, the
 * main one in every watched namespace; nothing cluster-scoped at all.
 */
export function grants(component: Component, s: GrantScope): Grant[] {
  const perNamespace: { id: string; rules: NamedRule[]; namespaces: string[] }[] = [];
  if (component === 'controller-apply') perNamespace.push({ id: 'serviceaccount-tokens', rules: TOKEN_RULES, namespaces: s.tokenNamespaces ?? [] });
  if (component === 'controller-git' && s.fluxNamespace !== undefined) perNamespace.push({ id: 'flux', rules: FLUX_RULES, namespaces: [s.fluxNamespace] });
  const agentNamespaces = uniqueSorted(s.agentNamespaces ?? []);
  if (component === 'agent' && s.watched === undefined && agentNamespaces.length) {
    perNamespace.push({ id: 'secrets', rules: AGENT_RULES.filter((r) => r.id === 'secrets' || r.id.startsWith('etcd-')), namespaces: agentNamespaces });
  }
  // A rule granted per namespace is not also granted with the main role.
  const main = clusterRules(component).filter((r) => !perNamespace.some((p) => p.rules.some((n) => n.id === r.id)));
  const lease: Grant = {
    kind: 'Role',
    name: `${s.name}-leader-election`,
    rules: s.dynamicSharding ? ringLeaseRules(s.name) : leaseRules(s.name, ...(s.shards ?? []).map((shard) => `${s.name}-${shard}`)),
    boundIn: [s.installNamespace],
  };
  if (s.watched === undefined) {
    return [
      { kind: 'ClusterRole', name: s.name, rules: main, boundIn: 'cluster' },
      ...perNamespace.map((p): Grant => ({ kind: 'ClusterRole', name: `${s.name}-${p.id}`, rules: p.rules, boundIn: uniqueSorted(p.namespaces) })),
      lease,
    ];
  }
  const elsewhere = main.filter((r) => r.namespacedIn !== undefined);
  return [
    { kind: 'Role', name: s.name, rules: main.filter((r) => r.namespacedIn === undefined), boundIn: uniqueSorted(s.watched) },
    ...elsewhere.map((r): Grant => ({ kind: 'Role', name: `${s.name}-${r.id}`, rules: [r], boundIn: [r.namespacedIn!] })),
    ...perNamespace.map((p): Grant => ({ kind: 'Role', name: `${s.name}-${p.id}`, rules: p.rules, boundIn: uniqueSorted(p.namespaces) })),
    lease,
  ];
}
