/**
 * Every schema-valid resource renders: generated resources that pass
 * validate() must render without throwing into objects that have an
 * apiVersion, a kind and a valid DNS name, and never a Secret with data.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { render } from '../../kinds/render.js';
import { validate } from '../../validate/index.js';

const label = fc.stringMatching(/^[a-z]([a-z0-9-]{0,20}[a-z0-9])?$/);
const subdomain = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?(\.[a-z0-9]{1,10})?$/);
const quantity = fc.oneof(
  fc.integer({ min: 1, max: 4096 }).map((n) => `${n}Mi`),
  fc.integer({ min: 1, max: 64 }).map((n) => `${n}Gi`),
  fc.integer({ min: 1, max: 64 }).map((n) => `${n}G`),
  fc.constantFrom('1.5Gi', '500M', '1e9'),
);
const resources = fc.option(
  fc.record(
    {
      requests: fc.record({ cpu: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constantFrom('250m', '1', '2.5')), memory: quantity }, { requiredKeys: [] }),
      limits: fc.record({ memory: quantity }, { requiredKeys: [] }),
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);
const scheduling = fc.record(
  {
    tolerateDedicatedNodes: fc.boolean(),
    antiAffinity: fc.constantFrom('Soft', 'Hard', 'None'),
    nodeSelector: fc.dictionary(fc.constantFrom('zone', 'disk', 'kubernetes.io/arch'), label, { maxKeys: 2 }),
  },
  { requiredKeys: [] },
);
const dn = fc.tuple(fc.constantFrom('uid', 'cn'), label, fc.constantFrom('ou=admins', 'ou=people,dc=example,dc=com', '')).map(([a, v, rest]) => (rest ? `${a}=${v},${rest}` : `${a}=${v}`));
const meta = fc.record({ name: label, namespace: label });
const image = fc.constantFrom('registry.example.com/app:1.0', 'ds:7.5.1', 'quay.io/x/y@sha256:' + 'a'.repeat(64));
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

const SPECS: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  DirectoryService: fc.record(
    {
      replicas: opt(fc.integer({ min: 0, max: 9 })),
      image,
      resources,
      storage: opt(fc.record({ size: quantity, storageClassName: opt(subdomain) })),
      passwords: opt(fc.dictionary(dn, fc.record({ secretName: subdomain, key: opt(fc.constantFrom('password', 'pw.txt')), create: opt(fc.boolean()) }), { maxKeys: 4 })),
      scheduling: opt(scheduling),
      service: opt(fc.record({ type: fc.constantFrom('ClusterIP', 'LoadBalancer', 'NodePort', 'None') })),
      init: opt(fc.oneof(fc.record({ ldifConfigMap: subdomain }), fc.record({ fromBackup: subdomain }))),
    },
    { requiredKeys: ['image'] },
  ),
  DirectoryBackup: fc.record(
    { directoryService: label, ordinal: opt(fc.integer({ min: 0, max: 5 })), image, storage: opt(fc.record({ size: quantity })) },
    { requiredKeys: ['directoryService', 'image'] },
  ),
  DirectoryRestore: fc.record({ backup: label, image, storage: opt(fc.record({ size: quantity })) }, { requiredKeys: ['backup', 'image'] }),
  PostgresInstance: fc.record(
    {
      version: opt(fc.integer({ min: 14, max: 99 })),
      replicas: opt(fc.integer({ min: 0, max: 1 })),
      resources,
      parameters: opt(
        fc.dictionary(
          fc.constantFrom('max_connections', 'work_mem', 'search_path', 'log_line_prefix'),
          fc.string({ maxLength: 20 }).filter((s) => !/[\n\r\0]/.test(s)),
          { maxKeys: 3 },
        ),
      ),
      service: opt(fc.record({ type: fc.constantFrom('ClusterIP', 'LoadBalancer', 'NodePort', 'None'), port: fc.integer({ min: 1, max: 65535 }) })),
      superuserSecret: opt(fc.record({ name: subdomain })),
      scheduling: opt(scheduling),
    },
    { requiredKeys: [] },
  ),
  PostgresDatabase: fc.record(
    { instance: label, name: fc.stringMatching(/^[a-z_][a-z0-9_]{0,30}$/), extensions: opt(fc.uniqueArray(fc.constantFrom('pgcrypto', 'citext', 'hstore'), { maxLength: 2 })) },
    { requiredKeys: ['instance', 'name'] },
  ),
  CacheCluster: fc
    .integer({ min: 1, max: 9 })
    .chain((size) =>
      fc.record(
        { size: fc.constant(size), catalogServers: fc.integer({ min: 1, max: size }), capacity: opt(quantity), image, resources, scheduling: opt(scheduling) },
        { requiredKeys: ['size', 'catalogServers', 'image'] },
      ),
    ),
  DataGrid: fc.record(
    {
      cache: label,
      gridType: opt(fc.constantFrom('Simple', 'Session', 'Dynamic')),
      partitions: opt(fc.constantFrom(2, 3, 13, 31, 97, 10007)),
      syncReplicas: opt(fc.integer({ min: 0, max: 4 })),
      asyncReplicas: opt(fc.integer({ min: 0, max: 4 })),
      capacity: opt(quantity),
    },
    { requiredKeys: ['cache'] },
  ),
  ConfigMapSync: fc.record({
    source: fc.record({ name: subdomain, namespace: opt(label) }, { requiredKeys: ['name'] }),
    targets: fc.record({ namespaces: fc.uniqueArray(label, { minLength: 1, maxLength: 5 }) }),
    serviceAccountName: subdomain,
  }),
};

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

describe('every schema-valid resource renders', () => {
  for (const [kind, spec] of Object.entries(SPECS)) {
    it(kind, () => {
      let accepted = 0;
      fc.assert(
        fc.property(meta, spec, fc.dictionary(fc.constantFrom('a', 'b'), fc.string({ maxLength: 40 }), { maxKeys: 2 }), (metadata, s, data) => {
          const v = validate({ apiVersion: 'kiln.dev/v1alpha1', kind, metadata, spec: s });
          if (!v.ok) return; // not schema-valid: outside this property
          accepted++;
          const objects = render(v.resource, { configMapSync: { source: { data }, selectedNamespaces: [] } });
          for (const o of objects) {
            expect(o.apiVersion).toMatch(/^([a-z0-9.]+\/)?v[0-9]+$/);
            expect(o.kind).toMatch(/^[A-Z][A-Za-z]+$/);
            expect(o.metadata.name.length).toBeLessThanOrEqual(253);
            expect(o.metadata.name).toMatch(DNS_SUBDOMAIN);
            if (o.kind === 'Service' || o.kind === 'StatefulSet') expect(o.metadata.name.length).toBeLessThanOrEqual(63);
            expect(o.kind === 'Secret' && ('data' in o || 'stringData' in o)).toBe(false);
          }
        }),
        { numRuns: 150 },
      );
      // The generators aim at valid resources; if most were refused the property would prove little.
      expect(accepted).toBeGreaterThan(100);
    });
  }
});

describe('the fast serializer equals cdk8s for generated resources', () => {
  for (const [kind, spec] of Object.entries(SPECS)) {
    it(kind, async () => {
      const { App } = await import('cdk8s');
      const { chartFactory } = await import('../../kinds/registry.js');
      const { chartObjects } = await import('../../kinds/serialize.js');
      const { compareObjects } = await import('../../kinds/render.js');
      let compared = 0;
      fc.assert(
        fc.property(meta, spec, (metadata, s) => {
          const v = validate({ apiVersion: 'kiln.dev/v1alpha1', kind, metadata, spec: s });
          if (!v.ok) return;
          compared++;
          const ctx = { configMapSync: { source: { data: { a: 'b' } }, selectedNamespaces: [] } };
          const make = () => chartFactory(v.resource.apiVersion, kind)(new App(), 'c', v.resource, ctx);
          const a = chartObjects(make()).sort(compareObjects);
          const b = (make().toJson() as typeof a).sort(compareObjects);
          expect(JSON.stringify(a)).toBe(JSON.stringify(b));
        }),
        { numRuns: 40 },
      );
      expect(compared).toBeGreaterThan(20);
    });
  }
});
