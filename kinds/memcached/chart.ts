/**
 * Memcached -> Deployment `<name>` of spec.size memcached pods and Service
 * `<name>` on port 11211. Stateless: no volumes, so a Deployment (not a
 * StatefulSet) and a rolling update that keeps every pod available
 * (maxUnavailable 0) while a new one starts.
 */
import { Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { DEFAULT_MEMCACHED_IMAGE } from '../../crds/schema/kinds.js';
import type { MemcachedSpec } from '../../imports/kiln.dev.js';
import { selectorLabels, standardLabels } from '../shared/labels.js';
import { containerSecurity, podDefaults } from '../shared/pod.js';
import { containerResources } from '../shared/quantity.js';
import { podScheduling, type SchedulingSpec } from '../shared/scheduling.js';
import type { KilnResource, ResourceRequirements } from '../types.js';

export type MemcachedResource = KilnResource<Omit<MemcachedSpec, 'resources' | 'scheduling'> & { resources?: ResourceRequirements; scheduling?: SchedulingSpec }>;

/** The app label of its pods (the controller's pod cache finds a resource's pods by it). */
export const MEMCACHED_APP = 'memcached';
const PORT = 11211;
/** The official image's memcache user. */
const MEMCACHE_UID = 11211;
/** Headroom over the item memory for connections and the hash table. */
const OVERHEAD_MI = 32;

export class MemcachedChart extends Chart {
  constructor(scope: Construct, id: string, resource: MemcachedResource) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
    const { name } = resource.metadata;
    const spec = resource.spec;
    const selector = selectorLabels(MEMCACHED_APP, resource);
    const itemMemory = spec.memoryMegabytes ?? 64;
    const memory = `${itemMemory + OVERHEAD_MI}Mi`;
    const tcp = { tcpSocket: { port: k8s.IntOrString.fromNumber(PORT) } };

    new k8s.KubeService(this, 'Service', {
      metadata: { name, labels: standardLabels(MEMCACHED_APP, 'client-service', resource) },
      spec: { type: 'ClusterIP', selector, ports: [{ name: 'memcache', port: PORT, targetPort: k8s.IntOrString.fromNumber(PORT), protocol: 'TCP' }] },
    });

    const labels = standardLabels(MEMCACHED_APP, 'cache', resource);
    new k8s.KubeDeployment(this, 'Deployment', {
      metadata: { name, labels },
      spec: {
        replicas: spec.size ?? 1,
        selector: { matchLabels: selector },
        revisionHistoryLimit: 10,
        progressDeadlineSeconds: spec.progressDeadlineSeconds ?? 600,
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(0), maxSurge: k8s.IntOrString.fromNumber(1) } },
        template: {
          metadata: { labels },
          spec: {
            ...podDefaults({ fsGroup: MEMCACHE_UID, runAsUser: MEMCACHE_UID, runAsGroup: MEMCACHE_UID, terminationGracePeriodSeconds: 30 }),
            ...podScheduling(spec.scheduling, MEMCACHED_APP, selector),
            containers: [
              {
                name: 'memcached',
                image: spec.image ?? DEFAULT_MEMCACHED_IMAGE,
                imagePullPolicy: spec.imagePullPolicy ?? 'IfNotPresent',
                command: ['memcached', '-p', String(PORT), '-m', String(itemMemory), '-c', String(spec.maxConnections ?? 1024), '-o', 'modern'],
                ports: [{ name: 'memcache', containerPort: PORT, protocol: 'TCP' }],
                resources: containerResources(spec.resources, { requests: { cpu: '100m', memory }, limits: { memory } }),
                securityContext: containerSecurity({ readOnlyRootFilesystem: true, runAsUser: MEMCACHE_UID, runAsGroup: MEMCACHE_UID }),
                readinessProbe: { ...tcp, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 3 },
                livenessProbe: { ...tcp, periodSeconds: 30, failureThreshold: 5, timeoutSeconds: 5 },
              },
            ],
          },
        },
      },
    });
  }
}
