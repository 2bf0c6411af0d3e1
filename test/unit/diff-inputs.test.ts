/** `kiln diff <files>` reads its inputs as `kiln synth` does: the same limits and the same YAML 1.1 refusals. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { runDiff } from '../../cli/diff-command.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-diff-inputs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(inputs: string[], opts: { maxFileSize?: number } = {}) {
  const out = new PassThrough();
  const err = new PassThrough();
  let stderr = '';
  err.on('data', (c) => (stderr += c));
  const code = await runDiff(inputs, { fromCluster: false, namespace: [], concurrency: 4, kubeconfig: '/nonexistent/kubeconfig', ...opts }, out, err);
  return { code, stderr };
}

const cache = (size: string) =>
  `apiVersion: kiln.dev/v1alpha1\nkind: CacheCluster\nmetadata:\n  name: c\n  namespace: web\nspec:\n  size: ${size}\n  catalogServers: 1\n  capacity: 1Gi\n  image: registry.example.com/cache/xsld:8.6.1\n  entrypointConfigMap: e\n  storage:\n    size: 1Gi\n`;

describe('kiln diff inputs', () => {
  it('size: 010 is refused naming the file, document and spec.size', async () => {
    const file = join(dir, 'octal.yaml');
    writeFileSync(file, cache('010'));
    const r = await run([file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file} [document 0] CacheCluster web/c: spec.size: YAML: 010 is 10 to kiln (YAML 1.2) but the octal 8`);
  });

  it('a file over --max-file-size is refused before it is read', async () => {
    const file = join(dir, 'big.yaml');
    writeFileSync(file, `# ${'x'.repeat(4096)}\n${cache('3')}`);
    const r = await run([file], { maxFileSize: 1024 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`kiln diff: ${file}: `);
    expect(r.stderr).toContain('--max-file-size');
  });
});
