/**
 * A stand-in for kube-controller-manager's pvc-protection controller, which
 * the test control plane does not run: a deleted PersistentVolumeClaim keeps
 * its kubernetes.io/pvc-protection finalizer, and so its name, for ever. In
 * the soak, where resources are deleted and created again under the same
 * name, that would leave every StatefulSet member and backup volume waiting
 * on a claim "being deleted", which no cluster with the real controller does.
 * Like the real one, it lets a claim go once no pod that is still running
 * (not Succeeded or Failed) mounts it. Only the soak's namespaces are touched.
 */
import type { KubeClient } from '../../kube/client.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const FINALIZER = 'kubernetes.io/pvc-protection';

export function startPvcProtection(client: KubeClient, namespaces: string[], everyMs = 2000): { stop(): Promise<void>; released: () => number } {
  let stopped = false;
  let released = 0;
  const once = async () => {
    for (const ns of namespaces) {
      const claims = (await client.request<{ items: Any[] }>('GET', `/api/v1/namespaces/${ns}/persistentvolumeclaims`)).items.filter(
        (c) => c.metadata.deletionTimestamp && c.metadata.finalizers?.includes(FINALIZER),
      );
      if (!claims.length) continue;
      const pods = (await client.request<{ items: Any[] }>('GET', `/api/v1/namespaces/${ns}/pods`)).items.filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
      const used = new Set(pods.flatMap((p) => (p.spec.volumes ?? []).map((v: Any) => v.persistentVolumeClaim?.claimName).filter(Boolean)));
      for (const c of claims) {
        if (used.has(c.metadata.name)) continue;
        const finalizers = (c.metadata.finalizers as string[]).filter((f) => f !== FINALIZER);
        await client
          .request('PATCH', `/api/v1/namespaces/${ns}/persistentvolumeclaims/${c.metadata.name}`, {
            body: { metadata: { finalizers, resourceVersion: c.metadata.resourceVersion } },
            contentType: 'application/merge-patch+json',
          })
          .then(
            () => released++,
            () => undefined,
          ); // a conflict or a claim already gone: the next round looks again
      }
    }
  };
  const loop = (async () => {
    while (!stopped) {
      await once().catch(() => undefined);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
    released: () => released,
  };
}
