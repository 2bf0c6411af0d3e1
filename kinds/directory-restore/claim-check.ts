/** A DirectoryRestore's Job mounts `<backup>-backup`: only the claim kiln made for that DirectoryBackup (see ../directory-backup/claim-check.ts). */
import { backupClaimName } from '../directory-backup/chart.js';
import { getClaim, OK, readerExists } from '../directory-backup/claim-check.js';
import type { K8sObject, KilnResource } from '../types.js';
import type { LiveResource, PreApplyCheck, PreApplyDeps } from '../kind.js';

/** The restore's Job reads the backup claim. */
export async function checkBackupClaimOf(live: LiveResource, desired: K8sObject[], deps: PreApplyDeps): Promise<PreApplyCheck> {
  if (
    readerExists(
      live,
      desired.find((o) => o.kind === 'Job'),
      deps,
    )
  )
    return OK;
  return checkBackupClaim(live, live.metadata.namespace!, deps);
}

/** `<backup>-backup` must be the claim kiln made for that DirectoryBackup (its controller reference names the backup's UID). */
async function checkBackupClaim(live: KilnResource, namespace: string, deps: PreApplyDeps): Promise<PreApplyCheck> {
  const backupName = (live.spec as { backup: string }).backup;
  const backup = deps.resources.get('DirectoryBackup')?.get(namespace, backupName);
  if (!backup) return { ok: false, waiting: `DirectoryBackup ${namespace}/${backupName} not found` };
  const name = backupClaimName(backupName);
  const cached = deps.children.get('v1/PersistentVolumeClaim')?.get(namespace, name);
  const claim = cached ?? (await getClaim(deps.client, namespace, name));
  if (!claim) return { ok: false, waiting: `PersistentVolumeClaim ${namespace}/${name} not found` };
  const controller = (claim.metadata.ownerReferences ?? []).find((o) => o.controller);
  if (controller?.kind === 'DirectoryBackup' && controller.uid === backup.metadata.uid) return OK;
  return {
    ok: false,
    foreign: `PersistentVolumeClaim ${namespace}/${name} is not the backup volume of DirectoryBackup ${backupName} (${controller ? `controlled by ${controller.kind}/${controller.name}` : 'no controller'}): no Job mounts it`,
  };
}
