import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listTree, readRegularFile, writeOwnedTree } from '../../gitops/tree.js';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-tree-safety-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const dir = (what: string): string => {
  const d = join(tmp, `${what}-${++n}`);
  mkdirSync(d, { recursive: true });
  return d;
};

describe('the owned tree never goes through a symbolic link', () => {
  it('a linked parent of the base path: refused before anything is written or deleted', () => {
    const root = dir('root');
    const outside = dir('outside');
    mkdirSync(join(outside, 'kiln/old'), { recursive: true });
    writeFileSync(join(outside, 'kiln/old/manifest.yaml'), 'keep\n');
    symlinkSync(outside, join(root, 'deploy'));
    expect(() => writeOwnedTree(root, new Map([['deploy/kiln/new/manifest.yaml', 'x\n']]), 'deploy/kiln')).toThrow(/refusing deploy: it is a symbolic link/);
    expect(() => listTree(root, 'deploy/kiln')).toThrow(/refusing deploy/);
    expect(readFileSync(join(outside, 'kiln/old/manifest.yaml'), 'utf8')).toBe('keep\n');
    expect(readdirSync(join(outside, 'kiln'))).toEqual(['old']);
  });

  it('a link at a file kiln writes is replaced, and its target is neither read nor written', () => {
    const root = dir('root');
    const target = join(dir('secret'), 'token');
    writeFileSync(target, 'secret\n');
    mkdirSync(join(root, 'clusters/a'), { recursive: true });
    symlinkSync(target, join(root, 'clusters/a/manifest.yaml'));
    symlinkSync(target, join(root, 'clusters/stray.yaml'));
    expect(readRegularFile(root, 'clusters/a/manifest.yaml')).toBeUndefined();
    const change = writeOwnedTree(root, new Map([['clusters/a/manifest.yaml', 'mine\n']]), 'clusters');
    expect(change.deleted).toEqual(['clusters/stray.yaml']);
    expect(readFileSync(target, 'utf8')).toBe('secret\n');
    expect(readRegularFile(root, 'clusters/a/manifest.yaml')).toBe('mine\n');
    expect(existsSync(join(root, 'clusters/stray.yaml'))).toBe(false);
  });

  it('a linked directory under the base path is removed, not entered', () => {
    const root = dir('root');
    const outside = dir('outside');
    writeFileSync(join(outside, 'manifest.yaml'), 'outside\n');
    mkdirSync(join(root, 'clusters'));
    symlinkSync(outside, join(root, 'clusters/a'));
    expect(listTree(root, 'clusters')).toEqual(['clusters/a']);
    writeOwnedTree(root, new Map([['clusters/a/manifest.yaml', 'mine\n']]), 'clusters');
    expect(readFileSync(join(outside, 'manifest.yaml'), 'utf8')).toBe('outside\n');
    expect(readRegularFile(root, 'clusters/a/manifest.yaml')).toBe('mine\n');
  });
});
