import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project root: the nearest directory above this module holding crds/.
 * Works from the TypeScript sources and from compiled output alike.
 */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'crds')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the kiln project root (a directory holding crds/ and package.json)');
    dir = up;
  }
}

export const crdDirectory = (): string => join(projectRoot(), 'crds');
