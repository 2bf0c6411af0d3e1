/** The README's layout tree is the code's: every folder it names exists, and every source folder is named. */
import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');

it('the README layout tree matches the folders', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Layout'), readme.indexOf('## API reference'));
  const tree = /```\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const named = tree
    .split('\n')
    .map((l) => l.split(/\s+/)[0]!)
    .filter(Boolean)
    .map((p) => p.replace(/\/$/, ''));
  expect(named.length).toBeGreaterThan(15);
  const kinds = readdirSync(path.join(ROOT, 'kinds'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== 'shared')
    .map((d) => d.name);
  const missing = named.flatMap((p) => (p === 'kinds/<kind>' ? kinds.map((k) => `kinds/${k}`) : [p])).filter((p) => !existsSync(path.join(ROOT, p)) || !statSync(path.join(ROOT, p)).isDirectory());
  expect(missing, 'named in the README but not a folder').toEqual([]);
  // Every folder holding TypeScript sources, two levels deep, is named (kinds/<kind>/ covers each kind).
  const sourceDirs = ['kube', 'kinds', 'controller', 'agent', 'gitops', 'install', 'validate', 'lib', 'cli', 'crds', 'bench', 'scripts', 'test']
    .flatMap((top) => [
      top,
      ...readdirSync(path.join(ROOT, top), { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => `${top}/${d.name}`),
    ])
    .filter((d) => readdirSync(path.join(ROOT, d)).some((f) => f.endsWith('.ts')))
    .filter((d) => !d.startsWith('test/') || ['test/unit', 'test/integration', 'test/node', 'test/harness', 'test/soak'].includes(d));
  const covered = (d: string) =>
    named.includes(d) ||
    (d.startsWith('kinds/') && kinds.includes(d.slice(6))) ||
    d === 'crds/schema' ||
    named.some((n) => d.startsWith(`${n}/`) && n !== 'kinds' && n !== 'controller' && n !== 'test');
  expect(
    sourceDirs.filter((d) => !covered(d) && d !== 'test'),
    'source folders the README does not name',
  ).toEqual([]);
});
