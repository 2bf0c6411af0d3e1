import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { KilnResource, ResourceRequirements } from '../types.js';
import { containerSecurity, podDefaults } from './pod.js';
import { containerResources } from './quantity.js';

const DS_UID = 11111;
const JOB_RESOURCES: ResourceRequirements = { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '1Gi' } };

/**
 * A Job running the directory image's `backup` or `restore` command with the
 * data volume at /opt/opendj/data and the backup volume at /backup.
 */
export class DirectoryToolJob extends Construct {
  constructor(
    scope: Construct,
    id: string,
    props: {
      resource: KilnResource<{ image: string; imagePullPolicy?: string; resources?: ResourceRequirements }>;
      name: string;
      labels: Record<string, string>;
      command: 'backup' | 'restore';
      dataClaim: string;
      backupClaim: string;
    },
  ) {
    super(scope, id);
    const { spec } = props.resource;
    new k8s.KubeJob(this, 'Resource', {
      metadata: { name: props.name, labels: props.labels },
      spec: {
        backoffLimit: 3,
        template: {
          metadata: { labels: props.labels },
          spec: {
            ...podDefaults({ fsGroup: 0, runAsUser: DS_UID, runAsGroup: 0, terminationGracePeriodSeconds: 30 }),
            restartPolicy: 'OnFailure',
            containers: [
              {
                name: props.command,
                image: spec.image,
                imagePullPolicy: spec.imagePullPolicy ?? 'IfNotPresent',
                args: [props.command],
                env: [
                  { name: 'DS_DATA_DIR', value: '/opt/opendj/data' },
                  { name: 'DS_BACKUP_DIR', value: '/backup' },
                ],
                resources: containerResources(spec.resources, JOB_RESOURCES),
                securityContext: containerSecurity({ readOnlyRootFilesystem: false, runAsUser: DS_UID, runAsGroup: 0 }),
                volumeMounts: [
                  { name: 'data', mountPath: '/opt/opendj/data', readOnly: props.command === 'backup' },
                  { name: 'backup', mountPath: '/backup', readOnly: props.command === 'restore' },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              { name: 'data', persistentVolumeClaim: { claimName: props.dataClaim } },
              { name: 'backup', persistentVolumeClaim: { claimName: props.backupClaim } },
              { name: 'tmp', emptyDir: {} },
            ],
          },
        },
      },
    });
  }
}
