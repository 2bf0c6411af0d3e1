/**
 * kiln's install manifests against a real API server: server-side dry run,
 * then for real; the Deployments' Pods pass the restricted Pod Security
 * Standard (the namespace enforces it); the ServiceAccounts get exactly the
 * rights the manifests say, and nothing like a wildcard.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { installObjects } from '../../install/install.js';
import type { K8sObject } from '../../kinds/types.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor } from '../harness/wait.js';
import { applyObjects, suffix, uninstall } from './install-support.js';

let cp: ControlPlaneClient;
const id = suffix();
const namespace = `kiln-install-${id}`;
const name = `ki-${id}`;
const applyMode = installObjects({ mode: 'apply', version: 'test', namespace, name, image: 'registry.example.com/kiln:test' });
const gitNamespace = `kiln-install-git-${id}`;
const gitMode = installObjects({
  mode: 'git',
  version: 'test',
  namespace: gitNamespace,
  name: `kig-${id}`,
  crds: 'skip',
  git: { repo: 'https://git.example.com/deploy.git', branch: 'main', cluster: 'install-test', tokenSecret: 'kiln-git' },
});
const can = async (sa: string, ...args: string[]) => (await cp.kubectl(['auth', 'can-i', ...args, '--as', `system:serviceaccount:${namespace}:${sa}`])).stdout.trim();

beforeAll(() => {
  cp = connectControlPlane(inject('controlPlane'));
});

afterAll(async () => {
  await uninstall(cp, applyMode);
  await uninstall(cp, gitMode);
});

describe('install manifests', () => {
  it('pass a server-side dry run (apply and git mode) before anything exists, then apply for real', async () => {
    const ns = (objs: K8sObject[]) => objs.filter((o) => o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition');
    // Namespaced objects cannot be dry-run into a namespace that does not exist yet: the cluster-scoped ones first.
    for (const objs of [applyMode, gitMode]) {
      const r = await applyObjects(cp, ns(objs), ['--dry-run=server']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    expect((await cp.kubectl(['get', 'namespace', namespace])).code).not.toBe(0); // a dry run made nothing
    for (const objs of [applyMode, gitMode]) {
      expect((await applyObjects(cp, ns(objs))).code).toBe(0);
      const dry = await applyObjects(cp, objs, ['--dry-run=server']);
      expect(dry.stderr).toBe('');
      expect(dry.stdout).toMatch(/deployment.apps\/\S+-controller serverside-applied \(server dry run\)/);
    }
    expect((await cp.kubectl(['get', 'deployment', '-n', namespace, `${name}-controller`])).code).not.toBe(0);
    const r = await applyObjects(cp, applyMode);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await applyObjects(cp, gitMode)).code).toBe(0);
    for (const o of applyMode) {
      const args = o.metadata.namespace ? ['-n', o.metadata.namespace] : [];
      const kind = o.kind === 'CustomResourceDefinition' ? 'crd' : o.kind.toLowerCase();
      expect((await cp.kubectl(['get', kind, o.metadata.name, ...args])).code, `${o.kind}/${o.metadata.name}`).toBe(0);
    }
  });

  it('applying the same manifests again changes nothing', async () => {
    const rv = async () =>
      (
        await cp.kubectlOk([
          'get',
          'deployment,clusterrole,serviceaccount',
          '-n',
          namespace,
          '-l',
          `app.kubernetes.io/instance=${name}`,
          '-o',
          'jsonpath={range .items[*]}{.metadata.resourceVersion} {end}',
        ])
      ).trim();
    const before = await rv();
    expect(before.split(' ').length).toBeGreaterThanOrEqual(4);
    expect((await applyObjects(cp, applyMode)).code).toBe(0);
    expect(await rv()).toBe(before);
  });

  it('the Deployments make Pods the restricted Pod Security Standard admits', async () => {
    const pods = await waitFor(
      'controller and agent Pods',
      async () => {
        const out = await cp.kubectl(['get', 'pods', '-n', namespace, '-o', 'json']);
        const items = JSON.parse(out.stdout || '{"items":[]}').items as K8sObject[];
        return items.length >= 2 ? items : undefined;
      },
      60_000,
    );
    expect(pods.map((p) => p.metadata.labels!['app.kubernetes.io/component']).sort()).toEqual(['agent', 'controller']);
    const events = await cp.kubectlOk(['get', 'events', '-n', namespace, '--field-selector', 'reason=FailedCreate', '-o', 'name']);
    expect(events.trim()).toBe('');
    // The same Pod without its securityContext is refused by the namespace's policy: the label is enforced.
    const pod = pods[0] as K8sObject & { spec: { containers: { securityContext?: unknown }[]; securityContext?: unknown } };
    const bare = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'bare', namespace },
      spec: { ...pod.spec, nodeName: undefined, securityContext: {}, containers: pod.spec.containers.map((c) => ({ ...c, securityContext: undefined })) },
    };
    const refused = await cp.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(bare) });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/violates PodSecurity "restricted/);
  });

  it('the ServiceAccounts have what their components use, and no more', async () => {
    const controller = `${name}-controller`;
    const agent = `${name}-agent`;
    expect(await can(controller, 'patch', 'statefulsets.apps', '-n', 'default')).toBe('yes');
    expect(await can(controller, 'patch', 'directoryservices.kiln.dev', '--subresource', 'status', '-n', 'default')).toBe('yes');
    // TokenRequest only where the platform admin bound it (--token-namespace): nowhere by default.
    expect(await can(controller, 'create', 'serviceaccounts', '--subresource', 'token', '-n', 'default')).toBe('no');
    expect(await can(controller, 'create', 'serviceaccounts', '--subresource', 'token', '-n', 'kube-system')).toBe('no');
    expect(await can(controller, 'update', `leases.coordination.k8s.io/${controller}`, '-n', namespace)).toBe('yes');
    expect(await can(controller, 'update', 'leases.coordination.k8s.io/someone-else', '-n', namespace)).toBe('no');
    expect(await can(controller, 'create', 'leases.coordination.k8s.io', '-n', 'default')).toBe('no');
    expect(await can(controller, 'get', 'secrets', '-n', 'default')).toBe('no');
    expect(await can(controller, 'delete', 'persistentvolumeclaims', '-n', 'default')).toBe('no');
    expect(await can(controller, 'create', 'pods', '-n', 'default')).toBe('no');
    expect(await can(controller, 'list', 'postgresdatabases.kiln.dev', '-n', 'default')).toBe('no');
    expect(await can(agent, 'create', 'secrets', '-n', 'default')).toBe('yes');
    expect(await can(agent, 'delete', 'secrets', '-n', 'default')).toBe('no');
    expect(await can(agent, 'patch', 'postgresdatabases.kiln.dev', '-n', 'default')).toBe('yes');
    expect(await can(agent, 'update', 'postgresdatabases.kiln.dev', '-n', 'default')).toBe('no');
    expect(await can(agent, 'patch', 'postgresdatabases.kiln.dev', '--subresource', 'status', '-n', 'default')).toBe('yes');
    expect(await can(agent, 'patch', 'cacheclusters.kiln.dev', '--subresource', 'status', '-n', 'default')).toBe('no');
    expect(await can(agent, 'patch', 'statefulsets.apps', '-n', 'default')).toBe('no');
    expect(await can(agent, 'update', `leases.coordination.k8s.io/${agent}`, '-n', namespace)).toBe('yes');
    // The git-mode controller cannot touch any rendered kind.
    const gitController = `system:serviceaccount:${gitNamespace}:kig-${id}-controller`;
    expect((await cp.kubectl(['auth', 'can-i', 'patch', 'statefulsets.apps', '-n', 'default', '--as', gitController])).stdout.trim()).toBe('no');
    expect((await cp.kubectl(['auth', 'can-i', 'patch', 'cacheclusters.kiln.dev', '-n', 'default', '--as', gitController])).stdout.trim()).toBe('no');
    expect((await cp.kubectl(['auth', 'can-i', 'patch', 'cacheclusters.kiln.dev', '--subresource', 'status', '-n', 'default', '--as', gitController])).stdout.trim()).toBe('yes');
    // No wildcard anywhere: the rights listed are exactly the rules rendered.
    const list = await cp.kubectlOk(['auth', 'can-i', '--list', '-n', 'default', '--as', `system:serviceaccount:${namespace}:${controller}`]);
    expect(list).not.toMatch(/^\*\.\*|\[\*\]/m);
  });

  it('uninstalling without the CRDs removes kiln and keeps every resource; `kubectl delete kiln --all` removes resources of every kind', async () => {
    const tenant = `kiln-install-res-${id}`;
    await cp.kubectlOk(['create', 'namespace', tenant]);
    const grid = { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g', namespace: tenant }, spec: { cache: 'c' } };
    const cache = { apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', metadata: { name: 'c', namespace: tenant }, spec: { image: 'registry.example.com/cache:1' } };
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [grid, cache] }) });
    const withoutCrds = installObjects({ mode: 'apply', version: 'test', namespace, name, image: 'registry.example.com/kiln:test', crds: 'skip' });
    const r = await cp.kubectl(['delete', '-f', '-', '--wait=false'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: withoutCrds }) });
    expect(r.stderr).toBe('');
    expect((await cp.kubectl(['get', 'clusterrole', `${name}-controller`])).code).not.toBe(0);
    expect((await cp.kubectl(['get', 'clusterrolebinding', `${name}-agent`])).code).not.toBe(0);
    expect((await cp.kubectl(['get', 'crd', 'datagrids.kiln.dev'])).code).toBe(0);
    expect((await cp.kubectl(['get', '-n', tenant, 'datagrid', 'g'])).code).toBe(0);
    const deleted = await cp.kubectlOk(['delete', 'kiln', '--all', '-n', tenant]);
    expect(deleted).toMatch(/datagrid.kiln.dev "g" deleted/);
    expect(deleted).toMatch(/cachecluster.kiln.dev "c" deleted/);
    expect((await cp.kubectlOk(['get', 'kiln', '-n', tenant, '-o', 'name'])).trim()).toBe('');
    await cp.kubectl(['delete', 'namespace', tenant, '--wait=false']);
  });
});
