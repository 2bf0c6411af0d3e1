import fc from 'fast-check';
import { load } from 'js-yaml';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseYamlStream, toYaml, toYamlStream } from '../../lib/yaml.js';

// JSON values as rendered objects hold them (no -0, no non-finite numbers).
const json = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown);
const tricky = fc.constantFrom('yes', 'No', 'on', 'null', '~', '1e3', '0x1F', '010', '1.0', '-', ': x', 'a: b', '#c', 'a #b', ' lead', 'trail ', 'line\nline\n', 'a\n\nb', '\ttab', 'x:', '- item', '[a]', '{a}', '*ref', '&anchor', '!tag', '%dir', '@at', '`tick', '"q"', "'q'", '2024-01-01', 'true', '', 'é ü', 'end\n\n');

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
    expect(docs.map((d) => [d.index, d.value, Boolean(d.error)])).toEqual([[0, { a: 1 }, false], [1, undefined, true], [2, { c: 3 }, false]]);
  });
});
