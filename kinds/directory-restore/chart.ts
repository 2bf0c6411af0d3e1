/**
 * DirectoryRestore -> a claim `<name>-restore`, a Job `<name>-restore` that
 * restores the backup claim of spec.backup into it, and a VolumeSnapshot
 * `<name>-restore` of the result, which a DirectoryService names in
 * spec.init.fromBackup. The snapshot carries kiln.dev/apply-after so the
 * controller creates it only once the Job has succeeded.
 */
import { Chart } from 'cdk8s';
import type { Construct } from 'constructs';
import type { DirectoryRestoreSpec } from '../../imports/kiln.dev.js';
import { APPLY_AFTER_ANNOTATION } from '../api.js';
import { backupClaimName } from '../directory-backup/chart.js';
import { DirectoryToolJob } from '../shared/directory-job.js';
import { standardLabels } from '../shared/labels.js';
import { Claim, VolumeSnapshot } from '../shared/volumes.js';
import type { KilnResource, ResourceRequirements } from '../types.js';

export type DirectoryRestoreResource = KilnResource<Omit<DirectoryRestoreSpec, 'resources'> & { resources?: ResourceRequirements }>;

export class DirectoryRestoreChart extends Chart {
  constructor(scope: Construct, id: string, resource: DirectoryRestoreResource) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
    const target = `${resource.metadata.name}-restore`;
    const spec = resource.spec;
    const labels = standardLabels('ds', 'restore', resource);
    new Claim(this, 'Target', { name: target, labels, size: spec.storage?.size ?? '10Gi', storageClassName: spec.storage?.storageClassName });
    new DirectoryToolJob(this, 'Job', {
      resource,
      name: target,
      labels,
      command: 'restore',
      dataClaim: target,
      backupClaim: backupClaimName(spec.backup),
    });
    new VolumeSnapshot(this, 'Snapshot', {
      name: target,
      labels,
      claimName: target,
      volumeSnapshotClassName: spec.volumeSnapshotClassName,
      annotations: { [APPLY_AFTER_ANNOTATION]: `batch/v1/Job/${target}:Complete` },
    });
  }
}
