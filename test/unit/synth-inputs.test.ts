/**
 * What `kiln synth` refuses to read or delete: inputs that would exhaust its
 * memory (alias bombs, oversized files), values that YAML 1.1 readers read
 * otherwise, and `--clean` of a directory that holds what it must keep. A real
 * process each time, as a user (or a CI job fed by a tenant) runs it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-synth-inputs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function kiln(args: string[], o: { cwd?: string; heapMb?: number } = {}) {
  const started = performance.now();
  const r = spawnSync(process.execPath, [...(o.heapMb ? [`--max-old-space-size=${o.heapMb}`] : []), join(root, 'bin/kiln.js'), ...args], { cwd: o.cwd ?? tmp, encoding: 'utf8', timeout: 60_000 });
  return { ...r, seconds: (performance.now() - started) / 1000 };
}

const cache = (spec: string) => `apiVersion: kiln.dev/v1alpha1
kind: CacheCluster
metadata:
  name: c
  namespace: web
spec:
${spec}  catalogServers: 1
  capacity: 1Gi
  image: registry.example.com/cache/xsld:8.6.1
  entrypointConfigMap: e
  storage:
    size: 1Gi
`;

function dir(name: string, files: Record<string, string>): string {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
  return d;
}

describe('kiln synth: inputs that would exhaust it', () => {
  it('a YAML alias bomb is an error naming the file and document, within seconds and a small heap', () => {
    // Nine levels of nine aliases: 9^9 (387 million) strings if expanded.
    const levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i <= 9; i++)
      levels.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(',')}]`,
      );
    const d = dir('bomb', { 'ok.yaml': cache('  size: 3\n'), 'bomb.yaml': cache(`  size: 3\n  lol:\n    ${levels.join('\n    ')}\n`).replace('name: c', 'name: lol') });
    const r = kiln(['synth', d, '-o', join(tmp, 'bomb-out')], { heapMb: 256 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${join(d, 'bomb.yaml')} \\[document 0\\].*alias`, 'i'));
    expect(r.seconds).toBeLessThan(20);
  });

  it('a file over --max-file-size, or inputs over --max-input-size, is a usage error naming it; nothing is written', () => {
    const d = dir('big', { 'a.yaml': cache('  size: 3\n'), 'big.yaml': `# ${'x'.repeat(2048)}\n${cache('  size: 3\n').replace('name: c', 'name: big')}` });
    const out = join(tmp, 'big-out');
    const r = kiln(['synth', d, '-o', out, '--max-file-size', '1Ki']);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${join(d, 'big.yaml')}: `);
    expect(r.stderr).toContain('--max-file-size');
    expect(existsSync(out)).toBe(false);
    const total = kiln(['synth', d, '-o', out, '--max-input-size', '2Ki']);
    expect(total.status, total.stderr).toBe(2);
    expect(total.stderr).toContain('--max-input-size');
    expect(existsSync(out)).toBe(false);
    const bad = kiln(['synth', d, '-o', out, '--max-file-size', 'lots']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--max-file-size');
    expect(kiln(['synth', d, '-o', out]).status).toBe(0);
  });

  it('the default file limit stops a 17 MiB input before it is parsed', () => {
    const d = dir('huge', { 'huge.yaml': `# ${'x'.repeat(17 * 2 ** 20)}\n` });
    const r = kiln(['synth', d, '-o', join(tmp, 'huge-out')], { heapMb: 128 });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${join(d, 'huge.yaml')}: 17825795 bytes`);
  });
});

describe('kiln synth: YAML 1.1 ambiguity in inputs', () => {
  it('size: 010 (10 to kiln, 8 to kubectl) is refused, naming the file, document and spec.size', () => {
    const d = dir('octal', { 'c.yaml': `${cache('  size: 3\n').replace('name: c', 'name: fine')}---\n${cache('  size: 010\n')}` });
    const out = join(tmp, 'octal-out');
    const r = kiln(['synth', d, '-o', out]);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toContain(`${join(d, 'c.yaml')} [document 1] CacheCluster web/c: spec.size: YAML: 010 is 10 to kiln (YAML 1.2) but the octal 8`);
    expect(r.stderr).not.toContain('[document 0]');
    expect(existsSync(out)).toBe(false);
  });

  it('yes/no/on/off/y/n, base-60, 0o and underscores: each refused with its field path', () => {
    const doc = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: web
  labels:
    enabled: yes
data:
  on: "x"
  list: [a, "b", N]
  timeout: 1:20
  mode: 0o644
  big: 1_000
  quoted: "010"
  tagged: !!str 010
  fine: 8080
`;
    const d = dir('bools', { 'settings.yaml': doc });
    const r = kiln(['synth', d, '-o', join(tmp, 'bools-out')]);
    expect(r.status, r.stderr).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.includes('[document 0]'));
    const paths = lines.map((l) => /: ([^ :]+): YAML: /.exec(l)?.[1]);
    expect(paths).toEqual(['metadata.labels.enabled', 'data.on', 'data.list[2]', 'data.timeout', 'data.mode', 'data.big']);
  });

  it('every example reads the same in YAML 1.1 and 1.2 (none is refused)', () => {
    const r = kiln(['synth', join(root, 'examples'), '-o', join(tmp, 'examples-out')]);
    expect(r.status, r.stderr).toBe(0);
  });
});

describe('kiln synth --clean refuses what it must not delete', () => {
  const setup = (name: string) => {
    const work = dir(name, {});
    const inputs = dir(`${name}/work`, { 'c.yaml': cache('  size: 3\n') });
    return { work, inputs, input: join(inputs, 'c.yaml') };
  };

  it('-o work --clean with the inputs under work/: exit 2, the inputs are still there', () => {
    const { work, input } = setup('clean1');
    const r = kiln(['synth', 'work/c.yaml', '-o', 'work', '--clean'], { cwd: work });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain('holds the input work/c.yaml');
    expect(readFileSync(input, 'utf8')).toContain('kind: CacheCluster');
  });

  it('-o . --clean: exit 2, nothing deleted, no staging directory left', () => {
    const { work } = setup('clean2');
    const inputs = dir('clean2-inputs', { 'c.yaml': cache('  size: 3\n') });
    const before = readdirSync(work).sort();
    const r = kiln(['synth', inputs, '-o', '.', '--clean'], { cwd: work });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain('current directory');
    expect(readdirSync(work).sort()).toEqual(before);
    expect(readdirSync(join(work, '..')).filter((f) => f.includes('staging'))).toEqual([]);
  });

  it('-o .. (a parent of the current directory), and a Git repository root, are refused too', () => {
    const { work, inputs } = setup('clean3');
    const sub = dir('clean3/sub', {});
    expect(kiln(['synth', inputs, '-o', '..', '--clean'], { cwd: sub }).status).toBe(2);
    const repo = dir('clean3/repo', {});
    mkdirSync(join(repo, '.git'));
    const r = kiln(['synth', inputs, '-o', repo, '--clean'], { cwd: work });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain('Git repository');
    expect(existsSync(join(repo, '.git'))).toBe(true);
    expect(existsSync(join(inputs, 'c.yaml'))).toBe(true);
  });

  it('an output directory of its own is still emptied', () => {
    const { work, inputs } = setup('clean4');
    const out = dir('clean4/out', { 'stale.yaml': 'old' });
    const r = kiln(['synth', inputs, '-o', out, '--clean'], { cwd: work });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(out, 'stale.yaml'))).toBe(false);
    expect(existsSync(join(out, 'web/cachecluster/c.k8s.yaml'))).toBe(true);
  });
});
