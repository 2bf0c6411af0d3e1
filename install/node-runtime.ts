/**
 * How kiln's Deployments start node. bench/apply starts its controller the
 * same way, so the benchmark measures what ships.
 *
 * - `--max-semi-space-size=2 --optimize-for-size`: a small young generation
 *   and a heap kept compact, paid for in garbage collection (4.4 s of the
 *   controller's 19 s of CPU in a profile of a 1,000-resource converge).
 *   Measured on bench/apply, 1,000 DirectoryServices: peak RSS ~325 MiB
 *   without the flags, ~150 MiB with them. They are not allowed
 *   in NODE_OPTIONS, hence the container command.
 * - MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ (glibc, as in the node:24-slim
 *   image): the many short zlib and TLS buffers otherwise leave freed memory
 *   scattered over several arenas that are never given back. Measured on
 *   bench/apply, 3,000 DirectoryServices: peak RSS 164 -> 143 MiB converging,
 *   205 -> 183 MiB after a restart, with no change in time.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--optimize-for-size'];

export const NODE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '65536' };

/** The image's entrypoint script (Dockerfile). */
export const KILN_ENTRYPOINT = '/app/bin/kiln.js';
