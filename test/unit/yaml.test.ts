import fc from 'fast-check';
import { load } from 'js-yaml';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseInputYaml, parseYamlStream, toYaml, toYamlStream } from '../../lib/yaml.js';
import { yaml11Reading } from '../../lib/yaml11.js';

// JSON values as rendered objects hold them (no -0, no non-finite numbers).
const json = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown);
const tricky = fc.constantFrom(
  'yes',
  'No',
  'on',
  'null',
  '~',
  '1e3',
  '0x1F',
  '010',
  '1.0',
  '-',
  ': x',
  'a: b',
  '#c',
  'a #b',
  ' lead',
  'trail ',
  'line\nline\n',
  'a\n\nb',
  '\ttab',
  'x:',
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
  '2024-01-01',
  'true',
  '',
  'é ü',
  'end\n\n',
);

describe('kiln YAML writer', () => {
  it('round-trips any JSON value through both YAML 1.2 readers', () => {
    fc.assert(
      fc.property(fc.oneof(json, fc.dictionary(tricky, fc.oneof(tricky, json)), fc.array(tricky)), (v) => {
        const text = toYaml(v);
        expect(load(text)).toEqual(v);
        expect(parse(text)).toEqual(v);
      }),
      { numRuns: 500 },
    );
  });
  it('never writes a plain value that YAML 1.1 readers read as another type: kiln reads its own output back as an input, unrefused', () => {
    const yaml11 = fc.constantFrom('yes', 'No', 'ON', 'off', 'y', 'N', '010', '-010', '08', '0o17', '0b101', '1_000', '1:20', '+0x1F', '<<', '~', '=', '.inf', '1e3');
    fc.assert(
      fc.property(fc.oneof(json, fc.dictionary(fc.oneof(yaml11, tricky), fc.oneof(yaml11, tricky, json)), fc.array(fc.oneof(yaml11, tricky))), (v) => {
        const text = toYaml(v);
        const docs = parseInputYaml(text);
        expect(docs.flatMap((d) => d.errors ?? [])).toEqual([]);
        if (v !== null) expect(docs[0]?.value).toEqual(v);
      }),
      { numRuns: 500 },
    );
    for (const s of ['yes', '010', '1:20', '0o17', '1_000', '<<']) {
      expect(yaml11Reading(s), s).toBeDefined();
      expect(toYaml({ [s]: s })).toBe(`"${s}": "${s}"\n`);
    }
  });
  it('escapes the characters YAML 1.1 readers take as line breaks, and control and format characters', () => {
    expect(toYaml({ a: 'x\u2028---\u2029y\u0085z' })).toBe('a: "x\\L---\\Py\\Nz"\n');
    expect(toYaml({ a: 'one\ntwo\u2028three\n' })).toBe('a: "one\\ntwo\\Lthree\\n"\n');
    expect(toYaml({ a: '\x00\x1b\x7f\x9f\u200b\ufeff\u{1bca1}' })).toBe('a: "\\x00\\x1b\\x7f\\x9f\\u200b\\ufeff\\U0001bca1"\n');
    expect(toYaml({ big: 1e21, m: 1e-7, k: 0.5 })).toBe('big: 1.0e+21\nm: 1.0e-7\nk: 0.5\n');
  });
  it('writes multi-line text as a literal block', () => {
    expect(toYaml({ conf: 'a = 1\nb = 2\n' })).toBe('conf: |\n  a = 1\n  b = 2\n');
  });
  it('quotes what YAML 1.1 readers would not read as a string', () => {
    expect(toYaml({ a: 'yes', b: 'on', c: '1', d: 'N' })).toBe('a: "yes"\nb: "on"\nc: "1"\nd: "N"\n');
  });
  it('streams split back into the same documents', () => {
    const docs = [{ a: 1 }, { b: [1, { c: 'd' }] }, { e: {} }];
    expect(parseYamlStream(toYamlStream(docs)).map((d) => d.value)).toEqual(docs);
  });
  it('reports a broken document by position and keeps the others', () => {
    const docs = parseYamlStream('a: 1\n---\nb: [\n---\nc: 3\n');
    expect(docs.map((d) => [d.index, d.value, Boolean(d.error)])).toEqual([
      [0, { a: 1 }, false],
      [1, undefined, true],
      [2, { c: 3 }, false],
    ]);
  });
});
