/**
 * Proves the integration control plane is a real Kubernetes: version, RBAC
 * with minted identities, garbage collection, namespace deletion and the
 * StatefulSet controller, all through kubectl.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { MANUAL_LABEL } from '../harness/stand-in-kubelet.js';
import { waitFor as waitUntil } from '../harness/wait.js';

let cp: ControlPlaneClient;

beforeAll(() => {
  cp = connectControlPlane(inject('controlPlane'));
});

const suffix = () => randomBytes(3).toString('hex');

const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000) => waitUntil(what, fn, timeoutMs);

async function createNamespace(prefix: string): Promise<string> {
  const ns = `${prefix}-${suffix()}`;
  await cp.kubectlOk(['create', 'namespace', ns]);
  return ns;
}

async function apply(manifest: unknown, kubeconfig?: string): Promise<void> {
  await cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(manifest), kubeconfig });
}

async function exists(args: string[]): Promise<boolean> {
  const r = await cp.kubectl(['get', ...args, '-o', 'name']);
  if (r.code === 0) return true;
  if (/NotFound|not found/.test(r.stderr)) return false;
  throw new Error(`kubectl get ${args.join(' ')}: ${r.stderr}`);
}

// Generous timeouts: GC and namespace deletion are asynchronous controllers.
describe('control plane', { timeout: 90_000 }, () => {
  it('is Kubernetes v1.34.4 (server and kubectl)', async () => {
    const out = JSON.parse(await cp.kubectlOk(['version', '-o', 'json']));
    expect(out.serverVersion.gitVersion).toBe('v1.34.4');
    expect(out.serverVersion.major).toBe('1');
    expect(out.serverVersion.minor).toBe('34');
    expect(out.clientVersion.gitVersion).toBe('v1.34.4');
    expect(cp.version).toBe('v1.34.4');
  });

  it('authenticates minted identities and enforces RBAC', async () => {
    const ns = await createNamespace('rbac');
    const user = `alice-${suffix()}`;
    const id = await cp.mintIdentity(user, ['kiln:testers', 'team-a']);

    const whoami = JSON.parse(await cp.kubectlOk(['auth', 'whoami', '-o', 'json'], { kubeconfig: id.kubeconfig }));
    expect(whoami.status.userInfo.username).toBe(user);
    expect(whoami.status.userInfo.groups).toEqual(expect.arrayContaining(['kiln:testers', 'team-a', 'system:authenticated']));

    const denied = await cp.kubectl(['get', 'configmaps', '-n', ns], { kubeconfig: id.kubeconfig });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/Forbidden/);
    expect(denied.stderr).toContain(`User "${user}" cannot list resource "configmaps"`);

    await apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'configmap-reader', namespace: ns },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
    });
    await apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'configmap-reader', namespace: ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-reader' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
    });

    const allowed = await waitFor(
      'RBAC to allow the list',
      async () => {
        const r = await cp.kubectl(['get', 'configmaps', '-n', ns, '-o', 'json'], { kubeconfig: id.kubeconfig });
        return r.code === 0 ? r : undefined;
      },
      20_000,
    );
    expect(JSON.parse(allowed.stdout).kind).toBe('List');

    // Still denied outside the Role's namespace and for other verbs.
    const other = await cp.kubectl(['get', 'configmaps', '-n', 'default'], { kubeconfig: id.kubeconfig });
    expect(other.stderr).toMatch(/forbidden/i);
    const create = await cp.kubectl(['create', 'configmap', 'x', '-n', ns], { kubeconfig: id.kubeconfig });
    expect(create.stderr).toMatch(/forbidden/i);

    await cp.kubectlOk(['delete', 'namespace', ns, '--wait=false']);
  });

  it('garbage-collects a dependent after its owner is deleted', async () => {
    const ns = await createNamespace('gc');
    await cp.kubectlOk(['create', 'configmap', 'owner', '-n', ns, '--from-literal', 'k=v']);
    const uid = (await cp.kubectlOk(['get', 'configmap', 'owner', '-n', ns, '-o', 'jsonpath={.metadata.uid}'])).trim();
    expect(uid).toMatch(/^[0-9a-f-]{36}$/);
    await apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'dependent',
        namespace: ns,
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid }],
      },
      data: { k: 'v' },
    });
    expect(await exists(['configmap', 'dependent', '-n', ns])).toBe(true);

    await cp.kubectlOk(['delete', 'configmap', 'owner', '-n', ns]);
    await waitFor('the dependent ConfigMap to be garbage-collected', async () => !(await exists(['configmap', 'dependent', '-n', ns])));
    // A ConfigMap without an owner stays.
    await cp.kubectlOk(['create', 'configmap', 'orphan', '-n', ns]);
    expect(await exists(['configmap', 'orphan', '-n', ns])).toBe(true);

    await cp.kubectlOk(['delete', 'namespace', ns, '--wait=false']);
  });

  it('deletes a namespace with its contents', async () => {
    const ns = await createNamespace('nsdel');
    await cp.kubectlOk(['create', 'configmap', 'inside', '-n', ns, '--from-literal', 'k=v']);
    await cp.kubectlOk(['delete', 'namespace', ns, '--wait=false']);

    const phase = (await cp.kubectl(['get', 'namespace', ns, '-o', 'jsonpath={.status.phase}'])).stdout;
    expect(['Terminating', '']).toContain(phase);

    await waitFor('the namespace to go away', async () => !(await exists(['namespace', ns])));
    expect(await exists(['configmap', 'inside', '-n', ns])).toBe(false);
  });

  it('creates Pods for a StatefulSet', async () => {
    const ns = await createNamespace('sts');
    // Left alone by the stand-in kubelet: what kube-controller-manager does on its own.
    await cp.kubectlOk(['label', 'namespace', ns, `${MANUAL_LABEL}=manual`]);
    await apply({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'web', namespace: ns },
      spec: {
        replicas: 2,
        serviceName: 'web',
        // No scheduler or kubelet here: pods stay Pending, so OrderedReady would stop at web-0.
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { containers: [{ name: 'web', image: 'registry.invalid/web:1' }] },
        },
      },
    });

    const pods = await waitFor('two StatefulSet pods', async () => {
      const list = JSON.parse(await cp.kubectlOk(['get', 'pods', '-n', ns, '-l', 'app=web', '-o', 'json']));
      return list.items.length === 2 ? list.items : undefined;
    });
    const names = pods.map((p: { metadata: { name: string } }) => p.metadata.name).sort();
    expect(names).toEqual(['web-0', 'web-1']);
    for (const pod of pods) {
      expect(pod.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'StatefulSet', name: 'web', controller: true })]);
      expect(pod.status.phase).toBe('Pending');
    }

    await cp.kubectlOk(['delete', 'namespace', ns, '--wait=false']);
  });
});
