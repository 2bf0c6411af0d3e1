/**
 * Generic code asks kinds/registry.ts what a kind has and never names one: a
 * kind's name in an identifier, a string, a template or a regular expression
 * outside kinds/ (and the agent, whose work is per kind) means some kind's
 * rule sits where a newcomer would not look for it. Comments are not code and
 * are not read. Names are compared case-blind and without - and _, so
 * `configMapSync`, `CONFIGMAPSYNC` and `config-map-sync/` count too.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { KINDS } from '../../crds/schema/kinds.js';
import { KIND_NAMES } from '../../kinds/registry.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const GENERIC = ['kube', 'controller', 'gitops', 'lib', 'validate'];

/** Files that name kinds as data, not as rules, and why. */
const ALLOWED: Record<string, string> = {
  'controller/pack-dictionary.ts': 'a compression dictionary: sample resources of each kind, so cached resources deflate well',
};

const normal = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
const KIND_KEYS = KINDS.map((k) => ({ kind: k.kind, key: normal(k.kind) }));

const tsFiles = (dir: string): string[] =>
  readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts'))
    .map((d) => path.relative(ROOT, path.join(d.parentPath, d.name)).split(path.sep).join('/'));

/** `file:line: Kind in <text>` for every identifier or literal of `file` that names a kind. */
export function kindNamesIn(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isIdentifier(node) || ts.isPrivateIdentifier(node) || ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node) || ts.isRegularExpressionLiteral(node)) {
      const hit = KIND_KEYS.find((k) => normal(node.text).includes(k.key));
      if (hit) {
        const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
        found.push(`${file}:${line}: ${hit.kind} in ${JSON.stringify(node.text.slice(0, 80))}`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('generic code names no kind', () => {
  it('finds a kind however it is spelled, and not in comments', () => {
    const code = [
      '// a DirectoryService comment',
      '/** and PostgresInstance in JSDoc */',
      'const deps = { configMapSync: 1 };',
      "import { x } from '../kinds/directory-backup/chart.js';",
      'const re = /^(DataGrid)$/;',
      'const t = `${a}CacheCluster`;',
      'export const NOT_SUPPORTED_CONFIGMAPSYNC = 1;',
    ].join('\n');
    expect(kindNamesIn('x.ts', code).map((f) => f.replace(/ in .*/, ''))).toEqual([
      'x.ts:3: ConfigMapSync',
      'x.ts:4: DirectoryBackup',
      'x.ts:5: DataGrid',
      'x.ts:6: CacheCluster',
      'x.ts:7: ConfigMapSync',
    ]);
  });

  it(`in ${GENERIC.join('/, ')}/`, () => {
    const files = GENERIC.flatMap(tsFiles).filter((f) => !(f in ALLOWED));
    expect(files.length).toBeGreaterThan(40);
    const found = files.flatMap((f) => kindNamesIn(f, readFileSync(path.join(ROOT, f), 'utf8')));
    expect(found).toEqual([]);
  });

  it('the registry defines every kind of the API, and nothing else', () => {
    expect([...KIND_NAMES].sort()).toEqual(KINDS.map((k) => k.kind).sort());
  });
});
