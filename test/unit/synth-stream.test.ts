/**
 * `kiln synth` streams: input files are rendered by several threads, each
 * writing as it goes, in whatever order they finish. The output must be what
 * one thread writes, nothing may reach it when any document is invalid, and a
 * resource given twice keeps the first one whichever thread wrote first.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { fileSystemError } from '../../cli/errors.js';
import { InputRefused } from '../../lib/inputs.js';
import { fromThreadError, toThreadError, type FileResult } from '../../lib/render-files.js';
import { compareOutputPaths, Gathered, synth, type SynthOptions } from '../../lib/synth.js';
import { parseYamlStream, toYamlStream } from '../../lib/yaml.js';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-synth-stream-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const dataGrid = (name: string, namespace: string, cache = 'c') => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name, namespace }, spec: { cache } });
const database = (name: string, namespace: string) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name, namespace }, spec: { instance: 'pg', name: 'db' } });

/** Input files f-00.yaml... holding `perFile` documents each; names run against the output order (later files, earlier namespaces). */
function inputs(name: string, files: number, extra: (file: number) => unknown[] = () => []): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (let f = 0; f < files; f++) {
    const docs = [dataGrid(`g-${f}`, `ns-${String(files - f).padStart(2, '0')}`), dataGrid(`a-${f}`, 'zz'), database(`d-${f}`, `ns-${f % 3}`), ...extra(f)];
    writeFileSync(join(dir, `f-${String(f).padStart(2, '0')}.yaml`), toYamlStream(docs));
  }
  return dir;
}

async function toStream(o: Omit<SynthOptions, 'outDir' | 'stream'>) {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const report = await synth({ ...o, outDir: 'unused', stream });
  return { report, text };
}

function tree(dir: string): Record<string, string> {
  if (!existsSync(dir)) return {};
  return Object.fromEntries(
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => [join(d.parentPath, d.name).slice(dir.length + 1), readFileSync(join(d.parentPath, d.name), 'utf8')]),
  );
}

const stagingLeft = () => readdirSync(tmp).filter((n) => n.includes('.staging-'));

describe('kiln synth with several rendering threads', () => {
  it('-o -: the stream is in output order (namespace, kind, name), byte for byte what one thread writes', async () => {
    const dir = inputs('order', 12);
    const one = await toStream({ inputs: [dir], jobs: 1 });
    const three = await toStream({ inputs: [dir], jobs: 3 });
    expect(three.report.problems).toEqual([]);
    expect(three.text).toBe(one.text);
    const namespaces = parseYamlStream(three.text).map((d) => (d.value as { metadata: { namespace: string } }).metadata.namespace);
    // Namespaces never go back, though the files hold them from the last to the first.
    expect(namespaces).toHaveLength(24);
    expect(namespaces).toEqual([...namespaces].sort());
    expect(three.report.rendered.map((r) => r.resource)).toEqual(one.report.rendered.map((r) => r.resource));
    expect(three.report.rendered[0]!.resource).toBe('PostgresDatabase ns-0/d-0');
    expect(three.report.rendered.at(-1)!.resource).toBe('DataGrid zz/a-9');
  });

  it('files: the same tree as one thread, written in output order in the report', async () => {
    const dir = inputs('files', 12);
    const a = await synth({ inputs: [dir], outDir: join(tmp, 'files-1'), jobs: 1 });
    const b = await synth({ inputs: [dir], outDir: join(tmp, 'files-3'), jobs: 3 });
    expect(tree(join(tmp, 'files-3'))).toEqual(tree(join(tmp, 'files-1')));
    expect(Object.keys(tree(join(tmp, 'files-3')))).toHaveLength(36);
    expect(b.written).toHaveLength(36);
    expect(b.written).toEqual([...b.written].sort(compareOutputPaths));
    expect(b.written.map((w) => w.slice(join(tmp, 'files-3').length))).toEqual(a.written.map((w) => w.slice(join(tmp, 'files-1').length)));
    expect(stagingLeft()).toEqual([]);
  });

  it('an invalid document in the last file: nothing written, nothing streamed, no staging left; with continueOnError the rest', async () => {
    const dir = inputs('late', 12, (f) => (f === 11 ? [{ ...dataGrid('bad', 'zz'), spec: { cache: 'c', partitions: -1 } }] : []));
    const out = join(tmp, 'late-out');
    const r = await synth({ inputs: [dir], outDir: out, jobs: 2 });
    expect(r.problems.map((p) => [p.file, p.index, p.resource])).toEqual([[join(dir, 'f-11.yaml'), 3, 'DataGrid zz/bad']]);
    expect(r.written).toEqual([]);
    expect(r.rendered).toEqual([]);
    expect(existsSync(out)).toBe(false);
    expect(stagingLeft()).toEqual([]);

    const streamed = await toStream({ inputs: [dir], jobs: 2 });
    expect(streamed.report.problems).toHaveLength(1);
    expect(streamed.text).toBe('');

    const partial = await synth({ inputs: [dir], outDir: out, jobs: 2, continueOnError: true });
    expect(partial.problems).toHaveLength(1);
    expect(Object.keys(tree(out))).toHaveLength(36);
    expect(stagingLeft()).toEqual([]);
  });

  it('a resource in two files rendered by different threads: the first is kept, the second reported', async () => {
    const dir = inputs('dup', 8, (f) => (f === 1 ? [dataGrid('twice', 'zz', 'first')] : f === 6 ? [dataGrid('twice', 'zz', 'second')] : []));
    const out = join(tmp, 'dup-out');
    const r = await synth({ inputs: [dir], outDir: out, jobs: 2, continueOnError: true });
    expect(r.problems.map((p) => [p.file, p.index, p.errors[0]!.message])).toEqual([
      [join(dir, 'f-06.yaml'), 3, `Duplicate value: DataGrid zz/twice is also defined in ${join(dir, 'f-01.yaml')} document 3`],
    ]);
    expect(readFileSync(join(out, 'zz/datagrid/twice.k8s.yaml'), 'utf8')).toContain('first');
    expect(readFileSync(join(out, 'zz/datagrid/twice.k8s.yaml'), 'utf8')).not.toContain('second');
    expect(tree(out)['.aside']).toBeUndefined();
    expect(readdirSync(out)).not.toContain('.aside');
  });

  it('a ConfigMapSync reads its source ConfigMap from a file another thread reads', async () => {
    const sync = {
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'ConfigMapSync',
      metadata: { name: 'settings', namespace: 'apps' },
      spec: { source: { name: 'src', namespace: 'platform' }, targets: { namespaces: ['team-a'] }, serviceAccountName: 'sync' },
    };
    const source = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'src', namespace: 'platform' }, data: { 'app.properties': 'colour=blue\n' } };
    const dir = inputs('cms', 8, (f) => (f === 0 ? [sync] : f === 7 ? [source] : []));
    const one = await toStream({ inputs: [dir], jobs: 1 });
    const two = await toStream({ inputs: [dir], jobs: 2 });
    expect(two.report.problems).toEqual([]);
    expect(two.report.notes).toEqual([]);
    expect(two.report.other).toBe(1);
    expect(two.text).toBe(one.text);
    expect(two.text).toContain('colour=blue');
  });

  it('reports progress after each input file', async () => {
    const dir = inputs('progress', 5);
    const seen: { resources: number; files: number; totalFiles: number }[] = [];
    await synth({ inputs: [dir], outDir: join(tmp, 'progress-out'), jobs: 2, onProgress: (p) => seen.push(p) });
    expect(seen.map((p) => p.files)).toEqual([1, 2, 3, 4, 5]);
    expect(seen.every((p) => p.totalFiles === 5)).toBe(true);
    expect(seen.at(-1)!.resources).toBe(15);
  });
});

describe('Gathered: a resource given twice, whichever order the threads report it in', () => {
  const record = (outcome: FileResult['resources'][number]['outcome']): FileResult => ({
    resources: [{ index: 0, resource: 'DataGrid zz/twice', key: 'DataGrid zz/twice', outcome }],
    problems: [],
    warnings: [],
    plain: [],
  });

  it('the later file staged first: the earlier one written aside is moved into place', () => {
    const staging = mkdtempSync(join(tmp, 'gathered-'));
    mkdirSync(join(staging, 'zz/datagrid'), { recursive: true });
    mkdirSync(join(staging, '.aside'));
    writeFileSync(join(staging, 'zz/datagrid/twice.k8s.yaml'), 'second\n');
    writeFileSync(join(staging, '.aside/0-0'), 'first\n');
    const g = new Gathered(['a.yaml', 'b.yaml']);
    g.add(1, record({ path: 'zz/datagrid/twice.k8s.yaml' }));
    g.add(0, record({ path: 'zz/datagrid/twice.k8s.yaml', aside: '.aside/0-0' }));
    g.resolveDuplicates(staging);
    expect(readFileSync(join(staging, 'zz/datagrid/twice.k8s.yaml'), 'utf8')).toBe('first\n');
    const { rendered } = g.report();
    expect(rendered).toEqual([{ resource: 'DataGrid zz/twice', file: 'zz/datagrid/twice.k8s.yaml' }]);
    expect(g.problems.map((p) => [p.file, p.errors[0]!.message])).toEqual([['b.yaml', 'Duplicate value: DataGrid zz/twice is also defined in a.yaml document 0']]);
  });

  it('the first one invalid: the later one staged is removed, and both are reported', () => {
    const staging = mkdtempSync(join(tmp, 'gathered-'));
    mkdirSync(join(staging, 'zz/datagrid'), { recursive: true });
    writeFileSync(join(staging, 'zz/datagrid/twice.k8s.yaml'), 'second\n');
    const g = new Gathered(['a.yaml', 'b.yaml']);
    g.add(1, record({ path: 'zz/datagrid/twice.k8s.yaml' }));
    g.add(0, record({ errors: [{ path: 'spec.partitions', message: 'Invalid value' }] }));
    g.resolveDuplicates(staging);
    expect(existsSync(join(staging, 'zz/datagrid/twice.k8s.yaml'))).toBe(false);
    expect(g.report().rendered).toEqual([]);
    expect(g.problems.map((p) => [p.file, p.errors[0]!.path])).toEqual([
      ['a.yaml', 'spec.partitions'],
      ['b.yaml', 'metadata.name'],
    ]);
  });
});

describe('errors from a worker thread', () => {
  it('a file system error keeps what the command line prints (path and code); a refused input stays InputRefused', () => {
    let missing: unknown;
    try {
      readFileSync(join(tmp, 'no-such.yaml'));
    } catch (err) {
      missing = err;
    }
    const again = fromThreadError(structuredClone(toThreadError(missing)));
    expect(fileSystemError(again)).toBe(`${join(tmp, 'no-such.yaml')}: no such file or directory (ENOENT)`);
    const refused = fromThreadError(structuredClone(toThreadError(new InputRefused('too big'))));
    expect(refused).toBeInstanceOf(InputRefused);
    expect(refused.message).toBe('too big');
  });
});
