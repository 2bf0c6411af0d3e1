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
import { backupClaimName } from '../../kinds/directory-backup/chart.js';
import { selectorLabels } from '../../kinds/shared/labels.js';
import type { KilnResource } from '../../kinds/types.js';
import { isNotFound, type KubeApi } from '../../kube/client.js';
import type { Informer, KubeObject } from '../../kube/informer.js';

export type ClaimCheck = { ok: true } | { ok: false; waiting: string } | { ok: false; foreign: string };

export interface ClaimCheckDeps {
  client: KubeApi;
  resources: Map<string, Informer>;
  children: Map<string, Informer>;
}

const OK: ClaimCheck = { ok: true };
const claimRef = (namespace: string, name: string) => ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name });

/**
 * Whether the claim that `live` (a DirectoryBackup or DirectoryRestore) reads
 * belongs to what it names. Checked until the object that reads the claim (the
 * backup's VolumeSnapshot, the restore's Job) exists: after that the copy is made.
 */
export async function checkClaim(live: KubeObject & KilnResource, reader: { apiVersion: string; kind: string; metadata: { namespace?: string; name: string } } | undefined, deps: ClaimCheckDeps): Promise<ClaimCheck> {
  if (live.kind !== 'DirectoryBackup' && live.kind !== 'DirectoryRestore') return OK;
  const namespace = live.metadata.namespace!;
  if (reader && deps.children.get(`${reader.apiVersion}/${reader.kind}`)?.get(namespace, reader.metadata.name)?.metadata.ownerReferences?.some((o) => o.controller && o.uid === live.metadata.uid)) return OK;
  return live.kind === 'DirectoryBackup' ? checkDataClaim(live, namespace, deps) : checkBackupClaim(live, namespace, deps);
}

/** `data-<x>-<n>` must carry the selector labels kiln gives DirectoryService x's StatefulSet (its claims get them), and no other controller. */
async function checkDataClaim(live: KilnResource, namespace: string, deps: ClaimCheckDeps): Promise<ClaimCheck> {
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
  return { ok: false, foreign: `PersistentVolumeClaim ${namespace}/${name} is not a data volume of DirectoryService ${spec.directoryService} (${foreignController ? `controlled by ${controller!.kind}/${controller!.name}` : `it lacks the labels ${Object.entries(wanted).map(([k, v]) => `${k}=${v}`).join(', ')}`}): no snapshot or Job is made from it` };
}

/** `<backup>-backup` must be the claim kiln made for that DirectoryBackup (its controller reference names the backup's UID). */
async function checkBackupClaim(live: KilnResource, namespace: string, deps: ClaimCheckDeps): Promise<ClaimCheck> {
  const backupName = (live.spec as { backup: string }).backup;
  const backup = deps.resources.get('DirectoryBackup')?.get(namespace, backupName);
  if (!backup) return { ok: false, waiting: `DirectoryBackup ${namespace}/${backupName} not found` };
  const name = backupClaimName(backupName);
  const cached = deps.children.get('v1/PersistentVolumeClaim')?.get(namespace, name);
  const claim = cached ?? (await getClaim(deps.client, namespace, name));
  if (!claim) return { ok: false, waiting: `PersistentVolumeClaim ${namespace}/${name} not found` };
  const controller = (claim.metadata.ownerReferences ?? []).find((o) => o.controller);
  if (controller?.kind === 'DirectoryBackup' && controller.uid === backup.metadata.uid) return OK;
  return { ok: false, foreign: `PersistentVolumeClaim ${namespace}/${name} is not the backup volume of DirectoryBackup ${backupName} (${controller ? `controlled by ${controller.kind}/${controller.name}` : 'no controller'}): no Job mounts it` };
}

async function getClaim(client: KubeApi, namespace: string, name: string): Promise<KubeObject | undefined> {
  try {
    return await client.get<KubeObject>(claimRef(namespace, name));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
