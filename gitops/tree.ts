/**
 * Writes a tree of files into a directory, replacing everything under one
 * owned prefix and touching nothing outside it. Used by the repository writer
 * (gitops/repo.ts) and by `kiln synth --git` alike, so a preview is what a
 * commit would contain.
 */
import { closeSync, constants, lstatSync, openSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { normalizeBasePath } from './layout.js';

/**
 * Opening with O_NOFOLLOW: a link planted at the last segment (someone with
 * push access committing manifest.yaml -> /var/run/secrets/...) fails with
 * ELOOP instead of being read or written through. Segments above are checked
 * with lstat (refuseLinkedAncestors, and listTree never descends into a link).
 */
const READ_NOFOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW;
const WRITE_NOFOLLOW = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;

/** A path kiln will not go through: a symbolic link (or a file where a directory must be) on the way to kiln's files. */
export class LinkedPathError extends Error {
  constructor(
    readonly path: string,
    readonly kind: 'link' | 'not-a-directory',
  ) {
    const what = kind === 'link' ? 'it is a symbolic link' : 'it is not a directory';
    super(`refusing ${path}: ${what}; kiln never reads or writes through symbolic links, and writes only inside the work tree (replace it with a plain directory in the repository)`);
    this.name = 'LinkedPathError';
  }
}

/**
 * Throws when a directory above `rel` (not `rel` itself) is a symbolic link
 * or not a directory: writing there would land outside the work tree, or in
 * a place the repository's content chose.
 */
export function refuseLinkedAncestors(root: string, rel: string): void {
  const parts = rel.split('/');
  for (let i = 1; i < parts.length; i++) {
    const path = parts.slice(0, i).join('/');
    const st = lstatSync(join(root, path), { throwIfNoEntry: false });
    if (!st) return;
    if (st.isSymbolicLink()) throw new LinkedPathError(path, 'link');
    if (!st.isDirectory()) throw new LinkedPathError(path, 'not-a-directory');
  }
}

/** A regular file's content, never through a link (undefined when missing, a link, or anything but a regular file). */
export function readRegularFile(root: string, rel: string): string | undefined {
  try {
    refuseLinkedAncestors(root, rel);
    if (!lstatSync(join(root, rel)).isFile()) return undefined;
    return readFileSync(join(root, rel), { encoding: 'utf8', flag: READ_NOFOLLOW });
  } catch {
    return undefined;
  }
}

export interface TreeChange {
  /** Files created or whose content changed (repository-relative). */
  written: string[];
  /** Files removed (repository-relative). */
  deleted: string[];
}

/**
 * Repository-relative file paths under `prefix`, sorted (symbolic links count
 * as files and are never entered; `.git` is never entered). Throws
 * LinkedPathError when a directory above the prefix is a link.
 */
export function listTree(root: string, prefix: string): string[] {
  try {
    refuseLinkedAncestors(root, prefix);
  } catch (err) {
    // A plain file above the prefix (a link checked out with core.symlinks=false): nothing is under it.
    if (err instanceof LinkedPathError && err.kind === 'not-a-directory') return [];
    throw err;
  }
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
  // Above the prefix is not kiln's to replace: a link there is refused before anything is touched.
  refuseLinkedAncestors(root, prefix);
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
    if (st?.isFile() && st.size === Buffer.byteLength(content) && readFileSync(abs, { encoding: 'utf8', flag: READ_NOFOLLOW }) === content) continue;
    if (st?.isDirectory()) rmSync(abs, { recursive: true, force: true });
    else if (st && !st.isFile()) unlinkSync(abs);
    const dir = posix.dirname(path);
    if (!made.has(dir)) {
      mkdirSync(join(root, dir), { recursive: true });
      made.add(dir);
    }
    refuseLinkedAncestors(root, path);
    const fd = openSync(abs, WRITE_NOFOLLOW, 0o644);
    try {
      writeFileSync(fd, content);
    } finally {
      closeSync(fd);
    }
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
