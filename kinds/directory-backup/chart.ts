/**
 * DirectoryBackup -> VolumeSnapshot `<name>-source` of the member's claim, a
 * claim `<name>-source` cloned from it, a backup claim `<name>-backup`, and a
 * Job `<name>-backup` that exports the clone into the backup claim (the live
 * volume is never mounted by the Job). The snapshot's class is the backup's
 * spec.volumeSnapshotClassName, else the DirectoryService's
 * spec.storage.volumeSnapshotClassName (its render input), else the cluster's
 * default.
 */
import { Chart } from 'cdk8s';
import type { Construct } from 'constructs';
import type { DirectoryBackupSpec } from '../../imports/kiln.dev.js';
import { DirectoryToolJob } from '../shared/directory-job.js';
import { standardLabels } from '../shared/labels.js';
import { Claim, VolumeSnapshot } from '../shared/volumes.js';
import type { KilnResource, RenderContext, ResourceRequirements } from '../types.js';

export type DirectoryBackupResource = KilnResource<Omit<DirectoryBackupSpec, 'resources'> & { resources?: ResourceRequirements }>;

export const backupClaimName = (backup: string) => `${backup}-backup`;

export class DirectoryBackupChart extends Chart {
  constructor(scope: Construct, id: string, resource: DirectoryBackupResource, context: RenderContext = {}) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
    const { name } = resource.metadata;
    const spec = resource.spec;
    const labels = standardLabels('ds', 'backup', resource);
    const size = spec.storage?.size ?? '10Gi';
    new VolumeSnapshot(this, 'Snapshot', {
      name: `${name}-source`,
      labels,
      claimName: `data-${spec.directoryService}-${spec.ordinal ?? 0}`,
      volumeSnapshotClassName: spec.volumeSnapshotClassName ?? context.directoryService?.volumeSnapshotClassName,
    });
    new Claim(this, 'Source', { name: `${name}-source`, labels, size, storageClassName: spec.storage?.storageClassName, fromSnapshot: `${name}-source` });
    new Claim(this, 'Backup', { name: backupClaimName(name), labels, size, storageClassName: spec.storage?.storageClassName });
    new DirectoryToolJob(this, 'Job', {
      resource,
      name: `${name}-backup`,
      labels,
      command: 'backup',
      dataClaim: `${name}-source`,
      backupClaim: backupClaimName(name),
    });
  }
}
