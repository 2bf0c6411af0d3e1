/**
 * The API follows the Kubernetes API conventions while it is v1alpha1:
 * CamelCase enum values (the old lower-case spellings refused with a message
 * naming the new one), the dedicated-node toleration under kiln's domain,
 * PostgresInstance `version` as a range of majors, and no short name that
 * Kubernetes already uses. The same rules run at admission
 * (test/integration/admission.test.ts).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { render } from '../../kinds/render.js';
import type { K8sObject } from '../../kinds/types.js';
import { KINDS } from '../../crds/schema/kinds.js';
import { fromYaml } from '../../lib/yaml.js';
import { validate } from '../../validate/index.js';
import { OLD_SPELLINGS } from './fixtures.js';

const root = new URL('../../', import.meta.url).pathname;

function rendered(doc: Record<string, unknown>): K8sObject[] {
  const v = validate(doc);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return render(v.resource);
}

const podSpec = (objects: K8sObject[]) => (objects.find((o) => o.kind === 'StatefulSet') as unknown as { spec: { template: { spec: Record<string, any> } } }).spec.template.spec; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('CamelCase enum values', () => {
  for (const c of OLD_SPELLINGS) {
    it(`${c.kind} ${c.field}: "${c.old}" is refused, naming "${c.now}"`, () => {
      const v = validate(c.doc);
      expect(v.ok).toBe(false);
      expect(!v.ok && v.errors).toEqual([{ path: c.field, message: `Invalid value: ${c.message}` }]);
    });
    it(`${c.kind} ${c.field}: "${c.now}" is accepted`, () => {
      const doc = structuredClone(c.doc);
      const spec = doc['spec'] as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      if (c.field === 'spec.gridType') spec['gridType'] = c.now;
      else spec['scheduling']['antiAffinity'] = c.now;
      expect(validate(doc)).toMatchObject({ ok: true });
    });
  }

  it('a value that never was one is refused with the values it may take', () => {
    const v = validate({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g', namespace: 'default' }, spec: { cache: 'c', gridType: 'Replicated' } });
    expect(!v.ok && v.errors).toEqual([{ path: 'spec.gridType', message: 'Invalid value: gridType "Replicated" is not one of Simple, Session, Dynamic' }]);
  });

  it('defaults are CamelCase: antiAffinity Soft, gridType Simple', () => {
    const ds = validate({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', metadata: { name: 'd', namespace: 'default' }, spec: { image: 'ds:7' } });
    expect(ds.ok && (ds.resource.spec as { scheduling: unknown }).scheduling).toEqual({ antiAffinity: 'Soft', tolerateDedicatedNodes: true });
    // A DataGrid's settings have no schema default (its GridTemplate's would lose to it): the render applies Simple.
    const grid = validate({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g', namespace: 'default' }, spec: { cache: 'c' } });
    expect(grid.ok && (grid.resource.spec as { gridType?: string }).gridType).toBeUndefined();
    const [cm] = rendered({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g', namespace: 'default' }, spec: { cache: 'c' } }) as unknown as { data: Record<string, string> }[];
    expect(JSON.parse(cm!.data['grid.json']!).gridType).toBe('simple');
  });

  it('Hard, Soft and None render required, preferred and no anti-affinity', () => {
    const pg = (antiAffinity: string) =>
      podSpec(rendered({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'p', namespace: 'default' }, spec: { scheduling: { antiAffinity } } }));
    expect(Object.keys(pg('Hard').affinity.podAntiAffinity)).toEqual(['requiredDuringSchedulingIgnoredDuringExecution']);
    expect(Object.keys(pg('Soft').affinity.podAntiAffinity)).toEqual(['preferredDuringSchedulingIgnoredDuringExecution']);
    expect(pg('None').affinity).toBeUndefined();
  });

  it('the grid file the members read keeps its lower-case gridType', () => {
    const [cm] = rendered({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g', namespace: 'default' }, spec: { cache: 'c', gridType: 'Dynamic' } }) as unknown as {
      data: Record<string, string>;
    }[];
    expect(JSON.parse(cm!.data['grid.json']!).gridType).toBe('dynamic');
  });

  it('no lower-case enum value is left in any CRD', () => {
    const lowerEnums: string[] = [];
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const walk = (s: any, path: string): void => {
      if (!s || typeof s !== 'object') return;
      for (const v of s.enum ?? []) if (typeof v === 'string' && /^[a-z]/.test(v)) lowerEnums.push(`${path}: ${v}`);
      for (const [k, sub] of Object.entries(s.properties ?? {})) walk(sub, `${path}.${k}`);
      if (s.items) walk(s.items, `${path}[]`);
      if (typeof s.additionalProperties === 'object') walk(s.additionalProperties, `${path}.*`);
    };
    for (const def of KINDS) walk(def.spec, `${def.kind}.spec`);
    expect(lowerEnums).toEqual([]);
  });
});

describe('the dedicated-node toleration', () => {
  const cases = [
    { kind: 'DirectoryService', value: 'directory', spec: { image: 'ds:7' } },
    { kind: 'PostgresInstance', value: 'postgres', spec: {} },
    { kind: 'CacheCluster', value: 'cache', spec: { image: 'cache:1' } },
  ];
  for (const c of cases) {
    it(`${c.kind} tolerates kiln.dev/dedicated=${c.value}:NoSchedule by default, and not when switched off`, () => {
      const doc = { apiVersion: 'kiln.dev/v1alpha1', kind: c.kind, metadata: { name: 'x', namespace: 'default' }, spec: c.spec };
      expect(podSpec(rendered(doc)).tolerations).toEqual([{ key: 'kiln.dev/dedicated', operator: 'Equal', value: c.value, effect: 'NoSchedule' }]);
      const off = podSpec(rendered({ ...doc, spec: { ...c.spec, scheduling: { tolerateDedicatedNodes: false, tolerations: [{ key: 'gpu', operator: 'Exists' }] } } }));
      expect(off.tolerations).toEqual([{ key: 'gpu', operator: 'Exists' }]);
    });
  }

  it('is documented in each CRD (kubectl explain) and in the README', () => {
    for (const [file, value] of [
      ['directoryservice', 'directory'],
      ['postgresinstance', 'postgres'],
      ['cachecluster', 'cache'],
    ] as const) {
      const crd = readFileSync(`${root}crds/${file}.yaml`, 'utf8');
      expect(crd).toContain(`kiln.dev/dedicated=${value}:NoSchedule`);
      expect(crd).not.toMatch(/tainted key=/);
    }
    const readme = readFileSync(`${root}README.md`, 'utf8');
    expect(readme).toContain('kubectl taint nodes <node> kiln.dev/dedicated=directory:NoSchedule');
  });
});

describe('PostgresInstance version: a range of majors', () => {
  const pg = (version: unknown) => validate({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'p', namespace: 'default' }, spec: { version } });
  it('accepts 14 up to 99, majors the old closed list did not know included', () => {
    for (const v of [14, 16, 17, 18, 19, 25, 99]) expect(pg(v).ok, String(v)).toBe(true);
  });
  it('refuses majors below 14 and above 99, and non-integers', () => {
    expect(pg(13)).toEqual({ ok: false, errors: [{ path: 'spec.version', message: 'Invalid value: should be greater than or equal to 14' }] });
    expect(pg(100)).toEqual({ ok: false, errors: [{ path: 'spec.version', message: 'Invalid value: should be less than or equal to 99' }] });
    expect(pg(16.5).ok).toBe(false);
    expect(pg('17').ok).toBe(false);
  });
  it('selects the official image of that major', () => {
    const sts = rendered({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'p', namespace: 'default' }, spec: { version: 18 } });
    expect(podSpec(sts).containers[0].image).toBe('docker.io/library/postgres:18');
  });
  it('the CRD has a range, not an enum', () => {
    const crd = fromYaml(readFileSync(`${root}crds/postgresinstance.yaml`, 'utf8')) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    const version = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.version;
    expect(version).toMatchObject({ type: 'integer', minimum: 14, maximum: 99 });
    expect(version.enum).toBeUndefined();
  });
});

describe('short names', () => {
  it('DirectoryService is dirsvc, never ds (DaemonSets have it); every kind keeps the kiln category', () => {
    const crd = fromYaml(readFileSync(`${root}crds/directoryservice.yaml`, 'utf8')) as { spec: { names: { shortNames: string[]; categories: string[] } } };
    expect(crd.spec.names.shortNames).toEqual(['dirsvc']);
    for (const def of KINDS) {
      const names = (fromYaml(readFileSync(`${root}crds/${def.kind.toLowerCase()}.yaml`, 'utf8')) as { spec: { names: { shortNames: string[]; categories: string[] } } }).spec.names;
      expect(names.categories).toEqual(['kiln']);
      expect(names.shortNames.length, def.kind).toBeGreaterThan(0);
    }
  });
  it("are unique among kiln's kinds (the real API server's resources are checked in test/integration/admission.test.ts)", () => {
    const all = KINDS.flatMap((d) => d.shortNames);
    expect(new Set(all).size).toBe(all.length);
  });
});
