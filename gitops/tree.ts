/**
 * Writes a tree of files into a directory, replacing everything under one
 * owned prefix and touching nothing outside it. Used by the repository writer
 * (gitops/repo.ts) and by `kiln synth --git` alike, so a preview is what a
 * commit would contain.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { normalizeBasePath } from './layout.js';

export interface TreeChange {
  /** Files created or whose content changed (repository-relative). */
  written: string[];
  /** Files removed (repository-relative). */
  deleted: string[];
}

/** Repository-relative file paths under `prefix`, sorted (symbolic links count as files; `.git` is never entered). */
export function listTree(root: string, prefix: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    let entries;
    try {
      entries = readdirSync(join(root, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name === '.git') continue;
      const child = posix.join(rel, e.name);
      if (e.isDirectory()) walk(child);
      else out.push(child);
    }
  };
  const st = lstatSync(join(root, prefix), { throwIfNoEntry: false });
  if (st?.isDirectory()) walk(prefix);
  else if (st) out.push(prefix);
  return out.sort();
}

function checkPath(path: string, prefix: string): void {
  const parts = path.split('/');
  if (!path.startsWith(`${prefix}/`) || parts.some((p) => p === '' || p === '.' || p === '..' || p === '.git')) {
    throw new Error(`refusing to write ${JSON.stringify(path)}: not a plain path under ${prefix}/`);
  }
}

/**
 * Makes `<root>/<prefix>` hold exactly `files` (repository-relative paths, all
 * under prefix): writes what differs, deletes what is not listed, removes
 * directories left empty. Files outside the prefix are never touched.
 */
export function writeOwnedTree(root: string, files: ReadonlyMap<string, string>, ownedPrefix: string): TreeChange {
  const prefix = normalizeBasePath(ownedPrefix);
  for (const path of files.keys()) checkPath(path, prefix);
  const written: string[] = [];
  const deleted: string[] = [];

  // Anything in the way of a listed file (a directory where a file goes, or a
  // file where a directory goes) is not listed itself, so it goes first.
  const existing = listTree(root, prefix);
  for (const path of existing) {
    if (!files.has(path)) {
      unlinkSync(join(root, path));
      deleted.push(path);
    }
  }
  if (lstatSync(join(root, prefix), { throwIfNoEntry: false })?.isFile()) unlinkSync(join(root, prefix));

  const made = new Set<string>();
  for (const [path, content] of files) {
    const abs = join(root, path);
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (st?.isFile() && st.size === Buffer.byteLength(content) && readFileSync(abs, 'utf8') === content) continue;
    if (st?.isDirectory()) rmSync(abs, { recursive: true, force: true });
    else if (st && !st.isFile()) unlinkSync(abs);
    const dir = posix.dirname(path);
    if (!made.has(dir)) {
      mkdirSync(join(root, dir), { recursive: true });
      made.add(dir);
    }
    writeFileSync(abs, content);
    written.push(path);
  }

  removeEmptyDirs(root, prefix);
  return { written, deleted };
}

/** Removes empty directories under (and including) prefix, deepest first. */
function removeEmptyDirs(root: string, rel: string): boolean {
  const abs = join(root, rel);
  let entries;
  try {
    entries = readdirSync(abs, { withFileTypes: true });
  } catch {
    return false;
  }
  let empty = true;
  for (const e of entries) {
    if (e.isDirectory() && e.name !== '.git' && removeEmptyDirs(root, posix.join(rel, e.name))) continue;
    empty = false;
  }
  if (empty) rmdirSync(abs);
  return empty;
}
