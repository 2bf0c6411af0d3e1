/**
 * The container images the test node runs, built from Debian packages and
 * this repository by scripts/build-images.sh (cached: seconds when nothing
 * changed, minutes cold) and imported into the node's containerd.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, runBuildScript } from './run.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD_SCRIPT = path.join(REPO_ROOT, 'scripts', 'build-images.sh');
const KILN_VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Every image, by the name charts, install manifests and the kubelet ask for, and its archive. */
export const IMAGES = [
  { name: 'registry.k8s.io/pause:3.10', file: 'pause.oci.tar' },
  { name: 'docker.io/library/postgres:17', file: 'postgres-17.oci.tar' },
  { name: 'docker.io/library/node:24-slim', file: 'node-24-slim.oci.tar' },
  { name: `docker.io/library/kiln:${KILN_VERSION}`, file: 'kiln.oci.tar' },
  { name: 'localhost/kiln-test/directory:openldap', file: 'directory-openldap.oci.tar' },
] as const;

export const IMAGE_NAMES: readonly string[] = IMAGES.map((i) => i.name);

/** Runs scripts/build-images.sh (progress on our stderr) and returns the directory of the archives. */
export async function buildImages(): Promise<string> {
  return runBuildScript(BUILD_SCRIPT);
}

/** The manifest digest an OCI archive holds (its index.json's one entry). */
async function archiveDigest(archive: string): Promise<string | undefined> {
  const r = await run('tar', ['-xOf', archive, 'index.json']);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as { manifests?: { digest: string }[] }).manifests?.[0]?.digest;
}

/**
 * Imports every archive in `dir` into containerd's k8s.io namespace, where
 * the CRI plugin looks. An image already there with the archive's digest is
 * skipped (an import of 470 MB of archives takes most of a minute).
 */
export async function importImages(containerdAddress: string, dir?: string): Promise<void> {
  const from = dir ?? (await buildImages());
  const ctr = ['--address', containerdAddress, '-n', 'k8s.io'];
  const listed = await run('ctr', [...ctr, 'images', 'ls']);
  if (listed.code !== 0) throw new Error(`ctr images ls exited ${listed.code}: ${listed.stderr.trim()}`);
  const present = new Map(
    listed.stdout
      .split('\n')
      .map((line) => line.split(/\s+/))
      .map(([ref, , digest]) => [ref, digest]),
  );
  for (const { name, file } of IMAGES) {
    const archive = path.join(from, file);
    if (!existsSync(archive)) throw new Error(`${archive} missing (image ${name}): run scripts/build-images.sh`);
    const digest = await archiveDigest(archive);
    if (digest && present.get(name) === digest) continue;
    const r = await run('ctr', [...ctr, 'images', 'import', archive], { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`ctr images import ${archive} exited ${r.code}: ${r.stderr.trim()}`);
  }
}
