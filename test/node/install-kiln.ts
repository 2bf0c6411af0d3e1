/** kiln installed by its own manifests on the node's cluster, from the image its Dockerfile builds; idempotent, so every file can ask. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ControlPlaneClient } from '../harness/connect.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
export const KILN_IMAGE = `kiln:${VERSION}`;

/** `kiln install --image kiln:<version> | kubectl apply --server-side -f -`, then rollout status of both Deployments. */
export async function installKiln(cp: ControlPlaneClient): Promise<void> {
  const { stdout: manifests } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'bin', 'kiln.js'), 'install', '--image', KILN_IMAGE], { cwd: ROOT, maxBuffer: 64 << 20 });
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: manifests, timeoutMs: 120_000 });
  for (const d of ['kiln-controller', 'kiln-agent']) {
    const r = await cp.kubectl(['rollout', 'status', '-n', 'kiln-system', `deployment/${d}`, '--timeout=240s'], { timeoutMs: 250_000 });
    if (r.code !== 0) {
      const pods = await cp.kubectl(['get', 'pods', '-n', 'kiln-system', '-o', 'wide']);
      const logs = await cp.kubectl(['logs', '-n', 'kiln-system', `deployment/${d}`, '--tail=30']);
      throw new Error(`deployment/${d} did not roll out: ${r.stderr}\n${pods.stdout}\n${logs.stdout}${logs.stderr}`);
    }
  }
}
