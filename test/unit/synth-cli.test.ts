/** `kiln synth` as a user runs it: a real process, real files. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kilnLookalike } from '../../lib/inputs.js';
import { compareOutputPaths, synth } from '../../lib/synth.js';
import { KILN_API_VERSION, KIND_NAMES } from '../../kinds/registry.js';
import { parseYamlStream, toYamlStream } from '../../lib/yaml.js';
import { examplesDir, INVALID } from './fixtures.js';

const root = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-synth-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function kiln(args: string[]) {
  return spawnSync(process.execPath, [join(root, 'bin/kiln.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
}

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();
}

const bad = INVALID.filter((c) => ['negative replicas', 'storage size that is not a quantity', 'more catalog servers than members', 'ConfigMapSync without a source'].includes(c.name));
const good = { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'fine', namespace: 'default' }, spec: { cache: 'c' } };
const badFile = join(tmp, 'bad.yaml');
writeFileSync(badFile, toYamlStream([...bad.map((b) => b.doc), good]));

describe('kiln synth', () => {
  it('renders every example into one file per resource', () => {
    const out = join(tmp, 'examples-out');
    const r = kiln(['synth', examplesDir, '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(files(out)).toEqual([
      // examples/grids: the GridTemplate renders no file of its own.
      'catalog/cachecluster/catalog-cache.k8s.yaml',
      'catalog/datagrid/prices.k8s.yaml',
      'catalog/datagrid/products.k8s.yaml',
      'identity/directorybackup/idrepo-nightly.k8s.yaml',
      'identity/directoryrestore/idrepo-restore.k8s.yaml',
      'identity/directoryservice/ds-idrepo.k8s.yaml',
      'platform/configmapsync/ca-bundle.k8s.yaml',
      'platform/etcdcluster/config-store.k8s.yaml',
      'quickstart/configmapsync/app-settings.k8s.yaml',
      'quickstart/postgresdatabase/app.k8s.yaml',
      'quickstart/postgresinstance/app-db.k8s.yaml',
      'shop/postgresdatabase/invoices.k8s.yaml',
      'shop/postgresdatabase/orders.k8s.yaml',
      'shop/postgresinstance/orders-db.k8s.yaml',
      'web/cachecluster/session-cache.k8s.yaml',
      'web/datagrid/sessions.k8s.yaml',
      'web/memcached/session-memcached.k8s.yaml',
    ]);
  });

  it('refuses bad resources: exit 1, file and field for each, nothing written', () => {
    const out = join(tmp, 'bad-out');
    const r = kiln(['synth', badFile, '-o', out]);
    expect(r.status).toBe(1);
    for (const [i, b] of bad.entries()) {
      expect(r.stderr).toContain(`${badFile} [document ${i}]`);
      expect(r.stderr).toMatch(new RegExp(`\\[document ${i}\\][^\\n]*${b.field.replace(/[.[\]]/g, '\\$&')}:`));
    }
    expect(files(out)).toEqual([]);
  });

  it('with --continue-on-error renders the good resources and still exits 1', () => {
    const out = join(tmp, 'continue-out');
    const r = kiln(['synth', badFile, '-o', out, '--continue-on-error']);
    expect(r.status).toBe(1);
    expect(files(out)).toEqual(['default/datagrid/fine.k8s.yaml']);
  });

  it('output does not depend on input order or on the number of workers', async () => {
    const shuffled = join(tmp, 'shuffled');
    cpSync(examplesDir, shuffled, { recursive: true });
    // Reverse the documents inside each multi-document file.
    for (const f of files(shuffled)) {
      const p = join(shuffled, f);
      writeFileSync(p, readFileSync(p, 'utf8').split(/^---$/m).reverse().join('---\n'));
    }
    const a = join(tmp, 'order-a');
    const b = join(tmp, 'order-b');
    await synth({ inputs: [examplesDir], outDir: a, jobs: 1 });
    await synth({ inputs: [shuffled], outDir: b, jobs: 2 });
    expect(files(b)).toEqual(files(a));
    for (const f of files(a)) expect(readFileSync(join(b, f), 'utf8'), f).toBe(readFileSync(join(a, f), 'utf8'));
  });

  it('a ConfigMapSync whose source is not among the inputs: nothing rendered for it, one line saying so, exit 0', () => {
    const cms = {
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'ConfigMapSync',
      metadata: { name: 'settings', namespace: 'apps' },
      spec: { source: { name: 'app-settings', namespace: 'platform' }, targets: { namespaces: ['team-a'] }, serviceAccountName: 'sync' },
    };
    const input = join(tmp, 'cms-no-source.yaml');
    writeFileSync(input, toYamlStream([cms, good]));
    const out = join(tmp, 'cms-no-source-out');
    const r = kiln(['synth', input, '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(files(out)).toEqual(['default/datagrid/fine.k8s.yaml']);
    const lines = r.stderr.split('\n').filter((l) => l.includes('ConfigMapSync'));
    expect(lines).toEqual([
      `${input} [document 0] ConfigMapSync apps/settings: renders nothing offline (its source ConfigMap is not among the inputs): copies are made in the cluster from platform/app-settings`,
    ]);
    expect(r.stderr).toMatch(/^1 resources rendered into .*; 0 invalid$/m);
  });

  it('the same ConfigMapSync with its source among the inputs renders the copies (and no note)', async () => {
    const cms = {
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'ConfigMapSync',
      metadata: { name: 'settings', namespace: 'apps' },
      spec: { source: { name: 'app-settings', namespace: 'platform' }, targets: { namespaces: ['team-a'] }, serviceAccountName: 'sync' },
    };
    const source = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-settings', namespace: 'platform' }, data: { a: 'b' } };
    const input = join(tmp, 'cms-with-source.yaml');
    writeFileSync(input, toYamlStream([cms, source]));
    const report = await synth({ inputs: [input], outDir: join(tmp, 'cms-with-source-out') });
    expect(report.notes).toEqual([]);
    expect(report.problems).toEqual([]);
    expect(report.written.map((w) => w.slice(tmp.length + 1))).toEqual(['cms-with-source-out/apps/configmapsync/settings.k8s.yaml']);
    const withoutSource = join(tmp, 'cms-alone.yaml');
    writeFileSync(withoutSource, toYamlStream([cms]));
    const alone = await synth({ inputs: [withoutSource], outDir: join(tmp, 'cms-alone-out') });
    expect(alone.problems).toEqual([]);
    expect(alone.written).toEqual([]);
    expect(alone.notes).toEqual([
      { file: withoutSource, index: 0, resource: 'ConfigMapSync apps/settings', message: expect.stringMatching(/copies are made in the cluster from platform\/app-settings$/) },
    ]);
  });

  it('reports a duplicate resource instead of overwriting', async () => {
    const dup = join(tmp, 'dup.yaml');
    writeFileSync(dup, toYamlStream([good, good]));
    const report = await synth({ inputs: [dup], outDir: join(tmp, 'dup-out') });
    expect(report.problems.map((p) => p.errors[0]!.message)).toEqual([expect.stringContaining('Duplicate value: DataGrid default/fine')]);
  });
});

/** Every document of a YAML stream, as values (comments and headers aside). */
const documents = (text: string) =>
  parseYamlStream(text).map((d) => {
    expect(d.error).toBeUndefined();
    return d.value;
  });

const nearMiss = join(tmp, 'near-miss.yaml');
writeFileSync(
  nearMiss,
  toYamlStream([
    { apiVersion: 'kilm.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'typo', namespace: 'default' }, spec: { cache: 'c' } },
    { kind: 'CacheCluster', metadata: { name: 'no-api-version' }, spec: { size: 1 } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'plain' } },
    good,
  ]),
);

describe('kiln synth -o - and --report json', () => {
  it('-o - writes one YAML stream to stdout: the documents of the files, in file order; no directory "-"', () => {
    const out = join(tmp, 'stream-files');
    const dir = kiln(['synth', examplesDir, '-o', out]);
    expect(dir.status, dir.stderr).toBe(0);
    const fileOrder = files(out).sort(compareOutputPaths);
    // The order kiln synth documents: by namespace, kind, name, in code-point order.
    expect(fileOrder).toEqual([...fileOrder].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    const expected = fileOrder.flatMap((f) => documents(readFileSync(join(out, f), 'utf8')));

    const r = kiln(['synth', examplesDir, '-o', '-']);
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(tmp, '-'))).toBe(false);
    const streamed = documents(r.stdout);
    expect(streamed.length).toBeGreaterThan(10);
    expect(streamed).toEqual(expected);
    // Messages stay on stderr.
    expect(r.stderr).toMatch(/^\d+ resources rendered into standard output in /m);
    expect(r.stdout).not.toMatch(/resources rendered/);

    const alias = kiln(['synth', examplesDir, '--stdout', '-q']);
    expect(alias.status, alias.stderr).toBe(0);
    expect(alias.stdout).toBe(r.stdout);
    expect(alias.stderr).toBe('');
  });

  it('--report json: written, and each error with file, document, field and message; exit 1', () => {
    const out = join(tmp, 'report-out');
    const r = kiln(['synth', badFile, nearMiss, '-o', out, '--continue-on-error', '--report', 'json']);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('');
    const report = JSON.parse(r.stdout);
    expect(Object.keys(report).sort()).toEqual(['errors', 'exitCode', 'notes', 'otherDocuments', 'output', 'reportVersion', 'warnings', 'written']);
    expect(report).toMatchObject({ reportVersion: 1, exitCode: 1, output: out, otherDocuments: 3 });
    expect(report.written).toEqual([{ resource: 'DataGrid default/fine', file: join(out, 'default/datagrid/fine.k8s.yaml') }]);
    expect(report.errors.length).toBeGreaterThanOrEqual(bad.length);
    for (const [i, b] of bad.entries()) {
      expect(report.errors).toContainEqual(expect.objectContaining({ file: badFile, document: i, field: b.field, message: expect.any(String) }));
    }
    for (const e of report.errors) expect(Object.keys(e).sort()).toEqual(expect.arrayContaining(['document', 'field', 'file', 'message']));
    expect(report.warnings.map((w: { file: string; document: number }) => [w.file, w.document])).toEqual([
      [nearMiss, 0],
      [nearMiss, 1],
    ]);
  });

  it('--report json with -o -: the documents on stdout, the report on stderr', () => {
    const r = kiln(['synth', nearMiss, '-o', '-', '--report', 'json']);
    expect(r.status, r.stderr).toBe(0);
    expect(documents(r.stdout).map((d) => (d as { kind: string }).kind)).toEqual(['ConfigMap']);
    const report = JSON.parse(r.stderr);
    expect(report).toMatchObject({ exitCode: 0, output: '-', written: [{ resource: 'DataGrid default/fine' }], errors: [] });
    expect(report.written[0]).not.toHaveProperty('file');
  });
});

describe('documents that look like kiln resources but are not', () => {
  it('a warning each (file, document, why); with --strict an error, exit 1 and nothing written', () => {
    const out = join(tmp, 'near-out');
    const r = kiln(['synth', nearMiss, '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${nearMiss} [document 0]: warning: apiVersion kilm.dev/v1alpha1 is close to kiln's kiln.dev/v1alpha1 but not it`);
    expect(r.stderr).toContain(`${nearMiss} [document 1]: warning: kind CacheCluster is a kiln kind but the document has no apiVersion`);
    expect(r.stderr).not.toContain('[document 2]');
    expect(files(out)).toEqual(['default/datagrid/fine.k8s.yaml']);

    const strictOut = join(tmp, 'near-strict');
    const s = kiln(['synth', nearMiss, '-o', strictOut, '--strict']);
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(new RegExp(`^${nearMiss.replace(/[.]/g, '\\.')} \\[document 0\\] DataGrid default/typo: apiVersion: apiVersion kilm\\.dev/v1alpha1 is close`, 'm'));
    expect(s.stderr).toMatch(/\[document 1\] CacheCluster default\/no-api-version: apiVersion: kind CacheCluster is a kiln kind/);
    expect(s.stderr).not.toContain('warning:');
    expect(files(strictOut)).toEqual([]);
  });

  it.each([
    ['kilm.dev/v1alpha1', 'DataGrid', /close to kiln's/],
    ['Kiln.dev/v1alpha1', 'DataGrid', /close to kiln's/],
    ['kiln.io/v1alpha1', 'Anything', /close to kiln's/],
    ['kiln.dve/v1', 'DataGrid', /close to kiln's/],
    ['kiln.dev', 'DataGrid', /close to kiln's/],
    [undefined, 'PostgresInstance', /no apiVersion/],
    [undefined, 'postgresinstance', /no apiVersion/],
    ['v1alpha1', 'DirectoryService', /has no group/],
    ['v1', 'ConfigMapSync', /has no group/],
  ])('flags apiVersion %j kind %s', (apiVersion, kind, why) => {
    expect(kilnLookalike({ apiVersion, kind, metadata: { name: 'x' } }, KIND_NAMES, KILN_API_VERSION)).toMatch(why);
  });

  it.each([
    ['v1', 'ConfigMap'],
    ['v1', 'Namespace'],
    ['apps/v1', 'StatefulSet'],
    ['example.com/v1', 'DataGrid'],
    ['kind.x-k8s.io/v1alpha4', 'Cluster'],
    ['k8s.dev/v1', 'Thing'],
    [undefined, 'List'],
    ['kiln.dev/v1alpha1', 'DataGrid'],
    ['kiln.dev/v1beta1', 'DataGrid'],
  ])('leaves apiVersion %j kind %s alone', (apiVersion, kind) => {
    expect(kilnLookalike({ apiVersion, kind, metadata: { name: 'x' } }, KIND_NAMES, KILN_API_VERSION)).toBeUndefined();
  });
});
