/** apiVersion/kind -> the chart that renders it. The only place kinds are listed for rendering. */
import type { Chart } from 'cdk8s';
import type { Construct } from 'constructs';
import { CacheClusterChart, type CacheClusterResource } from './cache-cluster.js';
import { ConfigMapSyncChart, type ConfigMapSyncResource } from './config-map-sync.js';
import { DataGridChart, type DataGridResource } from './data-grid.js';
import { DirectoryBackupChart, type DirectoryBackupResource } from './directory-backup.js';
import { DirectoryRestoreChart, type DirectoryRestoreResource } from './directory-restore.js';
import { DirectoryServiceChart, type DirectoryServiceResource } from './directory-service.js';
import { PostgresDatabaseChart, type PostgresDatabaseResource } from './postgres-database.js';
import { PostgresInstanceChart, type PostgresInstanceResource } from './postgres-instance.js';
import type { KilnResource, RenderContext } from './types.js';

export const KILN_API_VERSION = 'kiln.dev/v1alpha1';

type ChartFactory = (scope: Construct, resource: KilnResource, context: RenderContext) => Chart;

/* eslint-disable @typescript-eslint/no-explicit-any */
const CHARTS: Record<string, ChartFactory> = {
  DirectoryService: (s, r) => new DirectoryServiceChart(s, 'directoryservice', r as DirectoryServiceResource),
  DirectoryBackup: (s, r) => new DirectoryBackupChart(s, 'directorybackup', r as DirectoryBackupResource),
  DirectoryRestore: (s, r) => new DirectoryRestoreChart(s, 'directoryrestore', r as DirectoryRestoreResource),
  PostgresInstance: (s, r) => new PostgresInstanceChart(s, 'postgresinstance', r as PostgresInstanceResource),
  PostgresDatabase: (s, r) => new PostgresDatabaseChart(s, 'postgresdatabase', r as unknown as PostgresDatabaseResource),
  CacheCluster: (s, r) => new CacheClusterChart(s, 'cachecluster', r as CacheClusterResource),
  DataGrid: (s, r) => new DataGridChart(s, 'datagrid', r as unknown as DataGridResource),
  ConfigMapSync: (s, r, c) => new ConfigMapSyncChart(s, 'configmapsync', r as unknown as ConfigMapSyncResource, c),
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
