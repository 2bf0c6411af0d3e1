/**
 * DirectoryService -> headless Service, client Service, StatefulSet with a data
 * volume per member, PodDisruptionBudget. Claims are not owned by the resource
 * (retention policy Retain), so directory data outlives it.
 */
import { Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { DirectoryServiceSpec } from '../../imports/kiln.dev.js';
import { selectorLabels, standardLabels } from '../shared/labels.js';
import { containerSecurity, mergeEnv, podDefaults } from '../shared/pod.js';
import { containerResources } from '../shared/quantity.js';
import { podScheduling, type SchedulingSpec } from '../shared/scheduling.js';
import { claimTemplate, ROLLING_UPDATE, ClientService, HeadlessService, MemberDisruptionBudget, type ClientServiceType, type ServicePort } from '../shared/workload.js';
import type { KilnResource, ResourceRequirements } from '../types.js';
import { LDAPS_PORT } from './names.js';

export type DirectoryServiceResource = KilnResource<
  Omit<DirectoryServiceSpec, 'resources' | 'scheduling' | 'service' | 'env' | 'envFrom'> & {
    resources?: ResourceRequirements;
    scheduling?: SchedulingSpec;
    service?: { type?: ClientServiceType; annotations?: Record<string, string> };
    env?: k8s.EnvVar[];
    envFrom?: k8s.EnvFromSource[];
  }
>;

const APP = 'ds';
/** The directory image's uid; group 0 so an arbitrary-uid platform still works. */
const DS_UID = 11111;
export const DATA_DIR = '/opt/opendj/data';
export const DIRECTORY_PORTS: ServicePort[] = [
  { name: 'ldap', port: 1389 },
  { name: 'ldaps', port: LDAPS_PORT },
  { name: 'admin', port: 4444 },
  { name: 'replication', port: 8989 },
  { name: 'http', port: 8080 },
];
/** Environment variables kiln sets; validate/ refuses user env that redefines them. */
export const DIRECTORY_RESERVED_ENV = ['POD_NAME', 'POD_NAMESPACE', 'DS_SERVICE_NAME', 'DS_REPLICAS', 'DS_DATA_DIR', 'DS_INIT_LDIF_DIR'];

const DEFAULT_RESOURCES: ResourceRequirements = { requests: { cpu: '500m', memory: '2Gi' }, limits: { memory: '2Gi' } };
const SECRET_MOUNTS = { masterKeypair: 'master', sslKeypair: 'ssl', truststore: 'truststore' } as const;

export class DirectoryServiceChart extends Chart {
  constructor(scope: Construct, id: string, resource: DirectoryServiceResource) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
    const spec = resource.spec;
    const name = resource.metadata.name;
    const selector = selectorLabels(APP, resource);

    new HeadlessService(this, 'Headless', { resource, app: APP, selector, ports: DIRECTORY_PORTS, publishNotReadyAddresses: true });
    new ClientService(this, 'Client', {
      resource,
      app: APP,
      selector,
      ports: DIRECTORY_PORTS.filter((p) => p.name !== 'replication'),
      type: spec.service?.type,
      annotations: spec.service?.annotations,
    });
    new MemberDisruptionBudget(this, 'Budget', { resource, app: APP, selector });

    const volumes: k8s.Volume[] = [];
    const mounts: k8s.VolumeMount[] = [{ name: 'data', mountPath: DATA_DIR }];
    for (const [field, dir] of Object.entries(SECRET_MOUNTS) as [keyof typeof SECRET_MOUNTS, string][]) {
      const secretName = spec.secrets?.[field];
      if (!secretName) continue;
      volumes.push({ name: `${dir}-keys`, secret: { secretName, defaultMode: 0o440 } });
      mounts.push({ name: `${dir}-keys`, mountPath: `/var/run/secrets/keys/${dir}`, readOnly: true });
    }
    // Password files let the image configure service accounts at first start;
    // the kiln agent keeps them current afterwards.
    const passwordSecrets = [...new Set(Object.values(spec.passwords ?? {}).map((p) => p.secretName))].sort();
    passwordSecrets.forEach((secretName, i) => {
      volumes.push({ name: `passwords-${i}`, secret: { secretName, defaultMode: 0o440, optional: true } });
      mounts.push({ name: `passwords-${i}`, mountPath: `/var/run/secrets/passwords/${secretName}`, readOnly: true });
    });
    volumes.push({ name: 'tmp', emptyDir: {} });
    mounts.push({ name: 'tmp', mountPath: '/tmp' });

    const env: k8s.EnvVar[] = [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'DS_SERVICE_NAME', value: name },
      { name: 'DS_REPLICAS', value: String(spec.replicas ?? 1) },
      { name: 'DS_DATA_DIR', value: DATA_DIR },
    ];

    const security = containerSecurity({ readOnlyRootFilesystem: false, runAsUser: DS_UID, runAsGroup: 0 });
    const image = spec.image;
    const imagePullPolicy = spec.imagePullPolicy ?? 'IfNotPresent';
    const resources = containerResources(spec.resources, DEFAULT_RESOURCES);
    const initContainers: k8s.Container[] = [];
    if (spec.init?.ldifConfigMap) {
      volumes.push({ name: 'init-ldif', configMap: { name: spec.init.ldifConfigMap, defaultMode: 0o444 } });
      // Imports only into an empty data volume: the image's `init` command is a
      // no-op when the backend already holds data.
      initContainers.push({
        name: 'init',
        image,
        imagePullPolicy,
        args: ['init'],
        env: [...env, { name: 'DS_INIT_LDIF_DIR', value: '/var/run/kiln/ldif' }],
        volumeMounts: [...mounts, { name: 'init-ldif', mountPath: '/var/run/kiln/ldif', readOnly: true }],
        resources,
        securityContext: security,
      });
    }

    const tcp = (port: number) => ({ tcpSocket: { port: k8s.IntOrString.fromNumber(port) } });
    new k8s.KubeStatefulSet(this, 'StatefulSet', {
      metadata: { name, labels: standardLabels(APP, 'directory', resource) },
      spec: {
        replicas: spec.replicas ?? 1,
        serviceName: name,
        podManagementPolicy: 'OrderedReady',
        updateStrategy: ROLLING_UPDATE,
        revisionHistoryLimit: 10,
        selector: { matchLabels: selector },
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
        template: {
          metadata: { labels: standardLabels(APP, 'directory', resource) },
          spec: {
            ...podDefaults({ fsGroup: 0, runAsUser: DS_UID, runAsGroup: 0, terminationGracePeriodSeconds: 60 }),
            ...podScheduling(spec.scheduling, 'directory', selector),
            initContainers: initContainers.length > 0 ? initContainers : undefined,
            containers: [
              {
                name: 'ds',
                image,
                imagePullPolicy,
                args: ['start-ds'],
                ports: DIRECTORY_PORTS.map((p) => ({ name: p.name, containerPort: p.port, protocol: 'TCP' })),
                env: mergeEnv(env, spec.env),
                envFrom: spec.envFrom && spec.envFrom.length > 0 ? spec.envFrom : undefined,
                resources,
                securityContext: security,
                volumeMounts: mounts,
                // A first start can import a large backend: give it ten minutes.
                startupProbe: { ...tcp(1389), periodSeconds: 10, failureThreshold: 60, timeoutSeconds: 5 },
                readinessProbe: { ...tcp(1389), periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 5 },
                livenessProbe: { ...tcp(4444), periodSeconds: 30, failureThreshold: 5, timeoutSeconds: 10 },
              },
            ],
            volumes,
          },
        },
        volumeClaimTemplates: [
          claimTemplate({
            name: 'data',
            size: spec.storage?.size ?? '10Gi',
            storageClassName: spec.storage?.storageClassName,
            labels: selector,
            dataSource: spec.init?.fromBackup ? { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: spec.init.fromBackup } : undefined,
          }),
        ],
      },
    });
  }
}
