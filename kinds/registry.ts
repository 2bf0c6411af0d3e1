/** apiVersion/kind -> the chart that renders it. The only place kinds are listed for rendering. */
import type { Chart } from 'cdk8s';
import type { Construct } from 'constructs';
import { CacheClusterChart, type CacheClusterResource } from './cache-cluster/chart.js';
import { ConfigMapSyncChart, type ConfigMapSyncResource } from './config-map-sync/chart.js';
import { DataGridChart, type DataGridResource } from './data-grid/chart.js';
import { DirectoryBackupChart, type DirectoryBackupResource } from './directory-backup/chart.js';
import { DirectoryRestoreChart, type DirectoryRestoreResource } from './directory-restore/chart.js';
import { DirectoryServiceChart, type DirectoryServiceResource } from './directory-service/chart.js';
import { PostgresDatabaseChart, type PostgresDatabaseResource } from './postgres-database/chart.js';
import { PostgresInstanceChart, type PostgresInstanceResource } from './postgres-instance/chart.js';
import type { KilnResource, RenderContext } from './types.js';

import { KILN_API_VERSION } from './api.js';

export { KILN_API_VERSION };

type ChartFactory = (scope: Construct, id: string, resource: KilnResource, context: RenderContext) => Chart;

const CHARTS: Record<string, ChartFactory> = {
  DirectoryService: (s, id, r) => new DirectoryServiceChart(s, id, r as DirectoryServiceResource),
  DirectoryBackup: (s, id, r) => new DirectoryBackupChart(s, id, r as DirectoryBackupResource),
  DirectoryRestore: (s, id, r) => new DirectoryRestoreChart(s, id, r as DirectoryRestoreResource),
  PostgresInstance: (s, id, r) => new PostgresInstanceChart(s, id, r as PostgresInstanceResource),
  PostgresDatabase: (s, id, r) => new PostgresDatabaseChart(s, id, r as unknown as PostgresDatabaseResource),
  CacheCluster: (s, id, r) => new CacheClusterChart(s, id, r as CacheClusterResource),
  DataGrid: (s, id, r) => new DataGridChart(s, id, r as unknown as DataGridResource),
  ConfigMapSync: (s, id, r, c) => new ConfigMapSyncChart(s, id, r as unknown as ConfigMapSyncResource, c),
};

export const KIND_NAMES = Object.keys(CHARTS);

export function isKilnResource(obj: unknown): obj is KilnResource {
  if (typeof obj !== 'object' || obj === null) return false;
  const o = obj as { apiVersion?: unknown; kind?: unknown };
  return o.apiVersion === KILN_API_VERSION && typeof o.kind === 'string' && o.kind in CHARTS;
}

export function chartFactory(apiVersion: string, kind: string): ChartFactory {
  const factory = apiVersion === KILN_API_VERSION ? CHARTS[kind] : undefined;
  if (!factory) throw new Error(`kiln renders no ${apiVersion}/${kind}`);
  return factory;
}
