/**
 * The soak's resources: a fixed pool of names per kind and namespace (the
 * agent's endpoint overrides are given at start-up, so every name it may meet
 * is known in advance), and one spec per kind whose `variant` changes what an
 * update changes. Names in the real servers carry the namespace's tag, as
 * every namespace's PostgresInstance is the same PostgreSQL and every
 * DirectoryService the same slapd: two resources never fight over one
 * database, role or directory account. Storage sizes stay as created: a
 * StatefulSet's volume claim templates and an unbound claim's size are
 * immutable, so a change there only ever ends Stalled (ApplyFailed).
 */
import type { KilnResource } from '../../kinds/types.js';

export const SUFFIX = 'dc=kiln,dc=test';
export const KINDS = ['DirectoryService', 'DirectoryBackup', 'DirectoryRestore', 'PostgresInstance', 'PostgresDatabase', 'CacheCluster', 'DataGrid', 'ConfigMapSync'] as const;
export type SoakKind = (typeof KINDS)[number];

export interface SoakLayout {
  /** served by the apply-mode controller and the agent */
  namespaces: string[];
  /** served by the git-mode controller alone: what it renders goes to the repository, not the cluster */
  gitNamespace: string;
  /** ConfigMapSync's target namespace for each soak namespace. */
  targets: Record<string, string>;
  pools: Record<SoakKind, string[]>;
}

/**
 * What the git-mode namespace holds: kinds whose render needs nothing from the
 * cluster (a backup renders from its DirectoryService's live objects, a
 * ConfigMapSync is apply mode only, a database is the agent's).
 */
export const GIT_KINDS: readonly SoakKind[] = ['DirectoryService', 'PostgresInstance', 'CacheCluster', 'DataGrid'];

/** `pg` hosts every database and is never deleted (the agent drops a database only while its instance exists); `pg-x` comes and goes. */
export const PERMANENT = new Set(['PostgresInstance/pg']);

export function soakLayout(runId: string, namespaceCount: number): SoakLayout {
  const namespaces = Array.from({ length: namespaceCount }, (_, i) => `soak-${runId}-${i}`);
  return {
    namespaces,
    gitNamespace: `soak-${runId}-git`,
    targets: Object.fromEntries(namespaces.map((ns) => [ns, `${ns}-t`])),
    pools: {
      DirectoryService: ['ds-a', 'ds-b'],
      DirectoryBackup: ['bk-a'],
      DirectoryRestore: ['rs-a'],
      PostgresInstance: ['pg', 'pg-x'],
      PostgresDatabase: ['db-a', 'db-b', 'db-c'],
      CacheCluster: ['cache-a'],
      DataGrid: ['grid-a', 'grid-b'],
      ConfigMapSync: ['sync-a'],
    },
  };
}

/** `soak-ab12cd-1` -> `s_ab12cd_1`: a prefix fit for PostgreSQL and LDAP names. */
export const tag = (ns: string) => ns.replace(/^soak-/, 's_').replace(/-/g, '_');

export const directoryAccount = (ns: string, name: string) => `uid=${tag(ns)}_${name.replace(/-/g, '_')},ou=people,${SUFFIX}`;

export function directoryAccounts(layout: SoakLayout): string[] {
  return layout.namespaces.flatMap((ns) => layout.pools.DirectoryService.map((n) => directoryAccount(ns, n)));
}

export const databaseName = (ns: string, name: string) => `${tag(ns)}_${name.replace(/-/g, '_')}`;

const IMAGE = (v: number) => `registry.example.com/soak/image:1.${v}`;

/** Objects each namespace holds before the soak starts: the Secrets and the ServiceAccount the specs name, the sync's source and the RBAC that lets it copy. */
export function namespaceFixtures(ns: string, target: string, secrets: { postgresPassword: string; ldapAdminPassword: string; ldapCa: string }): object[] {
  const secret = (name: string, data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, stringData: data });
  const role = (namespace: string, verbs: string[]) => [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'soak-sync', namespace }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs }] },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'soak-sync', namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'soak-sync' },
      subjects: [{ kind: 'ServiceAccount', name: 'soak-sync', namespace: ns }],
    },
  ];
  return [
    secret('pg-superuser', { username: 'postgres', password: secrets.postgresPassword }),
    secret('ds-admin', { password: secrets.ldapAdminPassword }),
    secret('ds-truststore', { 'ca.crt': secrets.ldapCa }),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'soak-sync', namespace: ns } },
    ...role(ns, ['get', 'list', 'watch']),
    ...role(target, ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete']),
    sourceConfigMap(ns, 0),
  ];
}

export const sourceConfigMap = (ns: string, v: number) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'settings', namespace: ns },
  data: { colour: ['blue', 'green', 'red'][v % 3]!, round: String(v) },
});

export function resource(kind: SoakKind, ns: string, name: string, v: number, layout: SoakLayout): KilnResource {
  const meta = { name, namespace: ns, labels: { 'soak.kiln.dev/variant': String(v) } };
  const base = { apiVersion: 'kiln.dev/v1alpha1', kind, metadata: meta };
  const spec = ((): Record<string, unknown> => {
    switch (kind) {
      case 'DirectoryService':
        return {
          replicas: 1 + (v % 2),
          image: IMAGE(v % 4),
          storage: { size: '1Gi', volumeSnapshotClassName: 'csi-snapshots' },
          secrets: { truststore: 'ds-truststore' },
          passwords: {
            [`uid=admin,${SUFFIX}`]: { secretName: 'ds-admin' },
            [directoryAccount(ns, name)]: { secretName: `${name}-passwords`, key: 'account.pw', create: true },
          },
        };
      case 'DirectoryBackup':
        // A backup's and a restore's spec are immutable (admission refuses a change): an update changes only their labels.
        return { directoryService: 'ds-a', ordinal: 0, image: IMAGE(0), volumeSnapshotClassName: 'csi-snapshots', storage: { size: '1Gi' } };
      case 'DirectoryRestore':
        return { backup: 'bk-a', image: IMAGE(0), volumeSnapshotClassName: 'csi-snapshots', storage: { size: '1Gi' } };
      case 'PostgresInstance':
        return { superuserSecret: { name: 'pg-superuser' }, replicas: 1, storage: { size: '1Gi' }, parameters: { max_connections: String(50 + (v % 5) * 10) } };
      case 'PostgresDatabase':
        return { instance: 'pg', name: databaseName(ns, name), reclaimPolicy: 'Delete', recreateIfDropped: true, ...(v % 2 ? { extensions: ['pgcrypto'] } : {}) };
      case 'CacheCluster':
        return { size: 1 + (v % 3), catalogServers: 1, capacity: `${1 + (v % 2)}Gi`, image: IMAGE(v % 4) };
      case 'DataGrid':
        return { cache: 'cache-a', partitions: [7, 11, 13, 17, 19][v % 5], syncReplicas: 0, capacity: `${1 + (v % 2)}Gi` };
      case 'ConfigMapSync':
        return { source: { name: 'settings' }, targets: { namespaces: [layout.targets[ns]!] }, serviceAccountName: 'soak-sync' };
    }
  })();
  return { ...base, spec };
}
