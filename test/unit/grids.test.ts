/**
 * A CacheCluster's grids: each DataGrid's configuration (its own settings over
 * its GridTemplate's over the defaults) in its ConfigMap, and mounted into the
 * members through one projected volume whose content the pod template digests.
 * The charts and their inputs here; `kiln synth` of examples/grids/ as a user
 * runs it; the controller in test/integration/controller-grids.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diffResource } from '../../controller/apply/diff.js';
import { GRIDS_ANNOTATION, GRIDS_DIGEST_ANNOTATION } from '../../kinds/cache-cluster/chart.js';
import { cacheMembers } from '../../kinds/cache-cluster/members.js';
import type { KubeClient } from '../../kube/client.js';
import type { KubeObject } from '../../kube/informer.js';
import { kindDefinition } from '../../kinds/registry.js';
import { MissingInputError, render } from '../../kinds/render.js';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { contextFromObjects } from '../../lib/context.js';
import { renderDocument } from '../../lib/render-document.js';
import { parseYamlStream } from '../../lib/yaml.js';
import { validate } from '../../validate/index.js';
import { gridsDir } from './fixtures.js';

const root = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-grids-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ns = 'web';
const cache: KilnResource = { apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', metadata: { name: 'c', namespace: ns }, spec: { image: 'cache:1' } };
const template = (name: string, spec: Record<string, unknown>, namespace = ns): KilnResource => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'GridTemplate', metadata: { name, namespace }, spec });
const grid = (name: string, spec: Record<string, unknown>, namespace = ns): KilnResource => ({
  apiVersion: 'kiln.dev/v1alpha1',
  kind: 'DataGrid',
  metadata: { name, namespace },
  spec: { cache: 'c', ...spec },
});

/** Validated and rendered with the inputs drawn from `objects`, as synth and the controller do. */
function rendered(r: KilnResource, objects: KilnResource[]): K8sObject[] {
  const v = validate(r);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return render(v.resource, contextFromObjects(v.resource, objects));
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const statefulSet = (objects: K8sObject[]): any => objects.find((o) => o.kind === 'StatefulSet');
const gridFile = (objects: K8sObject[]) => JSON.parse((objects[0] as unknown as { data: Record<string, string> }).data['grid.json']!) as Record<string, unknown>;

describe('DataGrid with a GridTemplate', () => {
  it('its own settings win field by field over the template, the template over the defaults', () => {
    const t = template('std', { gridType: 'Session', partitions: 31, syncReplicas: 2, timeToLiveSeconds: 600 });
    const g = grid('g', { template: 'std', partitions: 7, asyncReplicas: 0 });
    expect(gridFile(rendered(g, [t]))).toEqual({
      asyncReplicas: 0, // the grid's
      capacity: null, // neither: default
      gridType: 'session', // the template's
      lockTimeoutSeconds: 15,
      name: 'g',
      partitions: 7, // the grid's over the template's 31
      syncReplicas: 2,
      timeToLiveSeconds: 600,
      transactionTimeoutSeconds: 30,
    });
  });

  it('a grid without a template renders as before: the defaults', () => {
    expect(gridFile(rendered(grid('g', {}), []))).toMatchObject({ gridType: 'simple', partitions: 13, syncReplicas: 0, asyncReplicas: 1 });
  });

  it('a missing template (or one of another namespace) is a MissingInputError naming spec.template', () => {
    const g = grid('g', { template: 'std' });
    expect(() => rendered(g, [template('std', {}, 'other')])).toThrow(MissingInputError);
    expect(() => rendered(g, [])).toThrow(/^DataGrid\/web\/g: spec\.template: GridTemplate web\/std not found/);
    // Offline it is a problem of that field, not a note: the output would lack the grid's configuration.
    const v = validate(g);
    expect(v.ok && renderDocument(v.resource, contextFromObjects(v.resource, []))).toEqual({ errors: [{ path: 'spec.template', message: 'GridTemplate web/std not found (or not valid)' }] });
  });

  it('a template kiln refuses counts as missing; a sum only the two make together is refused naming the field', () => {
    expect(() => rendered(grid('g', { template: 'bad' }), [template('bad', { partitions: 12 })])).toThrow(MissingInputError);
    expect(() => rendered(grid('g', { template: 't', asyncReplicas: 5 }), [template('t', { syncReplicas: 5 })])).toThrow(/spec\.syncReplicas: Invalid value: 5 \+ 5/);
  });

  it('the schema: spec.template is an object name; no setting is defaulted; CEL and kiln refuse what they can see', () => {
    const errors = (r: KilnResource) => {
      const v = validate(r);
      return v.ok ? [] : v.errors.map((e) => e.path);
    };
    expect(errors(grid('g', { template: 'Not_A_Name' }))).toEqual(['spec.template']);
    expect(errors(grid('g', { syncReplicas: 5, asyncReplicas: 5 }))).toEqual(['spec']);
    expect(errors(template('t', { syncReplicas: 5, asyncReplicas: 5 }))).toEqual(['spec']);
    expect(errors(template('t', { partitions: 12 }))).toEqual(['spec.partitions']);
    expect(errors(template('t', { gridType: 'session' }))).toEqual(['spec.gridType']);
    // A rule on the whole object (it reads metadata.name): reported at the root, as the API server does.
    expect(errors(grid('g'.repeat(200), { cache: 'c'.repeat(48) }))).toEqual(['']);
    const v = validate(template('t', {}));
    expect(v.ok && v.resource.spec).toEqual({});
  });

  it('kiln diff: a DataGrid waiting for its template is a note, not an error (nothing is read from the cluster for it)', async () => {
    const g = { ...grid('g', { template: 'std' }), metadata: { name: 'g', namespace: ns, uid: 'u-1' } };
    const d = await diffResource(undefined as unknown as KubeClient, { resource: g, live: g, context: { dataGrid: {} } });
    expect(d).toMatchObject({ errors: [], changes: [], notes: [`waits: spec.template: GridTemplate ${ns}/std not found (or not valid); the controller applies nothing for it until then`] });
  });

  it('a GridTemplate renders nothing; offline it is a note', () => {
    const t = template('t', { partitions: 7 });
    expect(render(t)).toEqual([]);
    expect(renderDocument(t, {})).toMatchObject({ note: expect.stringContaining('DataGrids that name it in spec.template') });
  });
});

describe('CacheCluster members mount their grids', () => {
  const t = template('std', { partitions: 31 });
  const a = grid('alpha', { template: 'std' });
  const b = grid('beta', {});

  it('one projected volume of every grid that names it, sorted by name, <grid>.json each, mounted read-only', () => {
    const sts = statefulSet(rendered(cache, [b, t, a, grid('other', { cache: 'not-c' }), grid('elsewhere', {}, 'other-ns')]));
    const pod = sts.spec.template.spec;
    expect(pod.volumes.find((v: { name: string }) => v.name === 'grids')).toEqual({
      name: 'grids',
      projected: {
        defaultMode: 0o444,
        sources: [{ configMap: { name: 'c-grid-alpha', items: [{ key: 'grid.json', path: 'alpha.json' }] } }, { configMap: { name: 'c-grid-beta', items: [{ key: 'grid.json', path: 'beta.json' }] } }],
      },
    });
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'grids', mountPath: '/opt/kiln/grids', readOnly: true });
    expect(sts.spec.template.metadata.annotations[GRIDS_ANNOTATION]).toBe('alpha,beta');
    // The same render, whatever order the inputs came in.
    expect(statefulSet(rendered(cache, [a, t, b]))).toEqual(sts);
  });

  it('the digest follows the grids configuration: a template change, an override, a grid added or removed change it; nothing else does', () => {
    const digest = (objects: KilnResource[]) => statefulSet(rendered(cache, objects)).spec.template.metadata.annotations[GRIDS_DIGEST_ANNOTATION] as string;
    const base = digest([t, a, b]);
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(digest([template('std', { partitions: 37 }), a, b])).not.toBe(base);
    expect(digest([t, grid('alpha', { template: 'std', timeToLiveSeconds: 5 }), b])).not.toBe(base);
    expect(digest([t, a])).not.toBe(base);
    expect(digest([t, a, b, grid('gamma', {})])).not.toBe(base);
    // A template setting the grid overrides anyway: the same configuration, the same digest (no roll).
    expect(digest([template('std', { partitions: 31, asyncReplicas: 1 }), a, b])).toBe(base);
  });

  it('a grid that cannot be rendered is not mounted (its ConfigMap would never come, and the members would not start)', () => {
    const sts = statefulSet(rendered(cache, [grid('waits', { template: 'missing' }), grid('odd', { partitions: 12 }), grid('sum', { template: 'std', syncReplicas: 9 }), t]));
    expect(sts.spec.template.spec.volumes.map((v: { name: string }) => v.name)).not.toContain('grids');
    expect(sts.spec.template.metadata.annotations).toBeUndefined();
  });

  it('without grids the pod template is as before grids were mounted (an upgrade rolls no cache without grids)', () => {
    const sts = statefulSet(rendered(cache, []));
    expect(sts.spec.template.metadata.annotations).toBeUndefined();
    expect(sts.spec.template.spec.volumes.map((v: { name: string }) => v.name)).toEqual(['tmp']);
  });

  it('the kinds declare what they read, so the controller re-renders them when it changes', () => {
    expect(kindDefinition('CacheCluster')?.reads).toEqual(['DataGrid', 'GridTemplate']);
    expect(kindDefinition('DataGrid')?.reads).toEqual(['GridTemplate']);
  });
});

describe('CacheCluster status.members', () => {
  const pod = (name: string, grids?: string, deletionTimestamp?: string) =>
    ({ metadata: { name, namespace: ns, ...(grids === undefined ? {} : { annotations: { [GRIDS_ANNOTATION]: grids } }), ...(deletionTimestamp ? { deletionTimestamp } : {}) } }) as KubeObject;

  it('each member by ordinal with the grids its own pod says; none for a pod without the annotation; a leaving pod is not listed', () => {
    expect(cacheMembers([pod('c-10', 'a'), pod('c-2', 'a,b'), pod('c-0'), pod('c-1', 'a', '2026-01-01T00:00:00Z')])).toEqual({
      members: [
        { name: 'c-0', grids: [] },
        { name: 'c-2', grids: ['a', 'b'] },
        { name: 'c-10', grids: ['a'] },
      ],
    });
  });

  it('takes only grid names from the annotation (anyone with pod rights may write it)', () => {
    expect(cacheMembers([pod('c-0', 'a,,B,x y,../etc,ok.grid')])).toEqual({ members: [{ name: 'c-0', grids: ['a', 'ok.grid'] }] });
  });

  it('the CacheCluster declares it: its members are the pods named cache', () => {
    expect(kindDefinition('CacheCluster')?.pods?.app).toBe('cache');
  });
});

describe('examples/grids', () => {
  const docs = readFileSync(join(gridsDir, 'grids.yaml'), 'utf8');
  const resources = parseYamlStream(docs).map((d) => d.value as KilnResource);

  it('holds a CacheCluster, a GridTemplate and DataGrids that use it', () => {
    expect(resources.map((r) => `${r.kind}/${r.metadata.name}`)).toEqual(['CacheCluster/catalog-cache', 'GridTemplate/catalog-standard', 'DataGrid/products', 'DataGrid/prices']);
  });

  for (const r of resources.filter((x) => x.kind !== 'GridTemplate')) {
    const id = `${r.metadata.namespace}.${r.kind.toLowerCase()}.${r.metadata.name}`;
    it(`${id} renders to its pinned snapshot`, async () => {
      const outcome = renderDocument(r, contextFromObjects(r, resources));
      expect('yaml' in outcome).toBe(true);
      await expect((outcome as { yaml: string }).yaml).toMatchFileSnapshot(`__snapshots__/${id}.yaml`);
    });
  }

  it('kiln synth renders them as a user runs it: grids resolved from the template, mounted by the cache; the template a note', () => {
    const out = join(tmp, 'out');
    const r = spawnSync(process.execPath, [join(root, 'bin/kiln.js'), 'synth', gridsDir, '-o', out], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('GridTemplate catalog/catalog-standard: renders nothing of its own');
    const prices = parseYamlStream(readFileSync(join(out, 'catalog/datagrid/prices.k8s.yaml'), 'utf8'))[0]!.value as { data: Record<string, string> };
    expect(JSON.parse(prices.data['grid.json']!)).toMatchObject({ partitions: 61, timeToLiveSeconds: 300, syncReplicas: 1, asyncReplicas: 1 });
    const products = parseYamlStream(readFileSync(join(out, 'catalog/datagrid/products.k8s.yaml'), 'utf8'))[0]!.value as { data: Record<string, string> };
    expect(JSON.parse(products.data['grid.json']!)).toMatchObject({ partitions: 31, timeToLiveSeconds: 3600 });
    const cacheYaml = readFileSync(join(out, 'catalog/cachecluster/catalog-cache.k8s.yaml'), 'utf8');
    expect(cacheYaml).toContain(`${GRIDS_ANNOTATION}: prices,products`);
    expect(cacheYaml).toContain('path: prices.json');
  });

  it('kiln synth without the template: the grids are problems naming spec.template, and the cache mounts none of them', () => {
    const d = join(tmp, 'no-template');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'grids.yaml'), docs.replace(/---\n# What the catalog's grids share\.\n[\s\S]*?---\n/, '---\n'));
    const r = spawnSync(process.execPath, [join(root, 'bin/kiln.js'), 'synth', d, '-o', join(tmp, 'no-template-out'), '--continue-on-error'], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toContain('DataGrid catalog/products: spec.template: GridTemplate catalog/catalog-standard not found');
    expect(r.stderr).toContain('DataGrid catalog/prices: spec.template: GridTemplate catalog/catalog-standard not found');
    expect(readFileSync(join(tmp, 'no-template-out/catalog/cachecluster/catalog-cache.k8s.yaml'), 'utf8')).not.toContain('grids');
  });
});
