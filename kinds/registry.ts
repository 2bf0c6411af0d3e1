/**
 * Every kind and what it has (kinds/kind.ts says what each part means and its
 * default). The one place kinds are listed: generic code asks here. Heavy (it
 * loads every chart and cdk8s); what the agent needs is in kinds/api.ts and
 * the kinds' names.ts.
 */
import { CACHE_APP, CacheClusterChart, type CacheClusterResource } from './cache-cluster/chart.js';
import { cacheMembers } from './cache-cluster/members.js';
import { checkCacheCluster } from './cache-cluster/checks.js';
import { ConfigMapSyncChart, type ConfigMapSyncResource } from './config-map-sync/chart.js';
import { NOT_SERVER_SIDE_APPLIED, NOT_SUPPORTED_CONFIGMAPSYNC } from './config-map-sync/delivery.js';
import { inputsFromObjects, sourceNotInInputs } from './config-map-sync/render-inputs.js';
import { DataGridChart, type DataGridResource } from './data-grid/chart.js';
import { checkDataGrid } from './data-grid/checks.js';
import { cacheClusterInputs, dataGridInputs } from './data-grid/render-inputs.js';
import { GridTemplateChart } from './grid-template/chart.js';
import { DirectoryBackupChart, type DirectoryBackupResource } from './directory-backup/chart.js';
import { checkDataClaimOf } from './directory-backup/claim-check.js';
import { directoryServiceInputs } from './directory-backup/inputs.js';
import { DirectoryRestoreChart, type DirectoryRestoreResource } from './directory-restore/chart.js';
import { checkBackupClaimOf } from './directory-restore/claim-check.js';
import { EtcdClusterChart } from './etcd-cluster/chart.js';
import { DirectoryServiceChart, type DirectoryServiceResource } from './directory-service/chart.js';
import { checkDirectoryService } from './directory-service/checks.js';
import { MEMCACHED_APP, MemcachedChart } from './memcached/chart.js';
import { PostgresDatabaseChart, type PostgresDatabaseResource } from './postgres-database/chart.js';
import { PostgresInstanceChart } from './postgres-instance/chart.js';
import { checkPostgresInstance } from './postgres-instance/checks.js';
import type { CarriedOutBy, ChartFactory, KindDefinition, ShardKeyInput } from './kind.js';
import type { KilnResource } from './types.js';

import { KILN_API_VERSION } from './api.js';

export { KILN_API_VERSION };
export type { ChartFactory, KindDefinition };

/** A DirectoryService's own shard key (the default form), shared by its backups and their restores. */
const directoryKey = (namespace: string | undefined, name: string) => `DirectoryService/${namespace ?? ''}/${name}`;
/** CacheClusters, DataGrids and GridTemplates read each other across a namespace (a template serves many grids): one key per namespace. */
const gridsKey = (r: ShardKeyInput) => `grids/${r.metadata.namespace ?? ''}`;

const DEFINITIONS: KindDefinition[] = [
  {
    kind: 'DirectoryService',
    chart: (s, id, r) => new DirectoryServiceChart(s, id, r as DirectoryServiceResource),
    ready: 'members',
    checks: checkDirectoryService,
  },
  {
    kind: 'DirectoryBackup',
    chart: (s, id, r, c) => new DirectoryBackupChart(s, id, r as DirectoryBackupResource, c),
    ready: 'job',
    preApply: checkDataClaimOf,
    // The snapshot class of a backup that names none is its DirectoryService's.
    reads: ['DirectoryService'],
    // It reads its DirectoryService and that one's StatefulSet: one replica holds all three.
    shardKey: (r) => directoryKey(r.metadata.namespace, (r.spec as { directoryService?: string } | undefined)?.directoryService ?? r.metadata.name),
    inputs: directoryServiceInputs,
  },
  {
    kind: 'DirectoryRestore',
    chart: (s, id, r) => new DirectoryRestoreChart(s, id, r as DirectoryRestoreResource),
    ready: 'job',
    preApply: checkBackupClaimOf,
    // It reads its DirectoryBackup and that one's claim: placed where the backup is.
    shardKey: (r, lookup) => {
      const backup = (r.spec as { backup?: string } | undefined)?.backup ?? '';
      const b = lookup('DirectoryBackup', backup);
      const directory = (b?.spec as { directoryService?: string } | undefined)?.directoryService;
      return directory ? directoryKey(r.metadata.namespace, directory) : `DirectoryBackup/${r.metadata.namespace ?? ''}/${backup}`;
    },
    // Its VolumeSnapshot waits for its Job to complete.
    waitsFor: [{ apiVersion: 'batch/v1', kind: 'Job' }],
  },
  {
    kind: 'PostgresInstance',
    chart: (s, id, r) => new PostgresInstanceChart(s, id, r),
    ready: 'members',
    checks: checkPostgresInstance,
  },
  {
    kind: 'PostgresDatabase',
    chart: (s, id, r) => new PostgresDatabaseChart(s, id, r as unknown as PostgresDatabaseResource),
    carriedOutBy: { by: 'agent', why: 'the runtime agent carries it out; apply mode renders nothing for it' },
  },
  {
    kind: 'CacheCluster',
    chart: (s, id, r, c) => new CacheClusterChart(s, id, r as CacheClusterResource, c),
    ready: 'members',
    checks: checkCacheCluster,
    // Its members mount the DataGrids that name it, resolved with their GridTemplates.
    inputs: cacheClusterInputs,
    // status.members: the grids each member serves, from its pod (apply mode).
    pods: { app: CACHE_APP, status: cacheMembers },
    reads: ['DataGrid', 'GridTemplate'],
    shardKey: gridsKey,
  },
  {
    kind: 'DataGrid',
    chart: (s, id, r, c) => new DataGridChart(s, id, r as unknown as DataGridResource, c),
    checks: checkDataGrid,
    inputs: dataGridInputs,
    reads: ['GridTemplate'],
    shardKey: gridsKey,
  },
  {
    // Read by the DataGrids that name it; renders nothing itself, so it is Ready once valid.
    kind: 'GridTemplate',
    chart: (s, id, r) => new GridTemplateChart(s, id, r),
    shardKey: gridsKey,
    checks: checkDataGrid,
    offlineNote: () => 'renders nothing of its own: the DataGrids that name it in spec.template carry its settings',
  },
  {
    kind: 'EtcdCluster',
    chart: (s, id, r) => new EtcdClusterChart(s, id, r),
    ready: 'members',
    // The agent scales the StatefulSet one member at a time (see kinds/etcd-cluster/chart.ts).
    members: (spec) => (spec['size'] as number | undefined) ?? 3,
  },
  {
    kind: 'ConfigMapSync',
    chart: (s, id, r, c) => new ConfigMapSyncChart(s, id, r as unknown as ConfigMapSyncResource, c),
    carriedOutBy: {
      by: 'custom',
      why: NOT_SERVER_SIDE_APPLIED,
      load: async () => (await import('./config-map-sync/apply-mode.js')).configMapSyncReconciler,
    },
    inputs: inputsFromObjects,
    offlineNote: sourceNotInInputs,
    notInGitMode: NOT_SUPPORTED_CONFIGMAPSYNC,
    // Copies go to tenant namespaces.
    writesOutsideNamespace: [{ apiVersion: 'v1', kind: 'ConfigMap' }],
  },
  {
    kind: 'Memcached',
    chart: (s, id, r) => new MemcachedChart(s, id, r),
    ready: 'members',
    // The operator-sdk tutorial's status: the pods' names (those not terminating).
    pods: {
      app: MEMCACHED_APP,
      status: (pods) => ({
        nodes: pods
          .filter((p) => !p.metadata.deletionTimestamp)
          .map((p) => p.metadata.name)
          .sort(),
      }),
    },
  },
];

const BY_KIND = new Map(DEFINITIONS.map((d) => [d.kind, d]));

export const KIND_NAMES = DEFINITIONS.map((d) => d.kind);

/** The definition of `kind` (of kiln's group), or undefined for a kind kiln does not have. */
export function kindDefinition(kind: string): KindDefinition | undefined {
  return BY_KIND.get(kind);
}

const RENDERED: CarriedOutBy = { by: 'render' };

/** Who carries `kind` out in the cluster (default: the controller, by its render). */
export function carriedOutBy(kind: string): CarriedOutBy {
  return BY_KIND.get(kind)?.carriedOutBy ?? RENDERED;
}

/** The kinds whose render reads resources of `kind` in their namespace (kinds/kind.ts `reads`). */
export function readersOf(kind: string): string[] {
  return DEFINITIONS.filter((d) => d.reads?.includes(kind)).map((d) => d.kind);
}

/** `app.kubernetes.io/name` of pods -> the kind whose status lists them (kinds/kind.ts `pods`). */
export function podApps(): Map<string, string> {
  return new Map(DEFINITIONS.flatMap((d) => (d.pods ? [[d.pods.app, d.kind] as const] : [])));
}

/**
 * Dynamic sharding's ring key of a resource (kinds/kind.ts `shardKey`): resources that read each
 * other share one. `lookup` finds another resource of its namespace.
 */
export function shardKeyOf(resource: ShardKeyInput & { kind: string }, lookup: (kind: string, name: string) => ShardKeyInput | undefined): string {
  const own = BY_KIND.get(resource.kind)?.shardKey;
  return own ? own(resource, lookup) : `${resource.kind}/${resource.metadata.namespace ?? ''}/${resource.metadata.name}`;
}

/** Kinds whose shard key reads a spec (theirs or, through lookup, another of these kinds'). */
export const SHARD_KEY_READS_SPEC: ReadonlySet<string> = new Set(DEFINITIONS.filter((d) => d.shardKey).map((d) => d.kind));

/** Kiln kinds some kind's render reads: offline, their resources are also render inputs. */
export const READ_KINDS: ReadonlySet<string> = new Set(DEFINITIONS.flatMap((d) => d.reads ?? []));

/** Child kinds some kind's rendered objects wait for (kinds/kind.ts `waitsFor`), once each. */
export function childKindsWaitedFor(): { apiVersion: string; kind: string }[] {
  const all = DEFINITIONS.flatMap((d) => d.waitsFor ?? []);
  return all.filter((k, i) => all.findIndex((o) => o.apiVersion === k.apiVersion && o.kind === k.kind) === i);
}

/** Child kinds some kind writes outside its own namespace, as `apiVersion/Kind`. */
export function childKindsWrittenAcrossNamespaces(): Set<string> {
  return new Set(DEFINITIONS.flatMap((d) => (d.writesOutsideNamespace ?? []).map((k) => `${k.apiVersion}/${k.kind}`)));
}

export function isKilnResource(obj: unknown): obj is KilnResource {
  if (typeof obj !== 'object' || obj === null) return false;
  const o = obj as { apiVersion?: unknown; kind?: unknown };
  return o.apiVersion === KILN_API_VERSION && typeof o.kind === 'string' && BY_KIND.has(o.kind);
}

export function chartFactory(apiVersion: string, kind: string): ChartFactory {
  const factory = apiVersion === KILN_API_VERSION ? BY_KIND.get(kind)?.chart : undefined;
  if (!factory) throw new Error(`kiln renders no ${apiVersion}/${kind}`);
  return factory;
}
