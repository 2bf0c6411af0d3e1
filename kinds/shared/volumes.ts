import { ApiObject } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';

/** A VolumeSnapshot (snapshot.storage.k8s.io/v1, served by the CSI snapshotter's CRDs). */
export class VolumeSnapshot extends Construct {
  constructor(
    scope: Construct,
    id: string,
    props: {
      name: string;
      labels: Record<string, string>;
      claimName: string;
      volumeSnapshotClassName?: string;
      annotations?: Record<string, string>;
    },
  ) {
    super(scope, id);
    new ApiObject(this, 'Resource', {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: { name: props.name, labels: props.labels, annotations: props.annotations },
      spec: {
        ...(props.volumeSnapshotClassName ? { volumeSnapshotClassName: props.volumeSnapshotClassName } : {}),
        source: { persistentVolumeClaimName: props.claimName },
      },
    });
  }
}

/** A standalone claim, optionally created from a snapshot. */
export class Claim extends Construct {
  constructor(
    scope: Construct,
    id: string,
    props: {
      name: string;
      labels: Record<string, string>;
      size: string;
      storageClassName?: string;
      fromSnapshot?: string;
    },
  ) {
    super(scope, id);
    new k8s.KubePersistentVolumeClaim(this, 'Resource', {
      metadata: { name: props.name, labels: props.labels },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: props.storageClassName,
        resources: { requests: { storage: k8s.Quantity.fromString(props.size) } },
        dataSource: props.fromSnapshot ? { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: props.fromSnapshot } : undefined,
      },
    });
  }
}
