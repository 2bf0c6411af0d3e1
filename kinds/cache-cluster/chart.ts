/**
 * CacheCluster -> ConfigMap `<name>-members` (catalog-server addresses: the
 * first catalogServers members), headless Service publishing not-ready
 * addresses, client Service, StatefulSet (Parallel: members need each other's
 * DNS names before any is ready) whose claims are deleted on scale-down and
 * with the resource, PodDisruptionBudget. Each DataGrid that names it (and
 * renders: kinds/data-grid/render-inputs.ts) is mounted into every member at
 * /opt/kiln/grids/<grid>.json, one projected volume of their ConfigMaps; the
 * pod template carries the grid names and a digest of their configuration, so
 * adding, removing or changing a grid rolls the members (they read their grids
 * when they start).
 */
import { createHash } from 'node:crypto';
import { Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { CacheClusterSpec } from '../../imports/kiln.dev.js';
import { selectorLabels, standardLabels } from '../shared/labels.js';
import { containerSecurity, mergeEnv, podDefaults } from '../shared/pod.js';
import { bytesToQuantity, containerResources, quantityToNumber } from '../shared/quantity.js';
import { podScheduling, type SchedulingSpec } from '../shared/scheduling.js';
import { claimTemplate, ROLLING_UPDATE, ClientService, HeadlessService, MemberDisruptionBudget, type ServicePort } from '../shared/workload.js';
import { GRID_KEY, gridConfigMapName } from '../data-grid/chart.js';
import type { KilnResource, RenderContext, ResourceRequirements } from '../types.js';

export type CacheClusterResource = KilnResource<Omit<CacheClusterSpec, 'resources' | 'scheduling' | 'env'> & { resources?: ResourceRequirements; scheduling?: SchedulingSpec; env?: k8s.EnvVar[] }>;

/** app.kubernetes.io/name of everything a CacheCluster renders (its members' pods are found by it). */
export const CACHE_APP = 'cache';
const APP = CACHE_APP;
const CACHE_UID = 1001;
const PORTS: ServicePort[] = [
  { name: 'catalog', port: 2809 },
  { name: 'client', port: 4809 },
  { name: 'rest', port: 9443 },
];
/** Where the members find their grids, one `<grid>.json` each. */
export const GRIDS_DIR = '/opt/kiln/grids';
/** On the members' pod template: the grids they mount, comma-separated by name (what status.members reports per pod). */
export const GRIDS_ANNOTATION = 'kiln.dev/grids';
/** On the members' pod template: sha256 of the grids' configuration; a change rolls the members. */
export const GRIDS_DIGEST_ANNOTATION = 'kiln.dev/grids-sha256';

export const CACHE_RESERVED_ENV = ['POD_NAME', 'POD_NAMESPACE', 'CACHE_NAME', 'CATALOG_SERVERS', 'CATALOG_SERVER_COUNT', 'MEMBER_CAPACITY'];

/** DNS names of the catalog servers: the first `catalogServers` members. */
export function catalogServerAddresses(resource: CacheClusterResource): string[] {
  const { name, namespace } = resource.metadata;
  const n = Math.min(resource.spec.catalogServers ?? 3, resource.spec.size ?? 3);
  const domain = resource.spec.clusterDomain ?? 'cluster.local';
  return Array.from({ length: n }, (_, i) => `${name}-${i}.${name}.${namespace ?? 'default'}.svc.${domain}`);
}

export class CacheClusterChart extends Chart {
  constructor(scope: Construct, id: string, resource: CacheClusterResource, context: RenderContext = {}) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
    const { name } = resource.metadata;
    const spec = resource.spec;
    const selector = selectorLabels(APP, resource);
    const catalogs = catalogServerAddresses(resource);
    const capacity = spec.capacity ?? '1Gi';
    // Grid data lives on the heap: leave half as much again for the runtime.
    const memory = bytesToQuantity(quantityToNumber(capacity) * 1.5);

    new k8s.KubeConfigMap(this, 'Members', {
      metadata: { name: `${name}-members`, labels: standardLabels(APP, 'membership', resource) },
      data: { 'catalog-servers': catalogs.join(','), 'catalog-server-count': String(catalogs.length) },
    });
    new HeadlessService(this, 'Headless', { resource, app: APP, selector, ports: PORTS, publishNotReadyAddresses: true });
    new ClientService(this, 'Client', { resource, app: APP, selector, ports: PORTS.filter((p) => p.name !== 'catalog') });
    new MemberDisruptionBudget(this, 'Budget', { resource, app: APP, selector });

    const volumes: k8s.Volume[] = [{ name: 'tmp', emptyDir: {} }];
    const mounts: k8s.VolumeMount[] = [
      { name: 'data', mountPath: '/opt/kiln/data' },
      { name: 'tmp', mountPath: '/tmp' },
    ];
    let command: string[] | undefined;
    if (spec.entrypointConfigMap) {
      volumes.push({ name: 'entrypoint', configMap: { name: spec.entrypointConfigMap, defaultMode: 0o744 } });
      mounts.push({ name: 'entrypoint', mountPath: '/opt/kiln/entrypoint', readOnly: true });
      command = ['/opt/kiln/entrypoint/entrypoint.sh'];
    }
    // No grid, no volume and no annotations: a cache without grids renders as it did before them.
    const grids = context.cacheCluster?.grids ?? [];
    let podAnnotations: Record<string, string> | undefined;
    if (grids.length > 0) {
      volumes.push({
        name: 'grids',
        projected: {
          defaultMode: 0o444,
          // DataGrid names are unique in the namespace, so the file names are too.
          sources: grids.map((g) => ({ configMap: { name: gridConfigMapName(name, g.name), items: [{ key: GRID_KEY, path: `${g.name}.json` }] } })),
        },
      });
      mounts.push({ name: 'grids', mountPath: GRIDS_DIR, readOnly: true });
      const digest = createHash('sha256').update(JSON.stringify(grids)).digest('hex');
      podAnnotations = { [GRIDS_ANNOTATION]: grids.map((g) => g.name).join(','), [GRIDS_DIGEST_ANNOTATION]: digest };
    }
    const fromMembers = (key: string) => ({ configMapKeyRef: { name: `${name}-members`, key } });
    const labels = standardLabels(APP, 'member', resource);
    const tcp = { tcpSocket: { port: k8s.IntOrString.fromNumber(4809) } };

    new k8s.KubeStatefulSet(this, 'StatefulSet', {
      metadata: { name, labels },
      spec: {
        replicas: spec.size ?? 3,
        serviceName: name,
        podManagementPolicy: 'Parallel',
        updateStrategy: ROLLING_UPDATE,
        revisionHistoryLimit: 10,
        selector: { matchLabels: selector },
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Delete', whenScaled: 'Delete' },
        template: {
          metadata: { labels, annotations: podAnnotations },
          spec: {
            ...podDefaults({ fsGroup: CACHE_UID, runAsUser: CACHE_UID, runAsGroup: CACHE_UID, terminationGracePeriodSeconds: 60 }),
            ...podScheduling(spec.scheduling, 'cache', selector),
            containers: [
              {
                name: 'member',
                image: spec.image,
                imagePullPolicy: spec.imagePullPolicy ?? 'IfNotPresent',
                command,
                ports: PORTS.map((p) => ({ name: p.name, containerPort: p.port, protocol: 'TCP' })),
                env: mergeEnv(
                  [
                    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                    { name: 'CACHE_NAME', value: name },
                    { name: 'CATALOG_SERVERS', valueFrom: fromMembers('catalog-servers') },
                    { name: 'CATALOG_SERVER_COUNT', valueFrom: fromMembers('catalog-server-count') },
                    { name: 'MEMBER_CAPACITY', value: capacity },
                  ],
                  spec.env,
                ),
                resources: containerResources(spec.resources, { requests: { cpu: '500m', memory }, limits: { memory } }),
                securityContext: containerSecurity({ readOnlyRootFilesystem: true, runAsUser: CACHE_UID, runAsGroup: CACHE_UID }),
                volumeMounts: mounts,
                startupProbe: { ...tcp, periodSeconds: 5, failureThreshold: 60, timeoutSeconds: 3 },
                readinessProbe: { ...tcp, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 3 },
                livenessProbe: { ...tcp, periodSeconds: 30, failureThreshold: 5, timeoutSeconds: 5 },
              },
            ],
            volumes,
          },
        },
        volumeClaimTemplates: [claimTemplate({ name: 'data', size: spec.storage?.size ?? '5Gi', storageClassName: spec.storage?.storageClassName, labels: selector })],
      },
    });
  }
}
