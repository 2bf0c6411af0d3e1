/**
 * ConfigMapSync against a real control plane: every read and write in a
 * tenant namespace is made with the ServiceAccount's token (TokenRequest), so
 * RBAC decides where copies may go. Covers copies with owner labels, a 403
 * target next to synced ones, pruning, a foreign ConfigMap that is never
 * overwritten, a resync that writes nothing, drift repair, a namespace
 * selector, deletion through the finalizer, and that no token ever reaches an
 * outcome or a log line.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { KilnResource } from '../../kinds/types.js';
import { reconcileConfigMapSync, type ConfigMapSyncDeps, type ConfigMapSyncOutcome } from '../../kinds/config-map-sync/reconcile.js';
import { CONFIGMAPSYNC_FINALIZER } from '../../kinds/config-map-sync/finalizer.js';
import { ServiceAccountTokens } from '../../kube/service-account-clients.js';
import { KubeClient } from '../../kube/client.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor as waitUntil } from '../harness/wait.js';

let cp: ControlPlaneClient;
const suffix = () => randomBytes(3).toString('hex');
const createdNamespaces: string[] = [];

interface Call {
  identity: string;
  method: string;
  url: string;
}
const calls: Call[] = [];
const logLines: string[] = [];

/** Records every request a client sends (one per API call). */
function instrument(client: KubeClient, identity: string): KubeClient {
  client.onRequest = (verb, path) => calls.push({ identity, method: verb === 'LIST' || verb === 'WATCH' ? 'GET' : verb, url: client.server + path });
  return client;
}

/** The shared token cache, with every token client it hands out instrumented. */
class CountingTokens extends ServiceAccountTokens {
  private readonly seen = new WeakSet<KubeClient>();
  /** Every token handed out, to prove none of them leaks. */
  readonly issued = new Set<string>();
  override async clientFor(namespace: string, serviceAccount: string): Promise<KubeClient> {
    const client = await super.clientFor(namespace, serviceAccount);
    if (!this.seen.has(client)) {
      this.seen.add(client);
      const token = client.config.token;
      if (token) this.issued.add(token);
      instrument(client, `sa:${namespace}/${serviceAccount}`);
    }
    return client;
  }
}

let adminKc: KubeClient;
let deps: ConfigMapSyncDeps;
let tokens: CountingTokens;
const outcomes: ConfigMapSyncOutcome[] = [];

beforeAll(() => {
  cp = connectControlPlane(inject('controlPlane'));
  adminKc = instrument(new KubeClient(loadKubeConfig({ kubeconfig: cp.kubeconfig }), { qps: 0 }), 'controller');
  tokens = new CountingTokens(adminKc);
  deps = {
    kc: adminKc,
    fieldManager: 'kiln',
    tokens,
    log: (level, msg, fields) => logLines.push(JSON.stringify({ level, msg, ...fields })),
  };
});

afterAll(async () => {
  for (const ns of createdNamespaces) await cp.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs);

async function namespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const ns = `${prefix}-${suffix()}`;
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } });
  createdNamespaces.push(ns);
  return ns;
}

async function apply(manifest: unknown): Promise<void> {
  await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(manifest) });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- kubectl's JSON, read field by field in each test
async function getJson<T = Record<string, any>>(args: string[]): Promise<T | undefined> {
  const r = await cp.kubectl(['get', ...args, '-o', 'json']);
  if (r.code === 0) return JSON.parse(r.stdout) as T;
  if (/NotFound|not found/.test(r.stderr)) return undefined;
  throw new Error(`kubectl get ${args.join(' ')}: ${r.stderr}`);
}

const configMap = (ns: string, name: string) => getJson(['configmap', name, '-n', ns, '--show-managed-fields']);

/** Role + RoleBinding giving the ServiceAccount `verbs` on configmaps in `ns`. */
async function grant(ns: string, sa: { namespace: string; name: string }, verbs: string[]): Promise<void> {
  const name = `cms-${sa.name}`;
  await apply({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name, namespace: ns },
    rules: [{ apiGroups: [''], resources: ['configmaps'], verbs }],
  });
  await apply({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name, namespace: ns },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name: sa.name, namespace: sa.namespace }],
  });
  const as = `system:serviceaccount:${sa.namespace}:${sa.name}`;
  await waitFor(`RBAC for ${as} in ${ns}`, async () => {
    const r = await cp.kubectl(['auth', 'can-i', verbs[verbs.length - 1]!, 'configmaps', '-n', ns, '--as', as]);
    return r.stdout.trim() === 'yes';
  });
}

async function serviceAccount(ns: string, name: string): Promise<void> {
  await cp.kubectlOk(['create', 'serviceaccount', name, '-n', ns]);
}

async function fetchCms(ns: string, name: string): Promise<KilnResource | undefined> {
  return getJson<KilnResource>(['configmapsync', name, '-n', ns]);
}

/** What the controller loop does: reconcile, then record synced/failed in status (here: in memory). */
async function reconcile(ns: string, name: string, status?: ConfigMapSyncOutcome): Promise<ConfigMapSyncOutcome> {
  const r = await fetchCms(ns, name);
  if (!r) throw new Error(`ConfigMapSync ${ns}/${name} not found`);
  if (status) r.status = { ...(r.status ?? {}), synced: status.synced, failed: status.failed };
  const out = await reconcileConfigMapSync(r, deps);
  outcomes.push(out);
  return out;
}

const writes = (from: number) => calls.slice(from).filter((c) => c.method !== 'GET');

const OWNER = (ns: string, name: string) => ({
  'kiln.dev/owner-kind': 'ConfigMapSync',
  'kiln.dev/owner-name': name,
  'kiln.dev/owner-namespace': ns,
});

describe('ConfigMapSync with tenant-bounded rights', { timeout: 120_000 }, () => {
  let src: string;
  let a: string;
  let b: string;
  let c: string;
  let d: string;
  const sa = { namespace: '', name: 'tenant' };
  const cmsName = 'shared-config';
  let first: ConfigMapSyncOutcome;

  beforeAll(async () => {
    [src, a, b, c, d] = await Promise.all([namespace('cms-src'), namespace('cms-a'), namespace('cms-b'), namespace('cms-c'), namespace('cms-d')]);
    sa.namespace = src;
    await serviceAccount(src, sa.name);
    await apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'app-settings', namespace: src, labels: { team: 'payments' } },
      data: { 'log.level': 'info', 'feature.x': 'on' },
      binaryData: { 'logo.bin': Buffer.from([0, 1, 2, 255]).toString('base64') },
    });
    await grant(src, sa, ['get']);
    const rw = ['get', 'list', 'create', 'update', 'patch', 'delete'];
    await Promise.all([grant(a, sa, rw), grant(b, sa, rw), grant(d, sa, rw)]);
    // c: no rights at all.
    await apply({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'ConfigMapSync',
      metadata: { name: cmsName, namespace: src },
      spec: { source: { name: 'app-settings' }, targets: { namespaces: [a, b, c] }, serviceAccountName: sa.name },
    });
  });

  it('copies the source into A and B with owner labels; C (no rights) fails with the 403 message', async () => {
    first = await reconcile(src, cmsName);
    expect(first.synced).toEqual([a, b].sort());
    expect(first.pruned).toEqual([]);
    expect(first.stalled).toBeUndefined();
    expect(first.failed).toHaveLength(1);
    expect(first.failed[0]!.namespace).toBe(c);
    expect(first.failed[0]!.reason).toMatch(/forbidden/);
    expect(first.failed[0]!.reason).toContain(`User "system:serviceaccount:${src}:tenant" cannot get resource "configmaps"`);
    expect(first.failed[0]!.reason).toContain(`in the namespace "${c}"`);

    for (const ns of [a, b]) {
      const copy = await configMap(ns, 'app-settings');
      expect(copy?.metadata.labels).toMatchObject({ ...OWNER(src, cmsName), 'app.kubernetes.io/managed-by': 'kiln' });
      expect(copy?.metadata.labels.team).toBeUndefined(); // the source's own labels are not copied
      expect(copy?.metadata.annotations['kiln.dev/source']).toBe(`${src}/app-settings`);
      expect(copy?.data).toEqual({ 'log.level': 'info', 'feature.x': 'on' });
      expect(copy?.binaryData).toEqual({ 'logo.bin': Buffer.from([0, 1, 2, 255]).toString('base64') });
      // Written with server-side apply by the field manager kiln.
      const managers = (copy?.metadata.managedFields ?? []).map((m: { manager: string; operation: string }) => `${m.manager}/${m.operation}`);
      expect(managers).toEqual(['kiln/Apply']);
    }
    expect(await configMap(c, 'app-settings')).toBeUndefined();

    // The finalizer was added with the controller's identity.
    const live = await fetchCms(src, cmsName);
    expect(live?.metadata['finalizers']).toEqual([CONFIGMAPSYNC_FINALIZER]);
  });

  it('writes into target namespaces only with the ServiceAccount token', async () => {
    // Everything the controller identity did: one TokenRequest and the finalizer patch.
    const controller = calls.filter((x) => x.identity === 'controller').map((x) => `${x.method} ${new URL(x.url).pathname}`);
    expect(controller).toEqual([`PATCH /apis/kiln.dev/v1alpha1/namespaces/${src}/configmapsyncs/${cmsName}`, `POST /api/v1/namespaces/${src}/serviceaccounts/tenant/token`]);
    const viaToken = calls.filter((x) => x.identity === `sa:${src}/tenant`);
    expect(viaToken.some((x) => x.method === 'PATCH' && x.url.includes(`/namespaces/${a}/configmaps/app-settings`))).toBe(true);
    // The token configuration carries a bearer token and no client certificate.
    const kc = await tokens.kubeConfigFor(src, sa.name);
    expect(kc.token).toBeTruthy();
    expect(kc.cert ?? kc.key ?? kc.tokenFile).toBeUndefined();
    expect(kc.server).toBe(adminKc.server);
  });

  it('a resync with nothing changed sends no write (resourceVersions unchanged)', async () => {
    const before = await Promise.all([a, b].map(async (ns) => (await configMap(ns, 'app-settings'))?.metadata.resourceVersion));
    const mark = calls.length;
    const again = await reconcile(src, cmsName, first);
    expect(again).toEqual(first);
    expect(writes(mark)).toEqual([]);
    // No TokenRequest either: the token is cached.
    expect(calls.slice(mark).filter((x) => x.identity === 'controller')).toEqual([]);
    const after = await Promise.all([a, b].map(async (ns) => (await configMap(ns, 'app-settings'))?.metadata.resourceVersion));
    expect(after).toEqual(before);
  });

  it('follows a change of the source and repairs drift in a copy', async () => {
    await apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'app-settings', namespace: src, labels: { team: 'payments' } },
      data: { 'log.level': 'debug' }, // feature.x removed, binaryData removed
    });
    // Someone edits the copy in B: a key kiln did not write, and a changed value.
    await cp.kubectlOk(['patch', 'configmap', 'app-settings', '-n', b, '--type=merge', '-p', '{"data":{"extra":"1","log.level":"x"}}']);
    const out = await reconcile(src, cmsName, first);
    expect(out.synced).toEqual([a, b].sort());
    for (const ns of [a, b]) {
      const copy = await configMap(ns, 'app-settings');
      expect(copy?.data).toEqual({ 'log.level': 'debug' });
      expect(copy?.binaryData).toBeUndefined();
    }
    const mark = calls.length;
    expect(await reconcile(src, cmsName, out)).toEqual(out);
    expect(writes(mark)).toEqual([]);
  });

  it('never overwrites a same-named ConfigMap kiln does not own, and reports it', async () => {
    await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-settings', namespace: d }, data: { mine: 'yes' } });
    const foreignBefore = await configMap(d, 'app-settings');
    await cp.kubectlOk(['patch', 'configmapsync', cmsName, '-n', src, '--type=merge', '-p', JSON.stringify({ spec: { targets: { namespaces: [a, b, c, d] } } })]);
    const out = await reconcile(src, cmsName, first);
    expect(out.stalled?.reason).toBe('ForeignConfigMap');
    expect(out.stalled?.message).toContain(`${d}/app-settings exists and is not owned by kiln`);
    expect(out.synced).toEqual([a, b].sort()); // the other targets are still synced
    expect(out.failed.map((f) => f.namespace).sort()).toEqual([c, d].sort());
    const foreignAfter = await configMap(d, 'app-settings');
    expect(foreignAfter?.metadata.resourceVersion).toBe(foreignBefore?.metadata.resourceVersion);
    expect(foreignAfter?.data).toEqual({ mine: 'yes' });
    expect(calls.some((x) => x.method !== 'GET' && x.url.includes(`/namespaces/${d}/`))).toBe(false);

    // Dropping d again (it is recorded in status.failed) does not delete the foreign ConfigMap either.
    await cp.kubectlOk(['patch', 'configmapsync', cmsName, '-n', src, '--type=merge', '-p', JSON.stringify({ spec: { targets: { namespaces: [a, b, c] } } })]);
    const dropped = await reconcile(src, cmsName, out);
    expect(dropped.pruned).toEqual([]);
    expect(dropped.stalled).toBeUndefined();
    expect((await configMap(d, 'app-settings'))?.metadata.resourceVersion).toBe(foreignBefore?.metadata.resourceVersion);
    first = dropped;
  });

  it('prunes the copy in a namespace removed from the targets (UID precondition)', async () => {
    await cp.kubectlOk(['patch', 'configmapsync', cmsName, '-n', src, '--type=merge', '-p', JSON.stringify({ spec: { targets: { namespaces: [a, c] } } })]);
    const mark = calls.length;
    const out = await reconcile(src, cmsName, first);
    expect(out.pruned).toEqual([b]);
    expect(out.synced).toEqual([a]);
    expect(await configMap(b, 'app-settings')).toBeUndefined();
    expect(await configMap(a, 'app-settings')).toBeDefined();
    const deletes = writes(mark).filter((x) => x.method === 'DELETE');
    expect(deletes).toHaveLength(1);
    expect(deletes[0]!.identity).toBe(`sa:${src}/tenant`);
    expect(deletes[0]!.url).toContain(`/namespaces/${b}/configmaps/app-settings`);
    first = out;
  });

  it('deleting the resource removes every copy it owns, then the finalizer', async () => {
    // A fresh copy in b again, so there is more than one to remove.
    await cp.kubectlOk(['patch', 'configmapsync', cmsName, '-n', src, '--type=merge', '-p', JSON.stringify({ spec: { targets: { namespaces: [a, b, c] } } })]);
    first = await reconcile(src, cmsName, first);
    expect(first.synced).toEqual([a, b].sort());

    await cp.kubectlOk(['delete', 'configmapsync', cmsName, '-n', src, '--wait=false']);
    const deleting = await fetchCms(src, cmsName);
    expect(deleting?.metadata['deletionTimestamp']).toBeTruthy();
    const out = await reconcile(src, cmsName, first);
    expect(out.pruned).toEqual([a, b].sort());
    expect(await configMap(a, 'app-settings')).toBeUndefined();
    expect(await configMap(b, 'app-settings')).toBeUndefined();
    // The foreign ConfigMap and the source survive.
    expect(await configMap(d, 'app-settings')).toBeDefined();
    expect(await configMap(src, 'app-settings')).toBeDefined();
    await waitFor('the ConfigMapSync to go away', async () => (await fetchCms(src, cmsName)) === undefined);
  });
});

describe('ConfigMapSync with a namespace selector', { timeout: 120_000 }, () => {
  it('syncs selected namespaces, and on deletion finds copies in every namespace the token can list', async () => {
    const tag = suffix();
    const src = await namespace('cmsel-src');
    const [x, y] = await Promise.all([namespace('cmsel-x', { 'kiln-test/tenant': tag }), namespace('cmsel-y', { 'kiln-test/tenant': tag })]);
    const z = await namespace('cmsel-z'); // not selected
    const sa = { namespace: src, name: 'syncer' };
    await serviceAccount(src, sa.name);
    await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ca-bundle', namespace: src }, data: { 'ca.pem': 'PEM' } });
    await grant(src, sa, ['get']);
    const rw = ['get', 'list', 'create', 'patch', 'delete'];
    await Promise.all([grant(x, sa, rw), grant(y, sa, rw), grant(z, sa, rw)]);
    const listNs = `cms-list-namespaces-${tag}`;
    await apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: listNs },
      rules: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['list'] }],
    });
    await apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: listNs },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: listNs },
      subjects: [{ kind: 'ServiceAccount', name: sa.name, namespace: src }],
    });
    await waitFor('RBAC for namespace list', async () => (await cp.kubectl(['auth', 'can-i', 'list', 'namespaces', '--as', `system:serviceaccount:${src}:${sa.name}`])).stdout.trim() === 'yes');

    await apply({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'ConfigMapSync',
      metadata: { name: 'ca', namespace: src },
      spec: {
        source: { name: 'ca-bundle' },
        targets: { namespaceSelector: { matchLabels: { 'kiln-test/tenant': tag } } },
        serviceAccountName: sa.name,
      },
    });
    const out = await reconcile(src, 'ca');
    expect(out).toEqual({ synced: [x, y].sort(), failed: [], pruned: [] });
    expect((await configMap(x, 'ca-bundle'))?.data).toEqual({ 'ca.pem': 'PEM' });
    expect(await configMap(z, 'ca-bundle')).toBeUndefined();

    // The source is renamed: copies move to the new name, the old-named copies go.
    await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ca-bundle-v2', namespace: src }, data: { 'ca.pem': 'PEM2' } });
    await cp.kubectlOk(['patch', 'configmapsync', 'ca', '-n', src, '--type=merge', '-p', '{"spec":{"source":{"name":"ca-bundle-v2"}}}']);
    const renamed = await reconcile(src, 'ca', out);
    expect(renamed).toEqual({ synced: [x, y].sort(), failed: [], pruned: [] });
    for (const ns of [x, y]) {
      expect(await configMap(ns, 'ca-bundle')).toBeUndefined();
      expect((await configMap(ns, 'ca-bundle-v2'))?.data).toEqual({ 'ca.pem': 'PEM2' });
    }

    // A namespace that stops matching loses its copy.
    await cp.kubectlOk(['label', 'namespace', y, 'kiln-test/tenant-']);
    const afterUnlabel = await reconcile(src, 'ca', renamed);
    expect(afterUnlabel).toEqual({ synced: [x], failed: [], pruned: [y] });
    expect(await configMap(y, 'ca-bundle-v2')).toBeUndefined();

    // Status lost (e.g. restored from a backup without status): deletion still finds the copy by listing.
    await cp.kubectlOk(['delete', 'configmapsync', 'ca', '-n', src, '--wait=false']);
    const gone = await reconcile(src, 'ca', { synced: [], failed: [], pruned: [] });
    expect(gone.pruned).toEqual([x]);
    expect(await configMap(x, 'ca-bundle-v2')).toBeUndefined();
    await waitFor('the ConfigMapSync to go away', async () => (await fetchCms(src, 'ca')) === undefined);
    await cp.kubectl(['delete', 'clusterrolebinding,clusterrole', listNs]);
  });
});

describe('ConfigMapSync that cannot start', { timeout: 60_000 }, () => {
  it('an invalid spec is stalled naming the field and touches nothing', async () => {
    const mark = calls.length;
    const bad: KilnResource = {
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'ConfigMapSync',
      metadata: { name: 'bad', namespace: 'default', uid: '00000000-0000-0000-0000-000000000001' },
      spec: { source: { name: 'x' }, targets: {}, serviceAccountName: 'Not_Valid' },
      status: { synced: ['keep-me'] },
    };
    const out = await reconcileConfigMapSync(bad, deps);
    outcomes.push(out);
    expect(out.stalled?.reason).toBe('InvalidSpec');
    expect(out.stalled?.message).toContain('spec.serviceAccountName');
    expect(out.stalled?.message).toContain('spec.targets');
    expect(out.synced).toEqual(['keep-me']);
    expect(calls.length).toBe(mark);
  });

  it('a missing source is stalled as SourceUnreadable and no copy is touched', async () => {
    const src = await namespace('cmsmiss-src');
    const t = await namespace('cmsmiss-t');
    await serviceAccount(src, 'tenant');
    await grant(src, { namespace: src, name: 'tenant' }, ['get']);
    await grant(t, { namespace: src, name: 'tenant' }, ['get', 'list', 'create', 'patch', 'delete']);
    await apply({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'ConfigMapSync',
      metadata: { name: 'orphan', namespace: src },
      spec: { source: { name: 'does-not-exist' }, targets: { namespaces: [t] }, serviceAccountName: 'tenant' },
    });
    const mark = calls.length;
    const out = await reconcile(src, 'orphan');
    expect(out.stalled?.reason).toBe('SourceUnreadable');
    expect(out.stalled?.message).toContain(`ConfigMap ${src}/does-not-exist`);
    expect(out.stalled?.message).toMatch(/not found/);
    expect(writes(mark).filter((x) => x.identity !== 'controller')).toEqual([]);
    expect(await configMap(t, 'does-not-exist')).toBeUndefined();
    // Let the namespace go away at the end: drop kiln's finalizer by hand.
    await cp.kubectlOk(['patch', 'configmapsync', 'orphan', '-n', src, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
  });

  it('a ServiceAccount that does not exist is stalled as TokenRequestFailed', async () => {
    const src = await namespace('cmsnosa');
    await apply({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'ConfigMapSync',
      metadata: { name: 'nosa', namespace: src },
      spec: { source: { name: 'x' }, targets: { namespaces: ['default'] }, serviceAccountName: 'ghost' },
    });
    const out = await reconcile(src, 'nosa');
    expect(out.stalled?.reason).toBe('TokenRequestFailed');
    expect(out.stalled?.message).toContain(`ServiceAccount ${src}/ghost`);
    // Deleting it does not hang on the finalizer: the account is gone, so nothing can be cleaned with its rights.
    await cp.kubectlOk(['delete', 'configmapsync', 'nosa', '-n', src, '--wait=false']);
    await reconcile(src, 'nosa');
    await waitFor('the ConfigMapSync to go away', async () => (await fetchCms(src, 'nosa')) === undefined);
  });
});

describe('ServiceAccountTokens', () => {
  it('requests 600 s tokens and reuses one until 80% of its lifetime', async () => {
    const ns = await namespace('cmstok');
    await serviceAccount(ns, 'tenant');
    const kc = instrument(new KubeClient(loadKubeConfig({ kubeconfig: cp.kubeconfig }), { qps: 0 }), 'token-cache-test');
    let now = Date.now();
    const cache = new ServiceAccountTokens(kc, { now: () => now });
    const requests = () => calls.filter((x) => x.identity === 'token-cache-test' && x.method === 'POST').length;

    const [t1, t1b] = await Promise.all([cache.get(ns, 'tenant'), cache.get(ns, 'tenant')]);
    expect(t1b).toBe(t1); // concurrent callers share one TokenRequest
    expect(requests()).toBe(1);
    const claims = JSON.parse(Buffer.from(t1.split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number; sub: string };
    expect(claims.exp - claims.iat).toBe(600);
    expect(claims.sub).toBe(`system:serviceaccount:${ns}:tenant`);

    now += 470_000; // < 80% of 600 s
    expect(await cache.get(ns, 'tenant')).toBe(t1);
    expect(requests()).toBe(1);
    now += 20_000; // > 80%
    const t2 = await cache.get(ns, 'tenant');
    expect(requests()).toBe(2);
    expect(t2).not.toBe(t1);

    cache.invalidate(ns, 'tenant');
    await cache.get(ns, 'tenant');
    expect(requests()).toBe(3);

    // The client it builds authenticates as the ServiceAccount, with the controller's server and CA.
    const tokenKc = await cache.kubeConfigFor(ns, 'tenant');
    expect(tokenKc.server).toBe(kc.server);
    expect(tokenKc.ca).toBe(kc.config.ca);
    const who = await (
      await cache.clientFor(ns, 'tenant')
    ).request<{ status?: { userInfo?: { username?: string } } }>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    });
    expect(who.status?.userInfo?.username).toBe(`system:serviceaccount:${ns}:tenant`);
  });
});

describe('secrecy', () => {
  it('no token appears in any outcome or log line', () => {
    const haystack = JSON.stringify(outcomes) + '\n' + logLines.join('\n');
    expect(outcomes.length).toBeGreaterThan(5);
    expect(logLines.length).toBeGreaterThan(5);
    expect(tokens.issued.size).toBeGreaterThanOrEqual(3);
    for (const token of tokens.issued) {
      expect(token).toMatch(/^eyJ/); // a real projected ServiceAccount JWT
      expect(haystack).not.toContain(token);
      expect(haystack).not.toContain(token.split('.')[2]!); // not even its signature
    }
    expect(haystack).not.toContain(cp.adminToken);
    expect(haystack).not.toMatch(/eyJ[A-Za-z0-9_-]{8,}\./);
    expect(haystack).not.toMatch(/Bearer\s+\S/);
  });
});
