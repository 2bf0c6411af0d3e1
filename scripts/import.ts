/**
 * Regenerates imports/ from crds/ (npm run import). `cdk8s import` takes one
 * spec per group, so the CRDs are handed over as one multi-document stream.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const crdDir = join(root, 'crds');
const files = readdirSync(crdDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const tmp = mkdtempSync(join(tmpdir(), 'kiln-import-'));
// `cdk8s import` records what it imported in cdk8s.yaml; kiln's list is the crds/ files, kept as is.
const config = join(root, 'cdk8s.yaml');
const savedConfig = readFileSync(config, 'utf8');
const bundle = join(tmp, 'kiln.dev.yaml');
writeFileSync(bundle, files.map((f) => readFileSync(join(crdDir, f), 'utf8')).join('\n---\n'));
try {
  execFileSync(join(root, 'node_modules/.bin/cdk8s'), ['import', '--no-check-upgrade', '--language', 'typescript', '--output', join(root, 'imports'), bundle], { stdio: 'inherit', cwd: root });
} finally {
  writeFileSync(config, savedConfig);
  rmSync(tmp, { recursive: true, force: true });
}
