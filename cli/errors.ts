/** Errors the command line reports in one line. */

const WHAT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a path component is not a directory',
  EISDIR: 'is a directory',
  EEXIST: 'already exists',
  ENOSPC: 'no space left on device',
  EROFS: 'read-only file system',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
};

/**
 * `<path>: <what> (<code>)` for an error of the file system (it has a code and
 * a path), e.g. `missing.yaml: no such file or directory (ENOENT)`; undefined
 * for any other error.
 */
export function fileSystemError(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException | undefined;
  if (!e || typeof e !== 'object' || typeof e.code !== 'string' || typeof e.path !== 'string') return undefined;
  const what = WHAT[e.code] ?? e.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
  const target = (e as { dest?: unknown }).dest;
  const dest = typeof target === 'string' ? ` -> ${target}` : '';
  return `${e.path}${dest}: ${what} (${e.code})`;
}
