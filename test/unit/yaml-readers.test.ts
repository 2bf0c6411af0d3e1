/**
 * What kiln writes must mean the same to every reader that will read it:
 * Flux and kustomize (go-yaml v3 / kyaml), kubectl (sigs.k8s.io/yaml, YAML
 * 1.1), libyaml-based tools (PyYAML), and the JavaScript readers. A value that
 * one of them reads differently is a way for a tenant to write objects kiln
 * never rendered.
 */
import fc from 'fast-check';
import { loadAll } from 'js-yaml';
import { parseAllDocuments } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { render } from '../../kinds/render.js';
import { renderDocument } from '../../lib/render-document.js';
import { toYamlStream } from '../../lib/yaml.js';
import { validate } from '../../validate/index.js';
import { goCheckerPath, readWithGo, readWithLibyaml, tagged, type ReaderResult } from './yaml-readers.js';

function readWithJs(text: string): Record<'js-yaml' | 'yaml', ReaderResult> {
  const present = (d: unknown) => d !== null && d !== undefined;
  const jsYaml = (): ReaderResult => {
    try {
      return { docs: loadAll(text).filter(present).map(tagged) };
    } catch (err) {
      return { error: String(err) };
    }
  };
  const docs = parseAllDocuments(text);
  const errors = Array.isArray(docs) ? docs.flatMap((d) => d.errors.map((e) => e.message)) : ['not a stream'];
  const yaml: ReaderResult =
    errors.length > 0 || !Array.isArray(docs)
      ? { error: errors.join('; ') }
      : {
          docs: docs
            .map((d) => d.toJS() as unknown)
            .filter(present)
            .map(tagged),
        };
  return { 'js-yaml': jsYaml(), yaml };
}

/** Every reader's reading of each stream. */
function readAll(texts: string[]): Record<string, ReaderResult>[] {
  const py = readWithLibyaml(texts);
  const go = readWithGo(texts);
  return texts.map((t, i) => ({ libyaml: py[i]!, ...go[i]!, ...readWithJs(t) }));
}

describe('kiln YAML as other readers read it', () => {
  beforeAll(() => {
    goCheckerPath();
  }, 300_000);

  it('a tenant value with U+2028 --- and a ClusterRoleBinding stays one value of one ConfigMap for every reader', () => {
    const crb = [
      'apiVersion: rbac.authorization.k8s.io/v1',
      'kind: ClusterRoleBinding',
      'metadata:',
      '  name: tenant-admin',
      'roleRef:',
      '  apiGroup: rbac.authorization.k8s.io',
      '  kind: ClusterRole',
      '  name: cluster-admin',
      'subjects:',
      '- kind: ServiceAccount',
      '  name: default',
      '  namespace: tenant',
    ];
    const values = [`4MB\u2028---\u2028${crb.join('\u2028')}`, `4MB\u2029---\u2029${crb.join('\u2029')}`, `4MB\u0085---\u0085${crb.join('\u0085')}`];
    const texts: string[] = [];
    const expected: unknown[][] = [];
    for (const workMem of values) {
      const doc = {
        apiVersion: 'kiln.dev/v1alpha1',
        kind: 'PostgresInstance',
        metadata: { name: 'db', namespace: 'tenant' },
        spec: { version: 16, storage: { size: '1Gi' }, parameters: { work_mem: workMem }, service: { annotations: { note: `a\n${workMem}\n` } } },
      };
      const outcome = renderDocument(doc, {});
      if (!('yaml' in outcome)) throw new Error(`not rendered: ${JSON.stringify(outcome)}`);
      texts.push(outcome.yaml);
      const v = validate(doc);
      if (!v.ok) throw new Error('invalid');
      expected.push(render(v.resource, {}).map(tagged));
    }
    const read = readAll(texts);
    read.forEach((readers, i) => {
      for (const [reader, result] of Object.entries(readers)) {
        expect({ reader, error: result.error }).toEqual({ reader, error: undefined });
        const docs = result.docs as Record<string, unknown>[];
        const kind = tagged('kind') as string;
        expect({ reader, kinds: docs.map((d) => d[kind]) }).toEqual({ reader, kinds: (expected[i] as Record<string, unknown>[]).map((d) => d[kind]) });
        expect(docs.some((d) => d[kind] === tagged('ClusterRoleBinding'))).toBe(false);
        const conf = (docs[0]![tagged('data') as string] as Record<string, string>)[tagged('postgresql.conf') as string]!;
        expect(conf).toContain((tagged(values[i]!.replaceAll("'", "''")) as string).slice(1));
        expect({ reader, docs }).toEqual({ reader, docs: expected[i] });
      }
    });
  });

  it('any JSON data reads back the same in libyaml, kyaml, go-yaml v3, kubectl, js-yaml and yaml', () => {
    // Strings that break YAML readers: line breaks of every kind, control and
    // format characters, YAML 1.1 types (yes, 010, 1:20, ~), indicators.
    const tricky = fc.constantFrom(
      'yes',
      'No',
      'on',
      'OFF',
      'y',
      'n',
      '~',
      'null',
      'Null',
      '010',
      '0o10',
      '08',
      '1:20',
      '190:20:30',
      '1_000',
      '0b101',
      '0x1F',
      '.inf',
      '-.Inf',
      '.NaN',
      '1e3',
      '2001-12-14',
      '2001-12-14t21:59:43.10-05:00',
      '=',
      '<<',
      '-',
      '? x',
      ': x',
      'a: b',
      '#c',
      'a #b',
      ' lead',
      'trail ',
      '- item',
      '[a]',
      '{a}',
      '*ref',
      '&anchor',
      '!tag',
      '%dir',
      '@at',
      '`tick',
      '"q"',
      "'q'",
      '\\',
      '',
      'line\nline\n',
      'a\n\nb',
      'end\n\n',
      '\ttab',
      '\r\n',
      'a\rb',
      '\u2028',
      'a\u2028---\u2028kind: X',
      'a\u2029b',
      'a\u0085b',
      'a\nb\u0085c\n',
      '\ufeffbom',
      'zw\u200bsp',
      'rtl\u202eevil',
      'del\x7f',
      'c1\x80\x9f',
      '\x00nul',
      'esc\x1b[0m',
      '\ufffe\uffff',
      'emoji \u{1F600}',
      'é ü ß',
      '---',
      '...',
      'a\n---\nb',
      'a\n...\nb',
    );
    const text = fc.oneof(
      tricky,
      fc.string({ unit: 'binary', maxLength: 12 }),
      fc.tuple(tricky, fc.string({ unit: 'binary', maxLength: 6 }), tricky).map((p) => p.join('')),
    );
    const scalar = fc.oneof(
      text,
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
      fc.boolean(),
      fc.constant(null),
    );
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(text, tie('node'), { maxKeys: 4 })),
    })).node;
    const stream = fc.array(fc.dictionary(text, value, { minKeys: 1, maxKeys: 5 }), { minLength: 1, maxLength: 3 });
    const samples = fc.sample(stream, { numRuns: 200, seed: 19 }) as Record<string, unknown>[][];
    const texts = samples.map((docs) => toYamlStream(docs));
    const read = readAll(texts);
    read.forEach((readers, i) => {
      for (const [reader, result] of Object.entries(readers)) {
        expect({ reader, yaml: texts[i], ...result }).toEqual({ reader, yaml: texts[i], docs: samples[i]!.map(tagged) });
      }
    });
  });
});
