import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allCrds } from '../../crds/schema/generate.js';
import { crdYaml } from '../../lib/yaml.js';
import { isDistinguishedName, isPrime } from '../../validate/checks.js';
import { validate } from '../../validate/index.js';
import { exampleResources, INVALID, INVALID_BY_KILN } from './fixtures.js';

describe('validate', () => {
  it('accepts every example and applies the CRD defaults', () => {
    for (const { resource } of exampleResources()) {
      const v = validate(resource);
      expect(v.ok ? [] : v.errors, `${resource.kind} ${resource.metadata.name}`).toEqual([]);
    }
    const v = validate({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', metadata: { name: 'd' }, spec: { image: 'ds:7' } });
    expect(v.ok && v.resource.spec).toMatchObject({
      replicas: 1,
      imagePullPolicy: 'IfNotPresent',
      storage: { size: '10Gi' },
      scheduling: { tolerateDedicatedNodes: true, antiAffinity: 'Soft' },
      service: { type: 'ClusterIP' },
    });
  });

  for (const c of [...INVALID, ...INVALID_BY_KILN]) {
    it(`refuses ${c.name}, naming ${c.field}`, () => {
      const v = validate(c.doc);
      expect(v.ok).toBe(false);
      if (!v.ok) expect(v.errors.map((e) => e.path)).toContain(c.field);
    });
  }

  it('reports every error of a resource, not just the first', () => {
    const v = validate({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'DirectoryService',
      metadata: { name: 'd' },
      spec: { replicas: -1, image: 'ds:7', storage: { size: 'ten gigs' } },
    });
    expect(v.ok ? [] : v.errors.map((e) => e.path).sort()).toEqual(['spec.replicas', 'spec.storage.size']);
  });

  it('does not modify its input', () => {
    const doc = { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g' }, spec: { cache: 'c' } };
    validate(doc);
    expect(doc.spec).toEqual({ cache: 'c' });
  });

  it('refuses kinds kiln does not serve', () => {
    const v = validate({ apiVersion: 'kiln.dev/v1alpha1', kind: 'Widget', metadata: { name: 'w' }, spec: {} });
    expect(v.ok ? [] : v.errors).toEqual([{ path: 'kind', message: 'kiln serves no kiln.dev/v1alpha1/Widget' }]);
  });
});

describe('checks', () => {
  it('distinguished names', () => {
    expect(isDistinguishedName('uid=am-config,ou=admins,ou=am-config')).toBe(true);
    expect(isDistinguishedName('uid=admin')).toBe(true);
    expect(isDistinguishedName('cn=Doe\\, John,ou=people')).toBe(true);
    expect(isDistinguishedName('not a dn')).toBe(false);
    expect(isDistinguishedName('uid=a,,ou=b')).toBe(false);
    expect(isDistinguishedName('')).toBe(false);
  });
  it('primes', () => {
    expect([1, 2, 3, 4, 12, 13, 31, 10007].map(isPrime)).toEqual([false, true, true, false, false, true, true, true]);
  });
});

describe('crds/', () => {
  it('matches what crds/schema generates (run npm run crds after changing the schema)', () => {
    for (const { file, crd } of allCrds()) {
      expect(readFileSync(join(new URL('../../crds/', import.meta.url).pathname, file), 'utf8'), file).toBe(crdYaml(crd));
    }
  });
  it('every field carries a description', () => {
    const missing: string[] = [];
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const walk = (s: Record<string, any>, path: string) => {
      if (!s['description'] && path !== '' && path !== '.metadata') missing.push(path);
      for (const [k, v] of Object.entries(s['properties'] ?? {})) walk(v as Record<string, unknown>, `${path}.${k}`);
      if (s['items']) walk(s['items'], `${path}[]`);
      if (s['additionalProperties'] && typeof s['additionalProperties'] === 'object' && s['additionalProperties'].properties) walk(s['additionalProperties'], `${path}{}`);
    };
    for (const { crd } of allCrds()) walk((crd as any).spec.versions[0].schema.openAPIV3Schema, ''); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(missing).toEqual([]);
  });
});

describe('README.md', () => {
  it('carries the current API reference (run npm run docs after changing the schema)', async () => {
    const { apiReference, replaceBetweenMarkers } = await import('../../crds/schema/docs.js');
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(replaceBetweenMarkers(readme, apiReference())).toBe(readme);
  });
});
