/** `kiln synth` as a user runs it: a real process, real files. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { synth } from '../../lib/synth.js';
import { toYamlStream } from '../../lib/yaml.js';
import { examplesDir, INVALID } from './fixtures.js';

const root = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-synth-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function kiln(args: string[]) {
  return spawnSync(process.execPath, [join(root, 'bin/kiln.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
}

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name).slice(dir.length + 1)).sort();
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
      'identity/directorybackup/idrepo-nightly.k8s.yaml',
      'identity/directoryrestore/idrepo-restore.k8s.yaml',
      'identity/directoryservice/ds-idrepo.k8s.yaml',
      'platform/configmapsync/ca-bundle.k8s.yaml',
      'quickstart/configmapsync/app-settings.k8s.yaml',
      'quickstart/postgresdatabase/app.k8s.yaml',
      'quickstart/postgresinstance/app-db.k8s.yaml',
      'shop/postgresdatabase/invoices.k8s.yaml',
      'shop/postgresdatabase/orders.k8s.yaml',
      'shop/postgresinstance/orders-db.k8s.yaml',
      'web/cachecluster/session-cache.k8s.yaml',
      'web/datagrid/sessions.k8s.yaml',
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
    const cms = { apiVersion: 'kiln.dev/v1alpha1', kind: 'ConfigMapSync', metadata: { name: 'settings', namespace: 'apps' }, spec: { source: { name: 'app-settings', namespace: 'platform' }, targets: { namespaces: ['team-a'] }, serviceAccountName: 'sync' } };
    const input = join(tmp, 'cms-no-source.yaml');
    writeFileSync(input, toYamlStream([cms, good]));
    const out = join(tmp, 'cms-no-source-out');
    const r = kiln(['synth', input, '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(files(out)).toEqual(['default/datagrid/fine.k8s.yaml']);
    const lines = r.stderr.split('\n').filter((l) => l.includes('ConfigMapSync'));
    expect(lines).toEqual([`${input} [document 0] ConfigMapSync apps/settings: renders nothing offline (its source ConfigMap is not among the inputs): copies are made in the cluster from platform/app-settings`]);
    expect(r.stderr).toMatch(/^1 resources rendered into .*; 0 invalid$/m);
  });

  it('the same ConfigMapSync with its source among the inputs renders the copies (and no note)', async () => {
    const cms = { apiVersion: 'kiln.dev/v1alpha1', kind: 'ConfigMapSync', metadata: { name: 'settings', namespace: 'apps' }, spec: { source: { name: 'app-settings', namespace: 'platform' }, targets: { namespaces: ['team-a'] }, serviceAccountName: 'sync' } };
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
    expect(alone.notes).toEqual([{ file: withoutSource, index: 0, resource: 'ConfigMapSync apps/settings', message: expect.stringMatching(/copies are made in the cluster from platform\/app-settings$/) }]);
  });

  it('reports a duplicate resource instead of overwriting', async () => {
    const dup = join(tmp, 'dup.yaml');
    writeFileSync(dup, toYamlStream([good, good]));
    const report = await synth({ inputs: [dup], outDir: join(tmp, 'dup-out') });
    expect(report.problems.map((p) => p.errors[0]!.message)).toEqual([expect.stringContaining('Duplicate value: DataGrid default/fine')]);
  });
});
