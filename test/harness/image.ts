/**
 * What `docker build` would put in the image, without a container engine: the
 * Dockerfile's build stage (tsc with tsconfig.build.json; it fails on a type
 * error, and so does this) and its runtime stage (COPY lines, `npm ci
 * --omit=dev`, ENV) carried out in a directory. The application directory is
 * left read-only, as the image's root filesystem is; `writable` stands in for
 * the image's /tmp (an emptyDir), the only writable place.
 */
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, globSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

export interface AssembledImage {
  /** The image's /app. */
  app: string;
  /** Stands in for /tmp. */
  writable: string;
  /** The environment the image's ENV lines give, with PATH, HOME and TMPDIR. */
  env: NodeJS.ProcessEnv;
}

/** The runtime stage: everything after the last FROM. */
export function runtimeStage(): string[] {
  const lines = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const from = lines.map((l, i) => (/^FROM /i.test(l) ? i : -1)).filter((i) => i >= 0);
  return lines.slice(from[from.length - 1]! + 1);
}

/** Builds the image's contents under `work` (build-stage/, app/, tmp/). */
export async function assembleImage(work: string): Promise<AssembledImage> {
  const buildDir = join(work, 'build-stage');
  const app = join(work, 'app');
  const writable = join(work, 'tmp');
  await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', buildDir], { cwd: ROOT, timeout: 600_000 }).catch(
    (err: Error & { stdout?: string }) => {
      throw new Error(`the build stage (tsc -p tsconfig.build.json) failed:\n${err.stdout ?? err.message}`);
    },
  );
  mkdirSync(app, { recursive: true });
  mkdirSync(writable, { recursive: true });
  const env: NodeJS.ProcessEnv = { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, HOME: writable, TMPDIR: writable };
  for (const line of runtimeStage()) {
    const [op, ...rest] = line.split(/\s+/);
    if (/^COPY$/i.test(op!)) {
      const fromBuild = rest[0] === '--from=build';
      const args = fromBuild ? rest.slice(1) : rest;
      const dest = args.pop()!;
      for (const src of args) {
        const sources = fromBuild ? [join(buildDir, src.replace(/^\/src\/build\/?/, ''))] : globSync(src, { cwd: ROOT }).map((s) => join(ROOT, s));
        if (!sources.length) throw new Error(`Dockerfile: COPY ${src} matches nothing`);
        for (const s of sources) {
          const target = dest.endsWith('/') ? join(app, dest, src.includes('*') || !fromBuild ? s.split('/').pop()! : '') : join(app, dest);
          mkdirSync(dirname(target), { recursive: true });
          cpSync(s, target, { recursive: true });
        }
      }
    } else if (/^ENV$/i.test(op!)) {
      for (const kv of rest) {
        const [k, v] = kv.split('=');
        env[k!] = v === '/tmp' ? writable : v;
      }
    } else if (/^RUN$/i.test(op!)) {
      const npmCi = line.match(/npm ci [^&]*/);
      if (npmCi) {
        const args = npmCi[0].trim().split(/\s+/).slice(1);
        // The registry is reached through this machine's npm configuration (proxy, cache).
        await run('npm', [...args, '--prefer-offline'], { cwd: app, env: { ...process.env, NODE_ENV: 'production' }, timeout: 600_000 });
      }
    }
  }
  chmodSync(app, 0o555);
  for (const d of ['bin', 'build', 'crds']) await run('chmod', ['-R', 'a-w', join(app, d)]);
  return { app, writable, env };
}
