/**
 * EtcdCluster -> headless peer Service, `<name>-client` Service (the name the
 * etcd operator gave it), a PodDisruptionBudget of one member, and a
 * StatefulSet of etcd members.
 *
 * The StatefulSet has no `spec.replicas`, as in etcd-io/etcd-operator: the
 * kiln agent grows and shrinks it through the scale subresource one member at
 * a time, around the etcd API's MemberAdd/MemberRemove. Server-side apply
 * (kiln's, or Flux's in git mode) then never owns the field, so it never
 * resets what the agent set. Likewise `--initial-cluster` and
 * `--initial-cluster-state` are not rendered: they come from the ConfigMap
 * `<name>-members` the agent writes (envFrom), because only the agent knows
 * which members the cluster has when a pod starts.
 */
import { Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { EtcdClusterSpec } from '../../imports/kiln.dev.js';
import { DEFAULT_ETCD_VERSION } from '../../crds/schema/kinds.js';
import { selectorLabels, standardLabels } from '../shared/labels.js';
import { containerSecurity, podDefaults } from '../shared/pod.js';
import { containerResources } from '../shared/quantity.js';
import { podScheduling, type SchedulingSpec } from '../shared/scheduling.js';
import { claimTemplate, ClientService, HeadlessService, MemberDisruptionBudget } from '../shared/workload.js';
import { headlessServiceName } from '../names.js';
import type { KilnResource, ResourceRequirements } from '../types.js';
import { ETCD_CLIENT_PORT, ETCD_METRICS_PORT, ETCD_PEER_PORT, membersConfigMapName } from './names.js';

export type EtcdClusterResource = KilnResource<Omit<EtcdClusterSpec, 'resources' | 'scheduling'> & { resources?: ResourceRequirements; scheduling?: SchedulingSpec }>;

const APP = 'etcd';
/** The nonroot user of the distroless etcd images. */
const ETCD_UID = 65532;
const DATA_MOUNT = '/var/lib/etcd';
const PEER_TLS = '/etc/etcd/peer-tls';
const CLIENT_TLS = '/etc/etcd/client-tls';
const DEFAULT_RESOURCES: ResourceRequirements = { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '1Gi' } };

export function etcdImage(spec: EtcdClusterResource['spec']): string {
  return spec.image ?? `gcr.io/etcd-development/etcd:v${spec.version ?? DEFAULT_ETCD_VERSION}`;
}

/** etcd's flags; `$(POD_NAME)` is expanded by the kubelet from the container's env. */
export function etcdArgs(resource: EtcdClusterResource): string[] {
  const { name, namespace } = resource.metadata;
  const tls = resource.spec.tls ?? {};
  const peer = tls.peerSecret ? 'https' : 'http';
  const client = tls.clientSecret ? 'https' : 'http';
  const self = `$(POD_NAME).${headlessServiceName(name)}.${namespace ?? 'default'}.svc`;
  return [
    '--name=$(POD_NAME)',
    `--data-dir=${DATA_MOUNT}/data`,
    // The token keeps members of two clusters with the same member names from joining each other.
    `--initial-cluster-token=${namespace ?? 'default'}.${name}`,
    `--listen-peer-urls=${peer}://0.0.0.0:${ETCD_PEER_PORT}`,
    `--initial-advertise-peer-urls=${peer}://${self}:${ETCD_PEER_PORT}`,
    `--listen-client-urls=${client}://0.0.0.0:${ETCD_CLIENT_PORT}`,
    `--advertise-client-urls=${client}://${self}:${ETCD_CLIENT_PORT}`,
    `--listen-metrics-urls=http://0.0.0.0:${ETCD_METRICS_PORT}`,
    ...(tls.peerSecret ? [`--peer-cert-file=${PEER_TLS}/tls.crt`, `--peer-key-file=${PEER_TLS}/tls.key`, `--peer-trusted-ca-file=${PEER_TLS}/ca.crt`, '--peer-client-cert-auth'] : []),
    ...(tls.clientSecret ? [`--cert-file=${CLIENT_TLS}/tls.crt`, `--key-file=${CLIENT_TLS}/tls.key`, `--trusted-ca-file=${CLIENT_TLS}/ca.crt`, '--client-cert-auth'] : []),
  ];
}

const tlsVolume = (name: string, secretName: string): k8s.Volume => ({
  name,
  secret: { secretName, defaultMode: 0o440, items: ['tls.crt', 'tls.key', 'ca.crt'].map((key) => ({ key, path: key })) },
});

export class EtcdClusterChart extends Chart {
  constructor(scope: Construct, id: string, resource: EtcdClusterResource) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
    const { name } = resource.metadata;
    const spec = resource.spec;
    const tls = spec.tls ?? {};
    const selector = selectorLabels(APP, resource);

    // Members must resolve each other before they are ready (they become ready only with a quorum).
    new HeadlessService(this, 'Peers', {
      resource,
      app: APP,
      selector,
      ports: [
        { name: 'peer', port: ETCD_PEER_PORT },
        { name: 'client', port: ETCD_CLIENT_PORT },
      ],
      publishNotReadyAddresses: true,
    });
    new ClientService(this, 'Client', { resource, app: APP, selector, ports: [{ name: 'client', port: ETCD_CLIENT_PORT }] });
    // One member down at a time keeps a quorum for every size of 3 or more; a cluster of 1 or 2 has no member to spare anyway.
    new MemberDisruptionBudget(this, 'Budget', { resource, app: APP, selector });

    const probe = (path: string) => ({ httpGet: { path, port: k8s.IntOrString.fromNumber(ETCD_METRICS_PORT), scheme: 'HTTP' } });
    const labels = standardLabels(APP, 'member', resource);
    new k8s.KubeStatefulSet(this, 'StatefulSet', {
      metadata: { name, labels },
      spec: {
        serviceName: headlessServiceName(name),
        // The agent adds one member at a time and waits for it; Parallel lets a member start while another is down.
        podManagementPolicy: 'Parallel',
        // The agent restarts the members one at a time, each once every member is healthy again, the leader last
        // (agent/etcd-reconciler.ts roll): the StatefulSet controller itself restarts none.
        updateStrategy: { type: 'OnDelete' },
        revisionHistoryLimit: 10,
        selector: { matchLabels: selector },
        // A removed member's data must not come back: its member ID is gone from the cluster.
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Delete' },
        template: {
          metadata: { labels },
          spec: {
            ...podDefaults({ fsGroup: ETCD_UID, runAsUser: ETCD_UID, runAsGroup: ETCD_UID, terminationGracePeriodSeconds: 60 }),
            ...podScheduling(spec.scheduling, 'etcd', selector),
            containers: [
              {
                name: 'etcd',
                image: etcdImage(spec),
                imagePullPolicy: spec.imagePullPolicy ?? 'IfNotPresent',
                command: ['/usr/local/bin/etcd'],
                args: etcdArgs(resource),
                ports: [
                  { name: 'client', containerPort: ETCD_CLIENT_PORT, protocol: 'TCP' },
                  { name: 'peer', containerPort: ETCD_PEER_PORT, protocol: 'TCP' },
                  { name: 'metrics', containerPort: ETCD_METRICS_PORT, protocol: 'TCP' },
                ],
                env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
                envFrom: [{ configMapRef: { name: membersConfigMapName(name) } }],
                resources: containerResources(spec.resources, DEFAULT_RESOURCES),
                securityContext: containerSecurity({ readOnlyRootFilesystem: true, runAsUser: ETCD_UID, runAsGroup: ETCD_UID }),
                volumeMounts: [
                  { name: 'data', mountPath: DATA_MOUNT },
                  ...(tls.peerSecret ? [{ name: 'peer-tls', mountPath: PEER_TLS, readOnly: true }] : []),
                  ...(tls.clientSecret ? [{ name: 'client-tls', mountPath: CLIENT_TLS, readOnly: true }] : []),
                ],
                startupProbe: { ...probe('/livez'), periodSeconds: 5, failureThreshold: 60, timeoutSeconds: 5 },
                readinessProbe: { ...probe('/readyz'), periodSeconds: 5, failureThreshold: 3, timeoutSeconds: 5 },
                livenessProbe: { ...probe('/livez'), periodSeconds: 10, failureThreshold: 6, timeoutSeconds: 5 },
              },
            ],
            volumes:
              tls.peerSecret || tls.clientSecret
                ? [...(tls.peerSecret ? [tlsVolume('peer-tls', tls.peerSecret)] : []), ...(tls.clientSecret ? [tlsVolume('client-tls', tls.clientSecret)] : [])]
                : undefined,
          },
        },
        volumeClaimTemplates: [claimTemplate({ name: 'data', size: spec.storage?.size ?? '8Gi', storageClassName: spec.storage?.storageClassName, labels: selector })],
      },
    });
  }
}
