import { describe, expect, it } from 'vitest';
import { isKilnResource } from '../../kinds/registry.js';
import { render } from '../../kinds/render.js';
import type { K8sObject } from '../../kinds/types.js';
import { contextFromObjects, type PlainObject } from '../../lib/context.js';
import { renderDocument } from '../../lib/render-document.js';
import { readByOthers } from '../../lib/render-files.js';
import { toYamlStream } from '../../lib/yaml.js';
import { validate } from '../../validate/index.js';
import { examplePlainObjects, exampleResources, quickstartDocuments, quickstartResources } from './fixtures.js';

const examples = exampleResources();
// As synth passes them: the other documents, and the kiln resources other kinds read (a CacheCluster, its DataGrids).
const plain = [...examplePlainObjects(), ...examples.map((e) => e.resource as unknown as PlainObject).filter(readByOthers)];

function renderExample(resource: (typeof examples)[number]['resource']): K8sObject[] {
  const v = validate(resource);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return render(v.resource, contextFromObjects(v.resource, plain));
}

describe('examples', () => {
  it('cover every kind', () => {
    expect(new Set(examples.map((e) => e.resource.kind))).toEqual(
      new Set(['DirectoryService', 'DirectoryBackup', 'DirectoryRestore', 'PostgresInstance', 'PostgresDatabase', 'CacheCluster', 'DataGrid', 'ConfigMapSync', 'Memcached', 'EtcdCluster']),
    );
  });

  for (const { resource } of examples) {
    const id = `${resource.metadata.namespace}.${resource.kind.toLowerCase()}.${resource.metadata.name}`;
    it(`${id} renders to its pinned snapshot`, async () => {
      const outcome = renderDocument(resource, contextFromObjects(resource, plain));
      expect('yaml' in outcome).toBe(true);
      await expect((outcome as { yaml: string }).yaml).toMatchFileSnapshot(`__snapshots__/${id}.yaml`);
    });
  }
});

describe('examples/quickstart', () => {
  const quickstart = quickstartResources();
  const inputs = quickstartDocuments()
    .filter((d) => !isKilnResource(d.value))
    .map((d) => d.value as PlainObject);

  it('holds a PostgresInstance, a PostgresDatabase and a ConfigMapSync, and what they need', () => {
    expect(quickstart.map((q) => `${q.resource.kind}/${q.resource.metadata.name}`).sort()).toEqual(['ConfigMapSync/app-settings', 'PostgresDatabase/app', 'PostgresInstance/app-db']);
    expect(inputs.map((o) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`).sort()).toEqual([
      'ConfigMap/quickstart/app-settings',
      'Namespace//quickstart',
      'Namespace//team-a',
      'Namespace//team-b',
      'Role/quickstart/settings-sync-source',
      'Role/team-a/settings-sync',
      'Role/team-b/settings-sync',
      'RoleBinding/quickstart/kiln-controller-serviceaccount-tokens',
      'RoleBinding/quickstart/settings-sync-source',
      'RoleBinding/team-a/settings-sync',
      'RoleBinding/team-b/settings-sync',
      'ServiceAccount/quickstart/settings-sync',
    ]);
  });
  it('grants settings-sync what README says a ConfigMapSync account needs, and no more', () => {
    const rules = (ns: string, name: string) => (inputs.find((o) => o.kind === 'Role' && o.metadata?.namespace === ns && o.metadata.name === name) as unknown as { rules: unknown[] }).rules;
    expect(rules('quickstart', 'settings-sync-source')).toEqual([{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['app-settings'], verbs: ['get', 'list', 'watch'] }]);
    for (const ns of ['team-a', 'team-b']) expect(rules(ns, 'settings-sync')).toEqual([{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'patch', 'delete'] }]);
    for (const b of inputs.filter((o) => o.kind === 'RoleBinding' && o.metadata?.name !== 'kiln-controller-serviceaccount-tokens') as unknown as { subjects: unknown[] }[]) {
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'settings-sync', namespace: 'quickstart' }]);
    }
    // The platform admin's opt-in: the controller may request tokens in quickstart (and nowhere else it is not bound).
    const tokens = inputs.find((o) => o.kind === 'RoleBinding' && o.metadata?.name === 'kiln-controller-serviceaccount-tokens') as unknown as {
      metadata: { namespace: string };
      roleRef: unknown;
      subjects: unknown[];
    };
    expect(tokens.metadata.namespace).toBe('quickstart');
    expect(tokens.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kiln-controller-serviceaccount-tokens' });
    expect(tokens.subjects).toEqual([{ kind: 'ServiceAccount', name: 'kiln-controller', namespace: 'kiln-system' }]);
  });

  for (const { resource } of quickstart) {
    const id = `${resource.metadata.namespace}.${resource.kind.toLowerCase()}.${resource.metadata.name}`;
    it(`${id} renders to its pinned snapshot`, async () => {
      const outcome = renderDocument(resource, contextFromObjects(resource, inputs));
      expect('yaml' in outcome).toBe(true);
      await expect((outcome as { yaml: string }).yaml).toMatchFileSnapshot(`__snapshots__/${id}.yaml`);
    });
  }
});

describe('DirectoryService chart', () => {
  const ds = examples.find((e) => e.resource.kind === 'DirectoryService')!.resource;
  const objects = renderExample(ds);
  const sts = objects.find((o) => o.kind === 'StatefulSet') as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  const pod = sts.spec.template.spec;
  const container = pod.containers[0];

  it('renders headless + client Services, StatefulSet and PDB', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Service/ds-idrepo', 'Service/ds-idrepo-client', 'PodDisruptionBudget/ds-idrepo', 'StatefulSet/ds-idrepo']);
    const headless = objects[0] as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.ports.map((p: { port: number }) => p.port)).toEqual([1389, 1636, 4444, 8989, 8080]);
  });
  it('has volumeClaimTemplates with the requested size and class', () => {
    expect(sts.spec.volumeClaimTemplates).toEqual([
      expect.objectContaining({ metadata: expect.objectContaining({ name: 'data' }), spec: expect.objectContaining({ storageClassName: 'fast', resources: { requests: { storage: '100Gi' } } }) }),
    ]);
    expect(sts.spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: 'Retain', whenScaled: 'Retain' });
  });
  it('tolerates the dedicated directory nodes (kiln.dev/dedicated=directory:NoSchedule) and prefers spreading (Soft anti-affinity)', () => {
    expect(pod.tolerations).toEqual([{ key: 'kiln.dev/dedicated', operator: 'Equal', value: 'directory', effect: 'NoSchedule' }]);
    expect(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]).toEqual({
      weight: 100,
      podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'ds', 'app.kubernetes.io/instance': 'ds-idrepo' } } },
    });
    expect(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
  });
  it('spells out pod settings instead of inheriting library defaults', () => {
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.enableServiceLinks).toBe(false);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 11111, fsGroup: 0 });
    expect(container.imagePullPolicy).toBe('IfNotPresent');
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: false, capabilities: { drop: ['ALL'] } });
    expect(container.resources).toEqual({ requests: { cpu: '1', memory: '3Gi' }, limits: { memory: '3Gi' } });
    expect(container.startupProbe.failureThreshold * container.startupProbe.periodSeconds).toBeGreaterThanOrEqual(600);
  });
  it('mounts the password Secrets and the brought key pairs', () => {
    const secrets = pod.volumes.filter((v: { secret?: unknown }) => v.secret).map((v: { secret: { secretName: string } }) => v.secret.secretName);
    expect(secrets).toEqual(['ds-master-keypair', 'ds-ssl-keypair', 'ds-truststore', 'am-passwords', 'ds-passwords']);
  });
  it('hard and none anti-affinity', () => {
    const hard = renderExample({ ...ds, spec: { ...ds.spec, scheduling: { antiAffinity: 'Hard' } } });
    const none = renderExample({ ...ds, spec: { ...ds.spec, scheduling: { antiAffinity: 'None', tolerateDedicatedNodes: false } } });
    const podOf = (objs: K8sObject[]) => (objs.find((o) => o.kind === 'StatefulSet') as any).spec.template.spec; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(podOf(hard).affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution).toHaveLength(1);
    expect(podOf(none).affinity).toBeUndefined();
    expect(podOf(none).tolerations).toBeUndefined();
  });
  it('client Service type None renders no client Service; LDIF init adds an init container', () => {
    const objs = renderExample({ ...ds, spec: { ...ds.spec, service: { type: 'None' }, init: { ldifConfigMap: 'seed' } } });
    expect(objs.some((o) => o.metadata.name === 'ds-idrepo-client')).toBe(false);
    const p = (objs.find((o) => o.kind === 'StatefulSet') as any).spec.template.spec; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(p.initContainers.map((c: { name: string }) => c.name)).toEqual(['init']);
  });
  it('fromBackup makes new claims start from the snapshot', () => {
    const objs = renderExample({ ...ds, spec: { ...ds.spec, init: { fromBackup: 'idrepo-restore-restore' } } });
    const s = objs.find((o) => o.kind === 'StatefulSet') as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(s.spec.volumeClaimTemplates[0].spec.dataSource).toEqual({ apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'idrepo-restore-restore' });
  });
});

describe('other charts', () => {
  const byKind = (kind: string) => renderExample(examples.find((e) => e.resource.kind === kind)!.resource);

  it('CacheCluster: not-ready addresses published, claims deleted on scale-down, catalog list, entrypoint 0744', () => {
    const objs = byKind('CacheCluster') as any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
    const headless = objs.find((o) => o.kind === 'Service' && o.metadata.name === 'session-cache');
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    const sts = objs.find((o) => o.kind === 'StatefulSet');
    expect(sts.spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: 'Delete', whenScaled: 'Delete' });
    expect(sts.spec.podManagementPolicy).toBe('Parallel');
    expect(sts.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'entrypoint').configMap.defaultMode).toBe(0o744);
    const members = objs.find((o) => o.kind === 'ConfigMap');
    expect(members.data['catalog-servers'].split(',')).toEqual([0, 1, 2].map((i) => `session-cache-${i}.session-cache.web.svc.cluster.local`));
    expect(sts.spec.template.spec.containers[0].resources.limits.memory).toBe('6Gi');
  });
  it('PostgresInstance: LoadBalancer client Service, parameters ConfigMap, superuser from a Secret reference', () => {
    const objs = byKind('PostgresInstance') as any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(objs.find((o) => o.metadata.name === 'orders-db-client').spec.type).toBe('LoadBalancer');
    const conf = objs.find((o) => o.kind === 'ConfigMap').data['postgresql.conf'];
    expect(conf).toContain("max_connections = '200'");
    expect(conf).toContain("listen_addresses = '*'");
    const env = objs.find((o) => o.kind === 'StatefulSet').spec.template.spec.containers[0].env;
    expect(env.find((e: { name: string }) => e.name === 'POSTGRES_PASSWORD').valueFrom.secretKeyRef).toEqual({ name: 'orders-db-superuser', key: 'password' });
  });
  it('Memcached: a Deployment of spec.size pods that stay available through a rollout, and a Service on 11211', () => {
    const objs = byKind('Memcached') as any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Service/session-memcached', 'Deployment/session-memcached']);
    const deployment = objs.find((o) => o.kind === 'Deployment');
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.strategy.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    const container = deployment.spec.template.spec.containers[0];
    expect(container.image).toBe('docker.io/library/memcached:1.6.38-alpine');
    expect(container.command).toEqual(['memcached', '-p', '11211', '-m', '256', '-c', '1024', '-o', 'modern']);
    expect(container.resources.limits.memory).toBe('288Mi');
    expect(deployment.spec.template.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'memcached', 'app.kubernetes.io/instance': 'session-memcached' });
    expect(objs.find((o) => o.kind === 'Service').spec.ports[0]).toMatchObject({ port: 11211, targetPort: 11211 });
  });
  it('EtcdCluster: no replicas (the agent scales), membership from the agent ConfigMap, TLS flags, one-member budget', () => {
    const objs = byKind('EtcdCluster') as any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
    const sts = objs.find((o) => o.kind === 'StatefulSet');
    expect(sts.spec).not.toHaveProperty('replicas');
    expect(sts.spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: 'Retain', whenScaled: 'Delete' });
    const c = sts.spec.template.spec.containers[0];
    expect(c.envFrom).toEqual([{ configMapRef: { name: 'config-store-members' } }]);
    expect(c.args.some((a: string) => a.startsWith('--initial-cluster=') || a.startsWith('--initial-cluster-state='))).toBe(false);
    expect(c.args).toContain('--initial-advertise-peer-urls=https://$(POD_NAME).config-store.platform.svc:2380');
    expect(c.args).toContain('--client-cert-auth');
    expect(c.args).toContain('--peer-client-cert-auth');
    expect(c.image).toBe('gcr.io/etcd-development/etcd:v3.6.4');
    expect(objs.find((o) => o.kind === 'Service' && o.metadata.name === 'config-store').spec.publishNotReadyAddresses).toBe(true);
    expect(objs.find((o) => o.kind === 'Service' && o.metadata.name === 'config-store-client').spec.ports).toEqual([{ name: 'client', port: 2379, targetPort: 2379, protocol: 'TCP' }]);
    expect(objs.find((o) => o.kind === 'PodDisruptionBudget').spec.maxUnavailable).toBe(1);
  });
  it('PostgresDatabase renders nothing (the agent carries it out)', () => {
    expect(byKind('PostgresDatabase')).toEqual([]);
  });
  it('ConfigMapSync: one labelled copy per target namespace', () => {
    const objs = byKind('ConfigMapSync');
    expect(objs.map((o) => `${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['tenant-a/ca-bundle', 'tenant-b/ca-bundle']);
    expect(objs[0]!.metadata.labels).toMatchObject({ 'kiln.dev/owner-kind': 'ConfigMapSync', 'kiln.dev/owner-name': 'ca-bundle', 'kiln.dev/owner-namespace': 'platform' });
  });
  it('ConfigMapSync whose source is not among the inputs renders nothing offline and says where the copies come from', () => {
    const cms = examples.find((e) => e.resource.kind === 'ConfigMapSync')!.resource;
    const outcome = renderDocument(cms, contextFromObjects(cms, []));
    expect('errors' in outcome || 'yaml' in outcome).toBe(false);
    expect(outcome).toMatchObject({ resource: { kind: 'ConfigMapSync', metadata: { namespace: 'platform', name: 'ca-bundle' } } });
    expect((outcome as { note: string }).note).toMatch(/copies are made in the cluster from platform\/ca-bundle$/);
  });
  it('ConfigMapSync that is invalid is still an error, source or not', () => {
    const cms = examples.find((e) => e.resource.kind === 'ConfigMapSync')!.resource;
    const outcome = renderDocument({ ...cms, spec: { ...cms.spec, targets: {} } }, {});
    expect(outcome).toEqual({ errors: [expect.objectContaining({ path: 'spec.targets' })] });
  });
  it('postgresql.conf quotes values so a value cannot add a setting', async () => {
    const { postgresqlConf } = await import('../../kinds/postgres-instance/chart.js');
    expect(postgresqlConf({ search_path: "x'; shared_preload_libraries = 'evil" })).toContain("search_path = 'x''; shared_preload_libraries = ''evil'");
  });
});

describe('determinism', () => {
  it('rendering twice gives identical bytes', () => {
    for (const { resource } of examples) {
      expect(toYamlStream(renderExample(resource))).toBe(toYamlStream(renderExample(structuredClone(resource))));
    }
  });
  it('key order in the input does not change the output', () => {
    const reverseKeys = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(reverseKeys)
        : v && typeof v === 'object'
          ? Object.fromEntries(
              Object.entries(v)
                .reverse()
                .map(([k, x]) => [k, reverseKeys(x)]),
            )
          : v;
    for (const { resource } of examples) {
      expect(toYamlStream(renderExample(reverseKeys(resource) as typeof resource))).toBe(toYamlStream(renderExample(resource)));
    }
  });
  it('no rendered Secret carries data', () => {
    for (const { resource } of examples) {
      for (const o of renderExample(resource)) expect(o.kind === 'Secret' && ('data' in o || 'stringData' in o)).toBe(false);
    }
  });
});
