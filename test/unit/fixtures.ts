import { readInputs } from '../../lib/inputs.js';
import { isKilnResource } from '../../kinds/registry.js';
import type { KilnResource } from '../../kinds/types.js';
import type { PlainObject } from '../../lib/context.js';

export const examplesDir = new URL('../../examples/', import.meta.url).pathname;
/** The README's quick start: applied whole by test/integration/quickstart.test.ts. */
export const quickstartDir = new URL('../../examples/quickstart/', import.meta.url).pathname;
/** A CacheCluster with a GridTemplate and the DataGrids that use it: self-contained (its grids need their template), tested in test/unit/grids.test.ts. */
export const gridsDir = new URL('../../examples/grids/', import.meta.url).pathname;

/**
 * The per-kind samples under examples/ (not the quick start, whose fixed
 * namespaces the tests that copy every example into their own namespace
 * do not need, nor the grids set, whose DataGrids wait for a template those
 * tests do not copy).
 */
export function exampleDocuments() {
  return readInputs([examplesDir]).filter((d) => !d.file.startsWith(quickstartDir) && !d.file.startsWith(gridsDir));
}

/** Every document of examples/quickstart/: Namespaces, RBAC, the source ConfigMap and the kiln resources. */
export function quickstartDocuments() {
  return readInputs([quickstartDir]);
}

export function quickstartResources(): { file: string; resource: KilnResource }[] {
  return quickstartDocuments()
    .filter((d) => isKilnResource(d.value))
    .map((d) => ({ file: d.file, resource: d.value as KilnResource }));
}

export function exampleResources(): { file: string; resource: KilnResource }[] {
  return exampleDocuments()
    .filter((d) => isKilnResource(d.value))
    .map((d) => ({ file: d.file, resource: d.value as KilnResource }));
}

export function examplePlainObjects(): PlainObject[] {
  return exampleDocuments()
    .filter((d) => !isKilnResource(d.value))
    .map((d) => d.value as PlainObject);
}

/** Invalid resources, each with the field the error must name. Shared with the admission tests. */
export const INVALID: { name: string; field: string; doc: Record<string, unknown> }[] = [
  {
    name: 'negative replicas',
    field: 'spec.replicas',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', metadata: { name: 'bad-replicas', namespace: 'default' }, spec: { replicas: -1, image: 'ds:7' } },
  },
  {
    name: 'storage size that is not a quantity',
    field: 'spec.storage.size',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'bad-size', namespace: 'default' }, spec: { storage: { size: 'ten gigs' } } },
  },
  {
    name: 'more catalog servers than members',
    field: 'spec.catalogServers',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', metadata: { name: 'bad-catalogs', namespace: 'default' }, spec: { size: 2, catalogServers: 3, image: 'cache:1' } },
  },
  {
    name: 'ConfigMapSync without a source',
    field: 'spec.source',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'ConfigMapSync', metadata: { name: 'bad-sync', namespace: 'default' }, spec: { targets: { namespaces: ['a'] }, serviceAccountName: 'sync' } },
  },
  {
    name: 'ConfigMapSync with no targets',
    field: 'spec.targets',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'ConfigMapSync', metadata: { name: 'bad-targets', namespace: 'default' }, spec: { source: { name: 'x' }, targets: {}, serviceAccountName: 'sync' } },
  },
  {
    name: 'unknown field',
    field: 'spec.replica',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', metadata: { name: 'bad-field', namespace: 'default' }, spec: { replica: 3, image: 'ds:7' } },
  },
  {
    name: 'missing image',
    field: 'spec.image',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', metadata: { name: 'bad-image', namespace: 'default' }, spec: {} },
  },
  {
    name: 'unsupported anti-affinity',
    field: 'spec.scheduling.antiAffinity',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', metadata: { name: 'bad-affinity', namespace: 'default' }, spec: { image: 'ds:7', scheduling: { antiAffinity: 'sometimes' } } },
  },
  {
    name: 'both version and image',
    field: 'spec',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'bad-version', namespace: 'default' }, spec: { version: 16, image: 'postgres:16' } },
  },
  {
    name: 'two Postgres replicas',
    field: 'spec.replicas',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'bad-pg-replicas', namespace: 'default' }, spec: { replicas: 2 } },
  },
  {
    name: 'database name with SQL in it',
    field: 'spec.name',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name: 'bad-db', namespace: 'default' }, spec: { instance: 'pg', name: 'a"; DROP DATABASE postgres; --' } },
  },
  {
    name: 'system database',
    field: 'spec.name',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name: 'bad-sysdb', namespace: 'default' }, spec: { instance: 'pg', name: 'template1' } },
  },
  {
    name: 'name too long for a StatefulSet',
    field: 'metadata.name',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', metadata: { name: 'c'.repeat(53), namespace: 'default' }, spec: { image: 'cache:1' } },
  },
  {
    name: 'both LDIF and backup initialisation',
    field: 'spec.init',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', metadata: { name: 'bad-init', namespace: 'default' }, spec: { image: 'ds:7', init: { ldifConfigMap: 'a', fromBackup: 'b' } } },
  },
  {
    name: 'etcd version that is not 3.<minor>.<patch>',
    field: 'spec.version',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'bad-version', namespace: 'default' }, spec: { version: 'v3.6.04' } },
  },
  {
    name: 'etcd cluster of 10',
    field: 'spec.size',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'bad-size', namespace: 'default' }, spec: { size: 10 } },
  },
  {
    name: 'GridTemplate with more than 9 replicas per partition',
    field: 'spec',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'GridTemplate', metadata: { name: 'bad-template', namespace: 'default' }, spec: { syncReplicas: 5, asyncReplicas: 5 } },
  },
  {
    name: 'DataGrid template that is not an object name',
    field: 'spec.template',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'bad-template-ref', namespace: 'default' }, spec: { cache: 'c', template: 'Std_Grid' } },
  },
];

/** Invalid only by kiln's own checks (the API server accepts them; the controller reports them as Stalled). */
export const INVALID_BY_KILN: { name: string; field: string; doc: Record<string, unknown> }[] = [
  {
    name: 'password key that is not a DN',
    field: 'spec.passwords[not a dn]',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', metadata: { name: 'bad-dn', namespace: 'default' }, spec: { image: 'ds:7', passwords: { 'not a dn': { secretName: 's' } } } },
  },
  {
    name: 'partitions not prime',
    field: 'spec.partitions',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'bad-grid', namespace: 'default' }, spec: { cache: 'c', partitions: 12 } },
  },
  {
    name: 'GridTemplate partitions not prime',
    field: 'spec.partitions',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'GridTemplate', metadata: { name: 'bad-template-partitions', namespace: 'default' }, spec: { partitions: 12 } },
  },
  {
    name: 'parameter kiln owns',
    field: 'spec.parameters.port',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'bad-param', namespace: 'default' }, spec: { parameters: { port: '6543' } } },
  },
  {
    name: 'env kiln sets',
    field: 'spec.env[0].name',
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', metadata: { name: 'bad-env', namespace: 'default' }, spec: { image: 'c:1', env: [{ name: 'CATALOG_SERVERS', value: 'x' }] } },
  },
];

/**
 * The lower-case enum spellings of the first v1alpha1 API, each refused with a
 * message naming its CamelCase replacement (offline and at admission alike).
 */
export const OLD_SPELLINGS: { kind: string; field: string; old: string; now: string; message: string; doc: Record<string, unknown> }[] = [
  ...(['DirectoryService', 'PostgresInstance', 'CacheCluster'] as const).flatMap((kind) =>
    (
      [
        ['soft', 'Soft'],
        ['hard', 'Hard'],
        ['none', 'None'],
      ] as const
    ).map(([old, now]) => ({
      kind,
      field: 'spec.scheduling.antiAffinity',
      old,
      now,
      message: `antiAffinity "${old}" is now "${now}"`,
      doc: {
        apiVersion: 'kiln.dev/v1alpha1',
        kind,
        metadata: { name: `old-${kind.toLowerCase()}-${old}`, namespace: 'default' },
        spec: { ...(kind === 'PostgresInstance' ? {} : { image: 'img:1' }), scheduling: { antiAffinity: old } },
      },
    })),
  ),
  ...(
    [
      ['simple', 'Simple'],
      ['session', 'Session'],
      ['dynamic', 'Dynamic'],
    ] as const
  ).map(([old, now]) => ({
    kind: 'DataGrid',
    field: 'spec.gridType',
    old,
    now,
    message: `gridType "${old}" is now "${now}"`,
    doc: { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: `old-grid-${old}`, namespace: 'default' }, spec: { cache: 'c', gridType: old } },
  })),
];
