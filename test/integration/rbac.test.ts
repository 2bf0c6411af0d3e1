/**
 * The install manifests' RBAC is sufficient and minimal.
 *
 * Sufficient: `kiln controller` runs as a child process with a token for the
 * ServiceAccount the manifests create (never admin) and converges the examples.
 * Minimal: for every row of RULES, the ClusterRole (or the leader-election
 * Role) is applied again without one rule, or one verb of it, and a fresh
 * controller shows the behaviour that breaks, in its own logs or in the
 * resources' status; then the rule is put back.
 *
 * The agent's half follows the same pattern (AGENT_RULE_ROWS): `kiln agent`
 * with its ServiceAccount's token keeps real PostgreSQL and slapd servers
 * (test/harness) in step, and each of its rules is shown necessary.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { installObjects, type InstallOptions } from '../../install/install.js';
import { AGENT_RULES, clusterRules, CONTROLLER_APPLY_RULES, CONTROLLER_GIT_RULES, leaseRules, TOKEN_RULES, type Component, type NamedRule } from '../../install/rbac.js';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { applySetId } from '../../controller/apply/applyset.js';
import { render } from '../../kinds/render.js';
import { startServer, stopServer, type Server } from '../harness/controlplane.js';
import { freePorts } from '../harness/ports.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { refusedLine } from '../harness/refused.js';
import { initBareRepo, plainGit } from '../harness/git.js';
import { startPostgres, type PostgresServer } from '../harness/postgres.js';
import { startSlapd, type SlapdServer } from '../harness/slapd.js';
import { waitFor } from '../harness/wait.js';
import { exampleResources } from '../unit/fixtures.js';
import { applyObjects, freePort, removeKubeconfigs, serviceAccountKubeconfig, startKiln, suffix, uninstall, type KilnProcess } from './install-support.js';

let cp: ControlPlaneClient;
const id = suffix();
const installNs = `kiln-rbac-${id}`;
const name = `kr-${id}`;
const work = `kiln-rbac-work-${id}`;
const tenant = `kiln-rbac-tenant-${id}`;
const controllerSa = `${name}-controller`;
// ConfigMapSync may act as a ServiceAccount in `work` only (the platform admin's opt-in: --token-namespace).
const base: InstallOptions = { mode: 'apply', version: 'test', namespace: installNs, name, crds: 'skip', tokenNamespaces: [work] };
// Git mode: its own installation (same namespace), resources, and a bare repository on disk.
const gitName = `krg-${id}`;
const gitSa = `${gitName}-controller`;
const gitWork = `kiln-rbac-git-${id}`;
const scratch = mkdtempSync(join(tmpdir(), 'kiln-rbac-'));
const bare = join(scratch, 'deploy.git');
const gitBase: InstallOptions = {
  mode: 'git',
  version: 'test',
  namespace: installNs,
  name: gitName,
  crds: 'skip',
  agent: false,
  git: { repo: bare, branch: 'main', cluster: 'rbac', debounceMs: 200 },
};
let installed: K8sObject[] = [];
let kubeconfig = '';
let gitKubeconfig = '';
const running: KilnProcess[] = [];

const KINDS = ['DirectoryService', 'PostgresInstance', 'CacheCluster', 'DataGrid', 'DirectoryBackup', 'DirectoryRestore', 'Memcached'];
const examples = exampleResources()
  .map((e) => e.resource)
  .filter((r) => KINDS.includes(r.kind))
  .map((r) => ({ ...r, metadata: { ...r.metadata, namespace: work } }));
const sync = (n: string, ns = work, source = 'ca-bundle'): KilnResource => ({
  apiVersion: 'kiln.dev/v1alpha1',
  kind: 'ConfigMapSync',
  metadata: { name: n, namespace: ns },
  spec: { source: { name: source }, targets: { namespaces: [tenant] }, serviceAccountName: 'tenant-sync' },
});
const plural: Record<string, string> = {
  DirectoryService: 'directoryservices',
  PostgresInstance: 'postgresinstances',
  CacheCluster: 'cacheclusters',
  DataGrid: 'datagrids',
  DirectoryBackup: 'directorybackups',
  DirectoryRestore: 'directoryrestores',
  ConfigMapSync: 'configmapsyncs',
  Memcached: 'memcacheds',
  EtcdCluster: 'etcdclusters',
};
/** The agent's own kind (the controller's informers never list it). */
const AGENT_ONLY_PLURAL: Record<string, string> = { PostgresDatabase: 'postgresdatabases' };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getJson(args: string[]): Promise<any> {
  const r = await cp.kubectl(['get', ...args, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

/** Every kiln resource's conditions in the work namespace, for failure messages. */
async function conditions(ns = work): Promise<string> {
  return (await cp.kubectl(['get', 'kiln', '-n', ns, '-o', 'jsonpath={range .items[*]}{.kind}/{.metadata.name}: {.status.conditions}{"\\n"}{end}'])).stdout;
}

async function condition(kind: string, n: string, type: string, ns = work): Promise<{ status: string; reason: string; message: string } | undefined> {
  const o = await getJson(['-n', ns, `${plural[kind] ?? AGENT_ONLY_PLURAL[kind]}.kiln.dev`, n]);
  const c = o?.status?.conditions?.find((x: { type: string; observedGeneration?: number }) => x.type === type);
  // The agent's conditions carry their own observedGeneration (status.observedGeneration is the controller's).
  return c && (c.observedGeneration ?? o.status.observedGeneration) === o.metadata.generation ? c : undefined;
}

const create = (r: KilnResource) => cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(r) });
/** A fresh copy of the example of `kind`, named `n`. */
function example(kind: string, n: string, ns = work): KilnResource {
  const e = examples.find((r) => r.kind === kind)!;
  return { ...e, metadata: { name: n, namespace: ns } };
}

/**
 * `kiln` with the args of the installation's controller Deployment, plus its credentials, namespace (unless the
 * Deployment names its own: a namespace-scoped install) and free ports.
 */
async function startController(install: InstallOptions = base, extra: string[] = [], kubeconfigFile?: string): Promise<KilnProcess> {
  const port = await freePort();
  const deployment = installObjects(install).find((o) => o.kind === 'Deployment' && o.metadata.name.endsWith('-controller')) as unknown as {
    spec: { template: { spec: { containers: { args: string[] }[] } } };
  };
  const git = install.mode === 'git';
  const args = deployment.spec.template.spec.containers[0]!.args;
  const p = startKiln([
    ...args,
    '--kubeconfig',
    kubeconfigFile ?? (git ? gitKubeconfig : kubeconfig),
    ...(args.includes('--namespace') || extra.includes('-n') ? [] : ['-n', git ? gitWork : work]),
    '--metrics-bind-address',
    `127.0.0.1:${port}`,
    '--health-probe-bind-address',
    `127.0.0.1:${port}`,
    '--resync',
    '0',
    ...(git ? ['--work-dir', join(scratch, `clone-${running.length}-${Date.now()}`)] : []),
    ...extra,
  ]);
  running.push(p);
  return p;
}

async function stopAll(): Promise<void> {
  await Promise.all(running.splice(0).map((p) => p.stop()));
}

/** `kubectl auth can-i` for the first resource and verb a rule (or one verb of it) grants. */
async function canI(sa: string, rule: NamedRule, verb: string, namespace: string): Promise<boolean> {
  const r = rule.rule;
  const [resource, sub] = r.resources[0]!.split('/');
  const group = r.apiGroups[0] ? `.${r.apiGroups[0]}` : '';
  const target = r.resourceNames ? `${resource}${group}/${r.resourceNames[0]}` : `${resource}${group}`;
  const out = await cp.kubectl(['auth', 'can-i', verb, target, ...(sub ? ['--subresource', sub] : []), '-n', namespace, '--as', `system:serviceaccount:${installNs}:${sa}`]);
  return out.stdout.trim() === 'yes';
}

/**
 * Applies the ClusterRoles and Roles (the leader-election Role; every Role of a namespace-scoped install) without
 * `omit` and waits until the API server enforces it, as `kubectl auth can-i` in `served` shows.
 */
async function setRules(omit: string[], component: Component = 'controller-apply', sa = controllerSa, install: InstallOptions = base, served?: string): Promise<void> {
  const objs = installObjects({ ...install, omitRules: omit.map((o) => `${component}:${o}`) }).filter((o) => (o.kind === 'ClusterRole' || o.kind === 'Role') && o.metadata.name.startsWith(sa));
  expect((await applyObjects(cp, objs)).code).toBe(0);
  const rules = [...clusterRules(component), ...(component === 'controller-apply' ? TOKEN_RULES : []), ...leaseRules(sa)];
  for (const o of omit.length ? omit : rules.map((r) => r.id)) {
    const [ruleId, verb] = o.split(':');
    for (const rule of rules.filter((r) => r.id === ruleId)) {
      // A rule on a Namespace object (namespacedIn) is authorized in that namespace, whatever the install.
      const ns = rule.id.startsWith('lease') ? installNs : (rule.namespacedIn ?? served ?? (install.mode === 'git' ? gitWork : work));
      const want = !omit.length;
      await waitFor(`${o} ${want ? 'granted' : 'revoked'}`, async () => (await canI(sa, rule, verb ?? rule.rule.verbs[0]!, ns)) === want, 10_000);
    }
  }
}

interface Ctx {
  n: string;
  /** The namespace the controller serves. */
  ns: string;
  /** Its ServiceAccount (and Lease) name. */
  sa: string;
  controller?: KilnProcess;
}

interface Row {
  /** Rule id, or `rule-id:verb`, as in install/rbac.ts. */
  omit: string;
  /** What breaks without it. */
  breaks: string;
  /** Before the controller starts: create or change the resource that needs the rule. */
  act?: (c: Ctx) => Promise<unknown>;
  /** A line the controller logs when the API server refuses it: `msg` of its JSON log line, and text in the line. */
  log?: { msg?: string; text: RegExp | ((c: Ctx) => RegExp) };
  /** Or the resource's Stalled condition saying so. */
  stalled?: { kind: string; name?: string; message: RegExp };
  /** Whatever else shows it. */
  check?: (c: Ctx) => Promise<void>;
}

/** The API server's words for a refusal of `verb` on `resource`. */
const refused = (verb: string, resource: string) => new RegExp(`cannot ${verb} resource \\\\*"${resource}\\\\*"`);
/** Whichever of kiln's kinds the informers list first. */
const KILN_PLURALS = `(${Object.values(plural).join('|')})`;
const exits = async (c: Ctx) => expect(await c.controller!.exited).not.toBe(0);
/** A Lease it may not use: one message naming the Lease, the refusal and the fix, exit 2, and never leading. */
const leaseRefused = (command: string, verb: string) =>
  new RegExp(`^kiln ${command}: leader election: may not use the Lease .*${refused(verb, 'leases').source}.*To fix: grant get, create and update on leases`);
const exitsWith2NeverLeading = async (c: Ctx) => {
  expect(await c.controller!.exited).toBe(2);
  expect(c.controller!.lines.some((l) => l.includes('leading; starting workers'))).toBe(false);
  expect(c.controller!.lines.filter((l) => l.includes('may not use the Lease'))).toHaveLength(1);
};
const patchSpec = (kind: string, n: string, spec: unknown, ns = work) => cp.kubectlOk(['patch', '-n', ns, kind, n, '--type=merge', '-p', JSON.stringify({ spec })]);

/** One row per rule, and per verb where the verbs do different things. */
const CONTROLLER_RULE_ROWS: Row[] = [
  { omit: 'kiln-watch:list', breaks: 'the controller cannot fill its caches and exits', log: { text: refused('list', KILN_PLURALS) }, check: exits },
  { omit: 'kiln-watch:watch', breaks: 'the controller lists but cannot watch: changes are not seen', log: { msg: 'watch failed, retrying', text: refused('watch', 'directoryservices') } },
  {
    omit: 'kiln-patch',
    breaks: 'a new resource cannot be marked as its ApplySet parent: the reconcile fails and is retried',
    act: (c) => create(example('DataGrid', c.n, c.ns)),
    log: { msg: 'reconcile failed', text: refused('patch', 'datagrids') },
  },
  {
    omit: 'kiln-status',
    breaks: 'status cannot be written: the resource never becomes Ready',
    act: (c) => create(example('DataGrid', c.n, c.ns)),
    log: { msg: 'reconcile failed', text: (c) => new RegExp(`datagrids/${c.n}/status: 403`) },
    check: async (c) => expect(await condition('DataGrid', c.n, 'Ready')).toBeUndefined(),
  },
  { omit: 'core-children:list', breaks: 'the controller cannot watch ConfigMaps and Services and exits', log: { text: refused('list', '(configmaps|services)') }, check: exits },
  {
    omit: 'core-children:create',
    breaks: "a new DataGrid's ConfigMap cannot be created (a server-side apply of a new object is a create)",
    act: (c) => create(example('DataGrid', c.n, c.ns)),
    stalled: { kind: 'DataGrid', message: refused('create', 'configmaps') },
  },
  {
    omit: 'core-children:patch',
    breaks: "a changed DataGrid's ConfigMap cannot be updated",
    act: (c) => patchSpec('datagrid', 'sessions', { partitions: 37 }, c.ns),
    stalled: { kind: 'DataGrid', name: 'sessions', message: refused('patch', 'configmaps') },
  },
  {
    omit: 'core-children:get',
    breaks: 'a Service edited by hand cannot be read to compare, so it is not repaired',
    act: (c) => cp.kubectlOk(['label', '--overwrite', '-n', c.ns, 'service', 'ds-idrepo', 'app.kubernetes.io/component=edited']),
    log: { msg: 'reconcile failed', text: refused('get', 'services') },
  },
  {
    omit: 'core-children:delete',
    breaks: 'a Service no longer rendered cannot be pruned',
    act: (c) => patchSpec('directoryservice', 'ds-idrepo', { service: { type: 'None' } }, c.ns),
    log: { msg: 'reconcile failed', text: refused('delete', 'services') },
    check: async (c) => expect(await getJson(['-n', c.ns, 'service', 'ds-idrepo-client'])).toBeDefined(),
  },
  { omit: 'claims:list', breaks: 'the controller cannot watch PersistentVolumeClaims and exits', log: { text: refused('list', 'persistentvolumeclaims') }, check: exits },
  {
    omit: 'claims:create',
    breaks: "a DirectoryBackup's claims cannot be created",
    act: (c) => create(example('DirectoryBackup', c.n, c.ns)),
    stalled: { kind: 'DirectoryBackup', message: refused('create', 'persistentvolumeclaims') },
  },
  { omit: 'statefulsets:list', breaks: 'the controller cannot watch StatefulSets and exits', log: { text: refused('list', 'statefulsets') }, check: exits },
  {
    omit: 'statefulsets:create',
    breaks: "a CacheCluster's StatefulSet cannot be created",
    act: (c) => create(example('CacheCluster', c.n, c.ns)),
    stalled: { kind: 'CacheCluster', message: refused('create', 'statefulsets') },
  },
  {
    omit: 'statefulsets:patch',
    breaks: "a scaled CacheCluster's StatefulSet cannot be updated",
    act: (c) => patchSpec('cachecluster', 'session-cache', { size: 6 }, c.ns),
    stalled: { kind: 'CacheCluster', name: 'session-cache', message: refused('patch', 'statefulsets') },
  },
  { omit: 'deployments:list', breaks: 'the controller cannot watch Deployments and exits', log: { text: refused('list', 'deployments') }, check: exits },
  {
    omit: 'deployments:create',
    breaks: "a Memcached's Deployment cannot be created",
    act: (c) => create(example('Memcached', c.n, c.ns)),
    stalled: { kind: 'Memcached', message: refused('create', 'deployments') },
  },
  { omit: 'pods:list', breaks: 'the controller cannot watch the pods whose names a Memcached lists, and exits', log: { text: refused('list', 'pods') }, check: exits },
  {
    omit: 'jobs:create',
    breaks: "a DirectoryBackup's Job cannot be created",
    act: (c) => create(example('DirectoryBackup', c.n, c.ns)),
    stalled: { kind: 'DirectoryBackup', message: refused('create', 'jobs') },
  },
  { omit: 'jobs:watch', breaks: "Job changes (a restore's completion) are not seen", log: { msg: 'watch failed, retrying', text: refused('watch', 'jobs') } },
  { omit: 'poddisruptionbudgets:list', breaks: 'the controller cannot watch PodDisruptionBudgets and exits', log: { text: refused('list', 'poddisruptionbudgets') }, check: exits },
  {
    omit: 'poddisruptionbudgets:create',
    breaks: "a DirectoryService's PodDisruptionBudget cannot be created",
    act: (c) => create(example('DirectoryService', c.n, c.ns)),
    stalled: { kind: 'DirectoryService', message: refused('create', 'poddisruptionbudgets') },
  },
  { omit: 'volumesnapshots:list', breaks: 'the controller cannot watch VolumeSnapshots and exits', log: { text: refused('list', 'volumesnapshots') }, check: exits },
  {
    omit: 'volumesnapshots:create',
    breaks: "a DirectoryBackup's VolumeSnapshot cannot be created",
    act: (c) => create(example('DirectoryBackup', c.n, c.ns)),
    stalled: { kind: 'DirectoryBackup', message: refused('create', 'volumesnapshots') },
  },
  { omit: 'events', breaks: 'no Event is recorded (reconciles go on)', act: (c) => create(example('DataGrid', c.n, c.ns)), log: { msg: 'could not record event', text: refused('create', 'events') } },
  {
    omit: 'serviceaccount-tokens',
    breaks: 'a ConfigMapSync cannot act as its ServiceAccount: Stalled, nothing copied',
    act: (c) => create(sync(c.n, c.ns)),
    log: { msg: 'cannot obtain a ServiceAccount token', text: /403/ },
    stalled: { kind: 'ConfigMapSync', message: /TokenRequest|token/i },
  },
  {
    omit: 'lease-create',
    breaks: 'without its Lease the controller cannot create one: it exits 2 saying so, instead of never leading',
    act: (c) => cp.kubectlOk(['delete', 'lease', '-n', installNs, c.sa, '--ignore-not-found']),
    log: { text: leaseRefused('controller', 'create') },
    check: exitsWith2NeverLeading,
  },
  {
    omit: 'lease',
    breaks: 'the controller cannot read or renew its Lease: it exits 2 saying so, instead of never leading',
    log: { text: leaseRefused('controller', 'get') },
    check: exitsWith2NeverLeading,
  },
];

/**
 * A component's rule table: a test that every rule of its ClusterRole and
 * Role has a row, then one test per row that applies the rules without that
 * one, starts the component and waits until the row's failure shows.
 */
function ruleTable(t: {
  covers: string;
  rows: Row[];
  rules: { id: string }[];
  rowName: string;
  ns: string;
  sa: string;
  setRules: (omit: string[]) => Promise<void>;
  start: () => Promise<KilnProcess>;
}): void {
  it(t.covers, () => {
    const covered = new Set(t.rows.map((r) => r.omit.split(':')[0]));
    expect(t.rules.map((r) => r.id).filter((ruleId) => !covered.has(ruleId))).toEqual([]);
  });

  describe('without one rule, this breaks', () => {
    t.rows.forEach((row, i) => {
      it(`${row.omit}: ${row.breaks}`, async () => {
        const ctx: Ctx = { n: `${t.rowName}-${i}`, ns: t.ns, sa: t.sa };
        await t.setRules([row.omit]);
        try {
          await row.act?.(ctx);
          ctx.controller = await t.start();
          await shows(row, ctx);
          await row.check?.(ctx);
        } finally {
          await stopAll();
          await t.setRules([]);
        }
      }, 120_000);
    });
  });
}

/** Waits until the row's failure shows, in the logs or in the resource's status. */
async function shows(row: Row, c: Ctx): Promise<void> {
  const p = c.controller!;
  await waitFor(
    `${row.omit}: ${row.log ? 'a log line' : 'a Stalled condition'}`,
    async () => {
      if (row.log) {
        const text = typeof row.log.text === 'function' ? row.log.text(c) : row.log.text;
        const hit = p.lines.some((l) => {
          if (!text.test(l)) return false;
          if (!row.log!.msg) return true;
          try {
            return (JSON.parse(l) as { msg?: string }).msg === row.log!.msg;
          } catch {
            return false;
          }
        });
        if (!hit) return false;
      }
      if (row.stalled) {
        const st = await condition(row.stalled.kind, row.stalled.name ?? c.n, 'Stalled', c.ns);
        if (st?.status !== 'True' || !row.stalled.message.test(st.message)) return false;
      }
      return true;
    },
    30_000,
    () => p.lines.slice(-10).join('\n'),
  );
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  installed = [...installObjects(base), ...installObjects(gitBase)];
  // The tenant namespaces exist before kiln is installed: the token RoleBinding lives in one of them.
  for (const ns of [work, tenant, gitWork]) await cp.kubectlOk(['create', 'namespace', ns]);
  const r = await applyObjects(cp, installed);
  if (r.code !== 0) throw new Error(r.stderr);
  initBareRepo(bare, scratch);
  // ConfigMapSync's tenant: its own ServiceAccount reads the source and writes copies (not the controller).
  const tenantRbac = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'tenant-sync', namespace: work } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ca-bundle', namespace: work }, data: { 'ca.crt': 'not a real certificate' } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'read-source', namespace: work },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'read-source', namespace: work },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-source' },
      subjects: [{ kind: 'ServiceAccount', name: 'tenant-sync', namespace: work }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'write-copies', namespace: tenant },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'patch', 'delete'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'write-copies', namespace: tenant },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'write-copies' },
      subjects: [{ kind: 'ServiceAccount', name: 'tenant-sync', namespace: work }],
    },
  ];
  const t = await applyObjects(cp, tenantRbac);
  if (t.code !== 0) throw new Error(t.stderr);
  kubeconfig = await serviceAccountKubeconfig(cp, installNs, controllerSa);
  gitKubeconfig = await serviceAccountKubeconfig(cp, installNs, gitSa);
}, 120_000);

afterAll(async () => {
  await stopAll();
  removeKubeconfigs();
  await uninstall(cp, installed);
  for (const ns of [work, tenant, gitWork]) await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  rmSync(scratch, { recursive: true, force: true });
});

describe('the controller with exactly the generated RBAC', () => {
  it('it is not an administrator', async () => {
    const as = ['--as', `system:serviceaccount:${installNs}:${controllerSa}`];
    expect((await cp.kubectl(['auth', 'can-i', 'get', 'secrets', '-n', work, ...as])).stdout.trim()).toBe('no');
    expect((await cp.kubectl(['auth', 'can-i', 'create', 'namespaces', ...as])).stdout.trim()).toBe('no');
    // The kubeconfig carries the ServiceAccount's token, not the admin's.
    expect((await cp.kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { kubeconfig })).stdout).toBe(`system:serviceaccount:${installNs}:${controllerSa}`);
  });

  it('may request ServiceAccount tokens only in the namespaces bound to it (not cluster-wide, not kube-system)', async () => {
    const as = ['--as', `system:serviceaccount:${installNs}:${controllerSa}`];
    const canToken = async (ns: string, sa?: string) =>
      (await cp.kubectl(['auth', 'can-i', 'create', sa ? `serviceaccounts/${sa}` : 'serviceaccounts', '--subresource', 'token', '-n', ns, ...as])).stdout.trim();
    expect(await canToken(work)).toBe('yes');
    expect(await canToken(tenant)).toBe('no');
    expect(await canToken('kube-system')).toBe('no');
    expect(await canToken('kube-system', 'default')).toBe('no');
    expect((await cp.kubectl(['auth', 'can-i', 'create', 'serviceaccounts', '--subresource', 'token', '--all-namespaces', ...as])).stdout.trim()).toBe('no');
    // The same through the API: a TokenRequest for a ServiceAccount of a namespace that did not opt in is refused.
    const r = await cp.kubectl(['create', 'token', 'default', '-n', 'kube-system', '--duration', '10m'], { kubeconfig });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/forbidden/i);
    // A ConfigMapSync in a namespace that did not opt in is Stalled saying how the admin grants it; nothing copied.
    const optOut = `kiln-rbac-optout-${id}`;
    await cp.kubectlOk(['create', 'namespace', optOut]);
    try {
      await applyObjects(cp, [
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sync', namespace: optOut } },
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'src', namespace: optOut }, data: { a: 'b' } },
      ]);
      const c = await startController(base, ['-n', optOut]);
      const cms: KilnResource = {
        apiVersion: 'kiln.dev/v1alpha1',
        kind: 'ConfigMapSync',
        metadata: { name: 'no-opt-in', namespace: optOut },
        spec: { source: { name: 'src' }, targets: { namespaces: [tenant] }, serviceAccountName: 'sync' },
      };
      await create(cms);
      const st = await waitFor(
        'the ConfigMapSync Stalled',
        async () => {
          const s = await condition('ConfigMapSync', 'no-opt-in', 'Stalled', optOut);
          return s?.status === 'True' ? s : undefined;
        },
        30_000,
        () => c.lines.slice(-10).join('\n'),
      );
      expect(st.reason).toBe('TokenRequestFailed');
      expect(st.message).toMatch(/RoleBinding.*--token-namespace/);
      expect(await getJson(['-n', tenant, 'configmap', 'src'])).toBeUndefined();
    } finally {
      await stopAll();
      await cp.kubectl(['delete', 'namespace', optOut, '--wait=false']);
    }
  }, 120_000);

  it('converges every example (and a ConfigMapSync) with its ServiceAccount token', async () => {
    const c = await startController();
    for (const r of examples) await create(r);
    await create(sync('ca-bundle'));
    const logs = () => c.lines.slice(-20).join('\n');
    for (const r of examples) {
      if (r.kind === 'DirectoryRestore') continue; // waits for its Job, which nothing runs here
      await waitFor(`${r.kind}/${r.metadata.name} Ready`, async () => (await condition(r.kind, r.metadata.name, 'Ready'))?.status === 'True', 60_000, logs).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await conditions()}`);
      });
    }
    await waitFor(
      "the restore's claim and Job",
      async () => (await getJson(['-n', work, 'pvc', 'idrepo-restore-restore'])) && (await getJson(['-n', work, 'job', 'idrepo-restore-restore'])),
      30_000,
      logs,
    );
    await waitFor('ConfigMapSync Ready', async () => (await condition('ConfigMapSync', 'ca-bundle', 'Ready'))?.status === 'True', 30_000, logs);
    expect(await getJson(['-n', tenant, 'configmap', 'ca-bundle'])).toBeDefined();
    const ds = await getJson(['-n', work, 'directoryservice', 'ds-idrepo']);
    expect(ds.metadata.labels['applyset.kubernetes.io/id']).toBe(applySetId(ds));
    expect(c.lines.filter((l) => refusedLine(l))).toEqual([]);
    const events = await cp.kubectlOk(['get', 'events', '-n', work, '--field-selector', 'reason=Applied', '-o', 'name']);
    expect(events.trim()).not.toBe('');
    await stopAll();
  }, 180_000);

  ruleTable({
    covers: "every rule of the controller's ClusterRole and Role has a row below",
    rows: CONTROLLER_RULE_ROWS,
    rules: [...CONTROLLER_APPLY_RULES, ...TOKEN_RULES, ...leaseRules(controllerSa)],
    rowName: 'row',
    ns: work,
    sa: controllerSa,
    setRules: (omit) => setRules(omit),
    start: () => startController(),
  });
});

/**
 * The namespace-scoped install (`kiln install --namespaced -n <ns>`): the same rule lists as Roles in the
 * watched namespace, the Lease's in the install namespace, nothing cluster-scoped. Its controller serves a
 * namespace of its own (nsWork) and copies a ConfigMap into `tenant`, which it does not watch.
 */
const nsName = `krn-${id}`;
const nsSa = `${nsName}-controller`;
const nsWork = `kiln-rbac-nsw-${id}`;
const namespacedBase: InstallOptions = { mode: 'apply', version: 'test', namespace: installNs, name: nsName, agent: false, watchNamespaces: [nsWork], tokenNamespaces: [nsWork] };
let nsKubeconfig = '';
const CLUSTER_SCOPED = ['CustomResourceDefinition', 'Namespace', 'ClusterRole', 'ClusterRoleBinding'];
/** `kubectl auth can-i` as a ServiceAccount of the install namespace. */
const canAs = async (sa: string, ...args: string[]) => (await cp.kubectl(['auth', 'can-i', ...args, '--as', `system:serviceaccount:${installNs}:${sa}`])).stdout.trim();

describe('the namespace-scoped install (--namespaced): the controller with Roles only', () => {
  beforeAll(async () => {
    await cp.kubectlOk(['create', 'namespace', nsWork]);
    const objs = installObjects(namespacedBase);
    expect(objs.filter((o) => CLUSTER_SCOPED.includes(o.kind))).toEqual([]);
    installed.push(...objs);
    const tenantSide = [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'tenant-sync', namespace: nsWork } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ns-ca-bundle', namespace: nsWork }, data: { 'ca.crt': 'not a real certificate' } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'read-source', namespace: nsWork },
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
      },
      ...[
        { namespace: nsWork, role: 'read-source' },
        { namespace: tenant, role: 'write-copies' },
      ].map((b) => ({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: `${b.role}-${nsName}`, namespace: b.namespace },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: b.role },
        subjects: [{ kind: 'ServiceAccount', name: 'tenant-sync', namespace: nsWork }],
      })),
    ];
    const r = await applyObjects(cp, [...objs, ...tenantSide]);
    if (r.code !== 0) throw new Error(r.stderr);
    nsKubeconfig = await serviceAccountKubeconfig(cp, installNs, nsSa);
  }, 120_000);

  afterAll(async () => {
    await stopAll();
    await cp?.kubectl(['delete', 'namespace', nsWork, '--wait=false']);
  });

  it('holds nothing cluster-wide: its rights are in the watched namespace (and the Lease in its own)', async () => {
    await waitFor('the Roles enforced', async () => (await canAs(nsSa, 'list', 'configmaps', '-n', nsWork)) === 'yes', 10_000);
    for (const what of ['configmaps', 'statefulsets.apps', 'directoryservices.kiln.dev', 'configmapsyncs.kiln.dev', 'events']) {
      for (const verb of ['list', 'watch', 'create']) expect(await canAs(nsSa, verb, what, '--all-namespaces'), `${verb} ${what} -A`).toBe('no');
      expect(await canAs(nsSa, 'list', what, '-n', tenant), `list ${what} -n ${tenant}`).toBe('no');
    }
    expect(await canAs(nsSa, 'list', 'namespaces')).toBe('no');
    expect(await canAs(nsSa, 'create', 'serviceaccounts', '--subresource', 'token', '-n', tenant)).toBe('no');
    expect(await canAs(nsSa, 'create', 'serviceaccounts', '--subresource', 'token', '-n', nsWork)).toBe('yes');
    expect(await canAs(nsSa, 'get', 'secrets', '-n', nsWork)).toBe('no');
    expect(await canAs(nsSa, 'update', `leases.coordination.k8s.io/${nsSa}`, '-n', installNs)).toBe('yes');
    expect(await canAs(nsSa, 'update', `leases.coordination.k8s.io/${nsSa}`, '-n', nsWork)).toBe('no');
  });

  it('converges every example and a ConfigMapSync into an unwatched namespace, and no request is refused', async () => {
    const c = await startController(namespacedBase, [], nsKubeconfig);
    const mine = examples.map((r) => ({ ...r, metadata: { ...r.metadata, namespace: nsWork } }));
    for (const r of mine) await create(r);
    await create(sync('ns-ca-bundle', nsWork, 'ns-ca-bundle'));
    const logs = () => c.lines.slice(-20).join('\n');
    for (const r of mine) {
      if (r.kind === 'DirectoryRestore') continue; // waits for its Job, which nothing runs here
      await waitFor(`${r.kind}/${r.metadata.name} Ready`, async () => (await condition(r.kind, r.metadata.name, 'Ready', nsWork))?.status === 'True', 60_000, logs).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await conditions(nsWork)}`);
      });
    }
    await waitFor(
      "the restore's claim and Job",
      async () => (await getJson(['-n', nsWork, 'pvc', 'idrepo-restore-restore'])) && (await getJson(['-n', nsWork, 'job', 'idrepo-restore-restore'])),
      30_000,
      logs,
    );
    await waitFor('ConfigMapSync Ready', async () => (await condition('ConfigMapSync', 'ns-ca-bundle', 'Ready', nsWork))?.status === 'True', 30_000, logs);
    expect((await getJson(['-n', tenant, 'configmap', 'ns-ca-bundle']))?.data).toEqual({ 'ca.crt': 'not a real certificate' });
    // A drifted copy in the unwatched namespace is not seen at once; the controller said so at start.
    expect(c.lines.some((l) => l.includes('watching only the given namespaces') && l.includes('v1/ConfigMap'))).toBe(true);
    // The Lease in the install namespace, Events in the watched one.
    expect(await getJson(['-n', installNs, 'lease', nsSa])).toBeDefined();
    expect((await cp.kubectlOk(['get', 'events', '-n', nsWork, '--field-selector', 'reason=Applied', '-o', 'name'])).trim()).not.toBe('');
    expect(c.lines.filter((l) => refusedLine(l))).toEqual([]);
    await stopAll();
  }, 180_000);

  ruleTable({
    covers: 'every rule of its Roles has a row below (the same rows as the cluster-wide install)',
    rows: CONTROLLER_RULE_ROWS,
    rules: [...CONTROLLER_APPLY_RULES, ...TOKEN_RULES, ...leaseRules(nsSa)],
    rowName: 'ns-row',
    ns: nsWork,
    sa: nsSa,
    setRules: (omit) => setRules(omit, 'controller-apply', nsSa, namespacedBase, nsWork),
    start: () => startController(namespacedBase, [], nsKubeconfig),
  });
});

const gitGrid = (n: string, ns = gitWork): KilnResource => ({ ...example('DataGrid', n), metadata: { name: n, namespace: ns } });

/** Git mode reads resources, writes status and Events; Git gets the rest. */
const GIT_RULE_ROWS: Row[] = [
  { omit: 'kiln-watch:list', breaks: 'the controller cannot fill its caches and exits', log: { text: refused('list', KILN_PLURALS) }, check: exits },
  { omit: 'kiln-watch:watch', breaks: 'the controller lists but cannot watch: changes are not seen', log: { msg: 'watch failed, retrying', text: refused('watch', 'datagrids') } },
  {
    omit: 'kiln-status',
    breaks: 'a committed resource cannot say so: it never becomes Ready',
    act: (c) => create(gitGrid(c.n, c.ns)),
    log: { text: (c) => new RegExp(`datagrids/${c.n}/status: 403`) },
    check: async (c) => expect(await condition('DataGrid', c.n, 'Ready', c.ns)).toBeUndefined(),
  },
  { omit: 'events', breaks: 'no Event is recorded (commits go on)', act: (c) => create(gitGrid(c.n, c.ns)), log: { msg: 'could not record event', text: refused('create', 'events') } },
  {
    omit: 'lease-create',
    breaks: 'without its Lease the controller cannot create one: it exits 2 saying so, instead of never leading',
    act: (c) => cp.kubectlOk(['delete', 'lease', '-n', installNs, c.sa, '--ignore-not-found']),
    log: { text: leaseRefused('controller', 'create') },
    check: exitsWith2NeverLeading,
  },
  { omit: 'lease', breaks: 'the controller cannot read or renew its Lease: it exits 2 saying so', log: { text: leaseRefused('controller', 'get') }, check: exitsWith2NeverLeading },
  {
    omit: 'cluster-identity',
    breaks: 'the cluster marker is not checked (said in the log): another cluster with the same --cluster is no longer refused',
    log: { text: /cannot read the kube-system namespace.*namespaces.*kube-system/ },
  },
  { omit: 'jobs-watch:list', breaks: "the controller cannot fill its cache of kiln's Jobs (a restore's snapshot waits for one) and exits", log: { text: refused('list', 'jobs') }, check: exits },
  {
    omit: 'jobs-watch:watch',
    breaks: "kiln's Jobs are listed but not watched: a restore's Job completing is not seen, so its snapshot is not committed",
    log: { msg: 'watch failed, retrying', text: refused('watch', 'jobs') },
  },
];

describe('dynamic sharding (--sharding dynamic): two replicas with exactly the generated RBAC', () => {
  const dynName = `krd-${id}`;
  const dynSa = `${dynName}-controller`;
  const dynWork = `kiln-rbac-dyn-${id}`;
  const dynBase: InstallOptions = { mode: 'apply', version: 'test', namespace: installNs, name: dynName, crds: 'skip', agent: false, replicas: 2, sharding: 'dynamic' };
  let dynKubeconfig = '';

  beforeAll(async () => {
    await cp.kubectlOk(['create', 'namespace', dynWork]);
    const objs = installObjects(dynBase);
    installed.push(...objs);
    const r = await applyObjects(cp, objs);
    if (r.code !== 0) throw new Error(r.stderr);
    dynKubeconfig = await serviceAccountKubeconfig(cp, installNs, dynSa);
  }, 120_000);

  afterAll(async () => {
    await stopAll();
    await cp?.kubectl(['delete', 'namespace', dynWork, '--wait=false']);
  });

  it("holds and watches the ring's Leases in its own namespace only", async () => {
    await waitFor('the Role enforced', async () => (await canAs(dynSa, 'watch', 'leases.coordination.k8s.io', '-n', installNs)) === 'yes', 10_000);
    for (const verb of ['get', 'list', 'watch', 'update', 'delete', 'create']) expect(await canAs(dynSa, verb, 'leases.coordination.k8s.io', '-n', installNs), verb).toBe('yes');
    for (const verb of ['list', 'update']) expect(await canAs(dynSa, verb, 'leases.coordination.k8s.io', '-n', dynWork), `${verb} in ${dynWork}`).toBe('no');
  });

  it('both replicas work, the resources are assigned and converge, and no request is refused', async () => {
    const a = await startController(dynBase, ['-n', dynWork], dynKubeconfig);
    const b = await startController(dynBase, ['-n', dynWork], dynKubeconfig);
    const mine = examples
      .filter((r) => r.kind === 'DirectoryService' || r.kind === 'PostgresInstance' || r.kind === 'Memcached')
      .map((r) => ({ ...r, metadata: { ...r.metadata, namespace: dynWork } }));
    expect(mine.length).toBeGreaterThan(1);
    for (const r of mine) await create(r);
    const logs = () => [...a.lines.slice(-10), ...b.lines.slice(-10)].join('\n');
    for (const r of mine) {
      await waitFor(`${r.kind}/${r.metadata.name} Synced`, async () => (await condition(r.kind, r.metadata.name, 'Synced', dynWork))?.status === 'True', 60_000, logs);
      const o = await getJson(['-n', dynWork, `${plural[r.kind]}.kiln.dev`, r.metadata.name]);
      expect(o.metadata.labels?.['shard.kiln.dev/controller'], `${r.kind}/${r.metadata.name}`).toMatch(/./);
    }
    // The ring: one Lease per replica and the assigner's.
    const leases = JSON.parse(await cp.kubectlOk(['get', 'leases', '-n', installNs, '-l', `shard.kiln.dev/ring=${dynSa}`, '-o', 'json'])) as { items: unknown[] };
    expect(leases.items).toHaveLength(2);
    expect(await getJson(['-n', installNs, 'lease', `${dynSa}-sharder`])).toBeDefined();
    expect([...a.lines, ...b.lines].filter((l) => refusedLine(l))).toEqual([]);
    await stopAll();
  }, 180_000);
});

describe('the git-mode controller with exactly the generated RBAC', () => {
  it('commits and reports the examples with its ServiceAccount token, and may not touch what it renders', async () => {
    const as = ['--as', `system:serviceaccount:${installNs}:${gitSa}`];
    for (const verb of ['create', 'patch']) expect((await cp.kubectl(['auth', 'can-i', verb, 'statefulsets.apps', '-n', gitWork, ...as])).stdout.trim()).toBe('no');
    const c = await startController(gitBase);
    const resources = examples
      .filter((r) => r.kind === 'CacheCluster' || r.kind === 'DataGrid' || r.kind === 'DirectoryService')
      .map((r) => ({ ...r, metadata: { ...r.metadata, namespace: gitWork } }));
    for (const r of resources) await create(r);
    for (const r of resources) {
      await waitFor(
        `${r.kind}/${r.metadata.name} Ready`,
        async () => (await condition(r.kind, r.metadata.name, 'Ready', gitWork))?.status === 'True',
        60_000,
        () => c.lines.slice(-10).join('\n'),
      );
    }
    expect(Number(plainGit(scratch, ['--git-dir', bare, 'rev-list', '--count', 'main']).trim())).toBeGreaterThan(1);
    expect(plainGit(scratch, ['--git-dir', bare, 'ls-tree', '-r', '--name-only', 'main'])).toContain(`clusters/rbac/${gitWork}/`);
    expect(c.lines.filter((l) => refusedLine(l))).toEqual([]);
    expect((await cp.kubectl(['get', 'statefulsets', '-n', gitWork, '-o', 'name'])).stdout.trim()).toBe('');
    await stopAll();
  }, 180_000);

  ruleTable({
    covers: 'every rule of its ClusterRole and Role has a row below',
    rows: GIT_RULE_ROWS,
    rules: [...CONTROLLER_GIT_RULES, ...leaseRules(gitSa)],
    rowName: 'git-row',
    ns: gitWork,
    sa: gitSa,
    setRules: (omit) => setRules(omit, 'controller-git', gitSa, gitBase),
    start: () => startController(gitBase),
  });
});

describe('the namespace-scoped install (--namespaced): the git-mode controller with Roles only', () => {
  const ngName = `krng-${id}`;
  const ngSa = `${ngName}-controller`;
  const ngWork = `kiln-rbac-nsg-${id}`;
  const ngBase: InstallOptions = { ...gitBase, name: ngName, watchNamespaces: [ngWork], git: { ...gitBase.git!, cluster: 'rbac-ns' } };
  let ngKubeconfig = '';
  beforeAll(async () => {
    await cp.kubectlOk(['create', 'namespace', ngWork]);
    const objs = installObjects(ngBase);
    expect(objs.filter((o) => CLUSTER_SCOPED.includes(o.kind))).toEqual([]);
    installed.push(...objs);
    const r = await applyObjects(cp, objs);
    if (r.code !== 0) throw new Error(r.stderr);
    ngKubeconfig = await serviceAccountKubeconfig(cp, installNs, ngSa);
  }, 60_000);

  afterAll(async () => {
    await stopAll();
    await cp?.kubectl(['delete', 'namespace', ngWork, '--wait=false']);
    // Its one object outside the namespaces this file deletes.
    for (const k of ['rolebinding', 'role']) await cp?.kubectl(['delete', k, '-n', 'kube-system', `${ngSa}-cluster-identity`, '--ignore-not-found']);
  });

  it('commits and reports with Roles only; it reads the cluster identity through a Role in kube-system', async () => {
    await waitFor('the Roles enforced', async () => (await canAs(ngSa, 'list', 'datagrids.kiln.dev', '-n', ngWork)) === 'yes', 10_000);
    expect(await canAs(ngSa, 'get', 'namespaces/kube-system', '-n', 'kube-system')).toBe('yes');
    expect(await canAs(ngSa, 'get', 'namespaces/default', '-n', 'default')).toBe('no');
    expect(await canAs(ngSa, 'list', 'namespaces')).toBe('no');
    for (const verb of ['list', 'watch']) expect(await canAs(ngSa, verb, 'datagrids.kiln.dev', '--all-namespaces')).toBe('no');
    const c = await startController(ngBase, [], ngKubeconfig);
    await create(gitGrid('ns-grid', ngWork));
    await waitFor(
      'DataGrid/ns-grid Ready',
      async () => (await condition('DataGrid', 'ns-grid', 'Ready', ngWork))?.status === 'True',
      60_000,
      () => c.lines.slice(-10).join('\n'),
    );
    expect(plainGit(scratch, ['--git-dir', bare, 'ls-tree', '-r', '--name-only', 'main'])).toContain(`clusters/rbac-ns/${ngWork}/`);
    // The marker was checked against the cluster's identity, not skipped for want of rights.
    expect(c.lines.some((l) => /cannot read the kube-system namespace/.test(l))).toBe(false);
    expect(c.lines.filter((l) => refusedLine(l))).toEqual([]);
    await stopAll();
  }, 180_000);

  ruleTable({
    covers: 'every rule of its Roles has a row below (the same rows as the cluster-wide install)',
    rows: GIT_RULE_ROWS,
    rules: [...CONTROLLER_GIT_RULES, ...leaseRules(ngSa)],
    rowName: 'git-ns-row',
    ns: ngWork,
    sa: ngSa,
    setRules: (omit) => setRules(omit, 'controller-git', ngSa, ngBase, ngWork),
    start: () => startController(ngBase, [], ngKubeconfig),
  });
});

const agentSa = `${name}-agent`;
const agentWork = `kiln-rbac-agent-${id}`;
let agentKubeconfig = '';
let pgServer: PostgresServer | undefined;
let ldap: SlapdServer | undefined;
const SUFFIX = 'dc=kiln,dc=test';
const applyIn = (obj: Record<string, unknown>) => cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(obj) });
const kiln = (kind: string, n: string, spec: unknown) => ({ apiVersion: 'kiln.dev/v1alpha1', kind, metadata: { name: n, namespace: agentWork }, spec });
/** A PostgresInstance naming no superuser Secret: the agent generates one (Secret get, create; Event; status). */
const freshInstance = (c: Ctx) => applyIn(kiln('PostgresInstance', c.n, {}));

/** `kiln agent` with the args of the installation's agent Deployment, its ServiceAccount's token, and the local servers. */
async function startAgent(install: InstallOptions = base, sa = agentSa, kubeconfigFile = agentKubeconfig): Promise<KilnProcess> {
  const port = await freePort();
  const deployment = installObjects(install).find((o) => o.kind === 'Deployment' && o.metadata.name === sa) as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
  const args = deployment.spec.template.spec.containers[0]!.args;
  const p = startKiln([
    ...args,
    '--kubeconfig',
    kubeconfigFile,
    ...(args.includes('--namespace') ? [] : ['-n', agentWork]),
    '--metrics-bind-address',
    `127.0.0.1:${port}`,
    '--health-probe-bind-address',
    `127.0.0.1:${port}`,
    '--endpoint',
    `PostgresInstance/${agentWork}/pg=${pgServer!.host}:${pgServer!.port}`,
    '--endpoint',
    `DirectoryService/${agentWork}/ds=${ldap!.url}`,
    ...etcdEndpoints,
  ]);
  running.push(p);
  return p;
}

const AGENT_PLURALS = '(directoryservices|postgresinstances|postgresdatabases|etcdclusters)';
/** An EtcdCluster of `size` with the StatefulSet kiln's controller would apply (applied here), scaled to `replicas` when given. */
async function etcdCluster(c: Ctx, size: number, replicas?: number): Promise<void> {
  const ec = kiln('EtcdCluster', c.n, { size, version: '3.6.4' });
  await applyIn(ec);
  for (const o of render(ec as KilnResource)) await applyIn(o);
  if (replicas !== undefined) await cp.kubectlOk(['-n', agentWork, 'scale', 'statefulset', c.n, `--replicas=${replicas}`]);
}
/** Real etcd members the rows start, and the endpoint overrides that reach them. */
const etcdServers: Server[] = [];
const etcdEndpoints: string[] = [];
/**
 * A running one-member etcd cluster `<n>-0` and an EtcdCluster of `size` whose StatefulSet already has that many pods
 * and whose members ConfigMap exists. Of 2: the agent adds `<n>-1` and, its pod being there, deletes that pod's claim
 * and pod. Of 1: the cluster is whole and healthy, and the agent reads the pods' revisions.
 */
async function etcdRunning(c: Ctx, size: number): Promise<void> {
  const [client, peer, client1, peer1] = await freePorts(4);
  const url = (p: number) => `http://127.0.0.1:${p}`;
  const dir = mkdtempSync(join(tmpdir(), 'kiln-rbac-etcd-'));
  const server = await startServer(
    `${c.n}-etcd`,
    join(inject('binDir'), 'etcd'),
    [
      `--name=${c.n}-0`,
      `--data-dir=${join(dir, 'data')}`,
      `--listen-client-urls=${url(client!)}`,
      `--advertise-client-urls=${url(client!)}`,
      `--listen-peer-urls=${url(peer!)}`,
      `--initial-advertise-peer-urls=${url(peer!)}`,
      `--initial-cluster=${c.n}-0=${url(peer!)}`,
    ],
    dir,
    process.pid,
  );
  etcdServers.push(server);
  etcdEndpoints.push('--endpoint', `EtcdCluster/${agentWork}/${c.n}-0=${url(client!)},${url(peer!)}`, '--endpoint', `EtcdCluster/${agentWork}/${c.n}-1=${url(client1!)},${url(peer1!)}`);
  await etcdCluster(c, size, size);
  const uid = (await getJson(['-n', agentWork, 'etcdclusters.kiln.dev', c.n])).metadata.uid as string;
  await applyIn({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: `${c.n}-members`, namespace: agentWork, ownerReferences: [{ apiVersion: 'kiln.dev/v1alpha1', kind: 'EtcdCluster', name: c.n, uid, controller: true }] },
    data: { ETCD_INITIAL_CLUSTER: `${c.n}-0=${url(peer!)}`, ETCD_INITIAL_CLUSTER_STATE: 'existing' },
  });
  await waitFor(
    'etcd up',
    async () =>
      (await fetch(`${url(client!)}/health`)
        .then((r) => r.ok)
        .catch(() => false)) || undefined,
    30_000,
  );
}
const AGENT_RULE_ROWS: Row[] = [
  { omit: 'kiln-watch:list', breaks: 'the agent cannot fill its caches and exits', log: { text: refused('list', AGENT_PLURALS) }, check: exits },
  { omit: 'kiln-watch:watch', breaks: 'the agent lists but cannot watch: changes are not seen', log: { msg: 'watch failed, retrying', text: refused('watch', AGENT_PLURALS) } },
  {
    omit: 'kiln-status',
    breaks: 'the agent cannot write its conditions: an instance never says its superuser Secret is ready',
    act: freshInstance,
    log: { msg: 'agent task failed', text: refused('patch', 'postgresinstances/status') },
    check: async (c) => expect(await condition('PostgresInstance', c.n, 'SuperuserSecretReady', agentWork)).toBeUndefined(),
  },
  {
    omit: 'database-finalizers',
    breaks: 'a database with reclaimPolicy Delete cannot get its finalizer, so nothing is created for it',
    act: (c) => applyIn(kiln('PostgresDatabase', c.n, { instance: 'pg', name: c.n.replace(/-/g, '_'), reclaimPolicy: 'Delete' })),
    log: { msg: 'agent task failed', text: refused('patch', 'postgresdatabases') },
  },
  { omit: 'secrets:list', breaks: 'the agent cannot watch Secrets and exits', log: { text: refused('list', 'secrets') }, check: exits },
  { omit: 'secrets:watch', breaks: 'a changed Secret (a password to rotate) is not seen', log: { msg: 'watch failed, retrying', text: refused('watch', 'secrets') } },
  { omit: 'secrets:get', breaks: 'the agent cannot check for a superuser Secret before generating one', act: freshInstance, log: { msg: 'agent task failed', text: refused('get', 'secrets') } },
  { omit: 'secrets:create', breaks: 'a missing superuser Secret cannot be generated', act: freshInstance, log: { msg: 'agent task failed', text: refused('create', 'secrets') } },
  {
    omit: 'secrets:patch',
    breaks: 'a create: true password cannot be added to an existing Secret (nor a connection Secret applied)',
    act: async (c) => {
      await cp.kubectlOk(['-n', agentWork, 'create', 'secret', 'generic', `${c.n}-gen`, '--from-literal=other=x']);
      await applyIn(
        kiln('DirectoryService', c.n, {
          image: 'ds:7',
          passwords: { [`uid=admin,${SUFFIX}`]: { secretName: 'ds-admin' }, [`uid=gen,ou=people,${SUFFIX}`]: { secretName: `${c.n}-gen`, create: true } },
        }),
      );
    },
    log: { msg: 'agent task failed', text: refused('patch', 'secrets') },
  },
  {
    omit: 'etcd-statefulsets',
    breaks: "an EtcdCluster's StatefulSet cannot be read: no member is ever bootstrapped",
    act: (c) => etcdCluster(c, 1),
    log: { msg: 'agent task failed', text: refused('get', 'statefulsets') },
  },
  {
    omit: 'etcd-members',
    breaks: 'the members ConfigMap cannot be read or written: the pods never learn the initial cluster',
    act: (c) => etcdCluster(c, 1),
    log: { msg: 'agent task failed', text: refused('get', 'configmaps') },
  },
  {
    omit: 'etcd-scale',
    breaks: 'the StatefulSet cannot be scaled: the seed member never gets its pod',
    act: (c) => etcdCluster(c, 1, 0),
    log: { msg: 'agent task failed', text: refused('patch', 'statefulsets/scale') },
  },
  {
    omit: 'etcd-claims',
    breaks: "a member added again cannot get an empty volume: its pod's claim and pod stay",
    act: (c) => etcdRunning(c, 2),
    log: { msg: 'agent task failed', text: refused('delete', 'persistentvolumeclaims') },
  },
  {
    omit: 'etcd-pods:delete',
    breaks: 'a member added again keeps its old pod (its claim goes, the pod is not restarted)',
    act: (c) => etcdRunning(c, 2),
    log: { msg: 'agent task failed', text: refused('delete', 'pods') },
  },
  {
    omit: 'etcd-pods:get',
    breaks: "a healthy cluster's pods cannot be checked against the StatefulSet's revision: no template change is ever rolled",
    act: (c) => etcdRunning(c, 1),
    log: { msg: 'agent task failed', text: refused('get', 'pods') },
  },
  { omit: 'events', breaks: 'no Event is recorded (the work goes on)', act: freshInstance, log: { msg: 'could not record event', text: refused('create', 'events') } },
  {
    omit: 'lease-create',
    breaks: 'without its Lease the agent cannot create one: it exits 2 saying so, instead of never leading',
    act: (c) => cp.kubectlOk(['delete', 'lease', '-n', installNs, c.sa, '--ignore-not-found']),
    log: { text: leaseRefused('agent', 'create') },
    check: exitsWith2NeverLeading,
  },
  { omit: 'lease', breaks: 'the agent cannot read or renew its Lease: it exits 2 saying so', log: { text: leaseRefused('agent', 'get') }, check: exitsWith2NeverLeading },
];

describe('the runtime agent with exactly the generated RBAC', () => {
  beforeAll(async () => {
    [pgServer, ldap] = await Promise.all([startPostgres(), startSlapd({ accounts: [{ dn: `uid=svc,ou=admins,${SUFFIX}`, password: 'wrong-one' }] })]);
    await cp.kubectlOk(['create', 'namespace', agentWork]);
    await cp.kubectlOk(['-n', agentWork, 'create', 'secret', 'generic', 'pg-superuser', `--from-literal=password=${pgServer.password}`]);
    await cp.kubectlOk(['-n', agentWork, 'create', 'secret', 'generic', 'ds-admin', `--from-literal=password=${ldap.adminPassword}`]);
    await cp.kubectlOk(['-n', agentWork, 'create', 'secret', 'generic', 'svc-password', '--from-literal=password=the-right-one']);
    await applyIn(kiln('PostgresInstance', 'pg', { superuserSecret: { name: 'pg-superuser' } }));
    agentKubeconfig = await serviceAccountKubeconfig(cp, installNs, agentSa);
  }, 120_000);

  afterAll(async () => {
    await stopAll();
    for (const s of etcdServers) await stopServer(s);
    await cp?.kubectl(['delete', 'namespace', agentWork, '--wait=false']);
    await Promise.all([pgServer?.destroy(), ldap?.destroy()]);
  });

  it('keeps a database, a generated superuser Secret and directory passwords in step with its ServiceAccount token', async () => {
    const as = ['--as', `system:serviceaccount:${installNs}:${agentSa}`];
    for (const [verb, what] of [
      ['delete', 'secrets'],
      ['patch', 'statefulsets.apps'],
      ['update', 'postgresdatabases.kiln.dev'],
    ]) {
      expect((await cp.kubectl(['auth', 'can-i', verb!, what!, '-n', agentWork, ...as])).stdout.trim()).toBe('no');
    }
    await applyIn(kiln('PostgresInstance', 'fresh', {}));
    await applyIn(kiln('PostgresDatabase', 'orders', { instance: 'pg', name: 'orders', reclaimPolicy: 'Delete' }));
    await applyIn(
      kiln('DirectoryService', 'ds', { image: 'ds:7', passwords: { [`uid=admin,${SUFFIX}`]: { secretName: 'ds-admin' }, [`uid=svc,ou=admins,${SUFFIX}`]: { secretName: 'svc-password' } } }),
    );
    const a = await startAgent();
    const ready = async (kind: string, n: string, type: string) =>
      waitFor(
        `${kind}/${n} ${type}`,
        async () => (await condition(kind, n, type, agentWork))?.status === 'True',
        60_000,
        () => a.lines.slice(-10).join('\n'),
      );
    await ready('PostgresDatabase', 'orders', 'DatabaseReady');
    await ready('PostgresInstance', 'fresh', 'SuperuserSecretReady');
    await ready('DirectoryService', 'ds', 'PasswordsSynced');
    expect(await ldap!.canBind(`uid=svc,ou=admins,${SUFFIX}`, 'the-right-one')).toBe(true);
    expect((await pgServer!.sql("SELECT count(*) FROM pg_database WHERE datname = 'orders'")).trim()).toBe('1');
    // Deleting runs the finalizer with the same rights: the database goes.
    await cp.kubectlOk(['-n', agentWork, 'delete', 'postgresdatabase', 'orders', '--timeout=60s']);
    expect((await pgServer!.sql("SELECT count(*) FROM pg_database WHERE datname = 'orders'")).trim()).toBe('0');
    expect(a.lines.filter((l) => refusedLine(l))).toEqual([]);
    await stopAll();
  }, 180_000);

  it('installed for one namespace (agentNamespaces), may use Secrets only there, and still keeps a database in step', async () => {
    const scopedName = `kra-${id}`;
    const scopedSa = `${scopedName}-agent`;
    const scoped: InstallOptions = { ...base, name: scopedName, tokenNamespaces: [], agentNamespaces: [agentWork] };
    const objs = installObjects(scoped);
    installed.push(...objs);
    const r = await applyObjects(cp, objs);
    expect(r.stderr).toBe('');
    const as = ['--as', `system:serviceaccount:${installNs}:${scopedSa}`];
    const can = async (...args: string[]) => (await cp.kubectl(['auth', 'can-i', ...args, ...as])).stdout.trim();
    await waitFor('the RoleBinding enforced', async () => (await can('list', 'secrets', '-n', agentWork)) === 'yes', 10_000);
    for (const verb of ['get', 'watch', 'create', 'patch']) expect(await can(verb, 'secrets', '-n', agentWork)).toBe('yes');
    expect(await can('list', 'secrets', '--all-namespaces')).toBe('no');
    expect(await can('watch', 'secrets', '--all-namespaces')).toBe('no');
    for (const ns of ['kube-system', work, installNs]) {
      for (const verb of ['get', 'list', 'create']) expect(await can(verb, 'secrets', '-n', ns), `${verb} secrets -n ${ns}`).toBe('no');
    }
    const a = await startAgent(scoped, scopedSa, await serviceAccountKubeconfig(cp, installNs, scopedSa));
    try {
      expect(a.lines.join('\n')).not.toMatch(/forbidden/i);
      await applyIn(kiln('PostgresDatabase', 'scoped', { instance: 'pg', name: 'scoped' }));
      await waitFor(
        'PostgresDatabase/scoped DatabaseReady',
        async () => (await condition('PostgresDatabase', 'scoped', 'DatabaseReady', agentWork))?.status === 'True',
        60_000,
        () => a.lines.slice(-10).join('\n'),
      );
      expect(a.lines.filter((l) => refusedLine(l))).toEqual([]);
    } finally {
      await stopAll();
    }
  }, 180_000);

  ruleTable({
    covers: 'every rule of its ClusterRole and Role has a row below',
    rows: AGENT_RULE_ROWS,
    rules: [...AGENT_RULES, ...leaseRules(agentSa)],
    rowName: 'agent-row',
    ns: agentWork,
    sa: agentSa,
    setRules: (omit) => setRules(omit, 'agent', agentSa),
    start: () => startAgent(),
  });

  describe('the namespace-scoped install (--namespaced): the agent with Roles only', () => {
    const naName = `krna-${id}`;
    const naSa = `${naName}-agent`;
    const agentNamespaced: InstallOptions = { mode: 'apply', version: 'test', namespace: installNs, name: naName, watchNamespaces: [agentWork] };
    let naKubeconfig = '';
    beforeAll(async () => {
      const objs = installObjects(agentNamespaced);
      expect(objs.filter((o) => CLUSTER_SCOPED.includes(o.kind))).toEqual([]);
      installed.push(...objs);
      const r = await applyObjects(cp, objs);
      if (r.code !== 0) throw new Error(r.stderr);
      naKubeconfig = await serviceAccountKubeconfig(cp, installNs, naSa);
    }, 60_000);

    it('holds nothing cluster-wide, and keeps a database, a generated superuser Secret and directory passwords in step', async () => {
      await waitFor('the Roles enforced', async () => (await canAs(naSa, 'list', 'secrets', '-n', agentWork)) === 'yes', 10_000);
      for (const what of ['secrets', 'postgresinstances.kiln.dev', 'postgresdatabases.kiln.dev', 'directoryservices.kiln.dev', 'events']) {
        for (const verb of ['list', 'watch', 'create']) expect(await canAs(naSa, verb, what, '--all-namespaces'), `${verb} ${what} -A`).toBe('no');
        for (const ns of ['kube-system', work]) expect(await canAs(naSa, 'list', what, '-n', ns), `list ${what} -n ${ns}`).toBe('no');
      }
      await applyIn(kiln('PostgresInstance', 'ns-fresh', {}));
      await applyIn(
        kiln('DirectoryService', 'ds', { image: 'ds:7', passwords: { [`uid=admin,${SUFFIX}`]: { secretName: 'ds-admin' }, [`uid=svc,ou=admins,${SUFFIX}`]: { secretName: 'svc-password' } } }),
      );
      // A rotated password: only an agent that reads the Secret and binds to the directory carries it out.
      await cp.kubectlOk(['-n', agentWork, 'patch', 'secret', 'svc-password', '--type=merge', '-p', JSON.stringify({ stringData: { password: 'rotated-by-namespaced' } })]);
      await applyIn(kiln('PostgresDatabase', 'ns-orders', { instance: 'pg', name: 'ns_orders', reclaimPolicy: 'Delete' }));
      const a = await startAgent(agentNamespaced, naSa, naKubeconfig);
      const ready = async (kind: string, n: string, type: string) =>
        waitFor(
          `${kind}/${n} ${type}`,
          async () => (await condition(kind, n, type, agentWork))?.status === 'True',
          60_000,
          () => a.lines.slice(-10).join('\n'),
        );
      await ready('PostgresDatabase', 'ns-orders', 'DatabaseReady');
      await ready('PostgresInstance', 'ns-fresh', 'SuperuserSecretReady');
      await waitFor(
        'the rotated password in the directory',
        async () => ldap!.canBind(`uid=svc,ou=admins,${SUFFIX}`, 'rotated-by-namespaced'),
        60_000,
        () => a.lines.slice(-10).join('\n'),
      );
      await ready('DirectoryService', 'ds', 'PasswordsSynced');
      expect((await pgServer!.sql("SELECT count(*) FROM pg_database WHERE datname = 'ns_orders'")).trim()).toBe('1');
      await cp.kubectlOk(['-n', agentWork, 'delete', 'postgresdatabase', 'ns-orders', '--timeout=60s']);
      expect((await pgServer!.sql("SELECT count(*) FROM pg_database WHERE datname = 'ns_orders'")).trim()).toBe('0');
      expect(a.lines.filter((l) => refusedLine(l))).toEqual([]);
      await stopAll();
    }, 180_000);

    ruleTable({
      covers: 'every rule of its Roles has a row below (the same rows as the cluster-wide install)',
      rows: AGENT_RULE_ROWS,
      rules: [...AGENT_RULES, ...leaseRules(naSa)],
      rowName: 'agent-ns-row',
      ns: agentWork,
      sa: naSa,
      setRules: (omit) => setRules(omit, 'agent', naSa, agentNamespaced, agentWork),
      start: () => startAgent(agentNamespaced, naSa, naKubeconfig),
    });
  });
});
