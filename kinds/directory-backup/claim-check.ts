/**
 * A DirectoryBackup snapshots `data-<directory>-<ordinal>` and a
 * DirectoryRestore mounts `<backup>-backup`, both in a Job running the image
 * the resource names. Before kiln creates either, the claim must be what the
 * resource says it is: the data volume of that DirectoryService's member (the
 * StatefulSet's claim), or the backup volume kiln made for that
 * DirectoryBackup. Otherwise whoever may create a backup could copy any
 * same-named claim in the namespace (another application's `data-<x>-0`)
 * into a pod running an image of their choice.
 */
import { selectorLabels } from '../shared/labels.js';
import type { K8sObject, KilnResource } from '../types.js';
import { isNotFound, type KubeApi } from '../../kube/client.js';
import type { KubeObject } from '../../kube/informer.js';
import type { LiveResource, PreApplyCheck, PreApplyDeps } from '../kind.js';

export const OK: PreApplyCheck = { ok: true };

/**
 * Checked until the object that reads the claim (`reader`: the backup's
 * VolumeSnapshot, the restore's Job) exists as this resource's: after that the
 * copy is made.
 */
export function readerExists(live: LiveResource, reader: K8sObject | undefined, deps: PreApplyDeps): boolean {
  return (
    !!reader &&
    !!deps.children
      .get(`${reader.apiVersion}/${reader.kind}`)
      ?.get(live.metadata.namespace, reader.metadata.name)
      ?.metadata.ownerReferences?.some((o) => o.controller && o.uid === live.metadata.uid)
  );
}

/** The backup's VolumeSnapshot reads the data claim. */
export async function checkDataClaimOf(live: LiveResource, desired: K8sObject[], deps: PreApplyDeps): Promise<PreApplyCheck> {
  if (
    readerExists(
      live,
      desired.find((o) => o.kind === 'VolumeSnapshot'),
      deps,
    )
  )
    return OK;
  return checkDataClaim(live, live.metadata.namespace!, deps);
}

/** `data-<x>-<n>` must carry the selector labels kiln gives DirectoryService x's StatefulSet (its claims get them), and no other controller. */
async function checkDataClaim(live: KilnResource, namespace: string, deps: PreApplyDeps): Promise<PreApplyCheck> {
  const spec = live.spec as { directoryService: string; ordinal?: number };
  const directory = deps.resources.get('DirectoryService')?.get(namespace, spec.directoryService) as (KubeObject & KilnResource) | undefined;
  if (!directory) return { ok: false, waiting: `DirectoryService ${namespace}/${spec.directoryService} not found` };
  const name = `data-${spec.directoryService}-${spec.ordinal ?? 0}`;
  const claim = await getClaim(deps.client, namespace, name);
  if (!claim) return { ok: false, waiting: `PersistentVolumeClaim ${namespace}/${name} not found` };
  const labels = claim.metadata.labels ?? {};
  const wanted = selectorLabels('ds', directory);
  const labelled = Object.entries(wanted).every(([k, v]) => labels[k] === v);
  // With retention policy Delete the StatefulSet controller owns its claims; kiln's policy is Retain.
  const sts = deps.children.get('apps/v1/StatefulSet')?.get(namespace, spec.directoryService);
  const controller = (claim.metadata.ownerReferences ?? []).find((o) => o.controller);
  const foreignController = controller && !(controller.kind === 'StatefulSet' && sts && controller.uid === sts.metadata.uid);
  if (labelled && !foreignController) return OK;
  return {
    ok: false,
    foreign: `PersistentVolumeClaim ${namespace}/${name} is not a data volume of DirectoryService ${spec.directoryService} (${
      foreignController
        ? `controlled by ${controller.kind}/${controller.name}`
        : `it lacks the labels ${Object.entries(wanted)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ')}`
    }): no snapshot or Job is made from it`,
  };
}

export async function getClaim(client: KubeApi, namespace: string, name: string): Promise<KubeObject | undefined> {
  try {
    return await client.get<KubeObject>({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
