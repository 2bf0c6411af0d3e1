// Runs vitest for every project and closes with one plain summary line
// ("N passed, N failed"), which CI reads.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'kiln-vitest-'));
const out = join(dir, 'results.json');
const r = spawnSync('vitest', ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...process.argv.slice(2)], { stdio: 'inherit' });
let passed = 0;
let failed = 0;
try {
  // eslint-disable-next-line @typescript-eslint/no-unsafe-assignment -- the JSDoc cast types it; ESLint's AST has no node for a JSDoc cast.
  const results = /** @type {{ numPassedTests: number; numFailedTests: number; numTotalTests: number }} */ (JSON.parse(readFileSync(out, 'utf8')));
  passed = results.numPassedTests;
  failed = results.numFailedTests + (results.numTotalTests === 0 ? 1 : 0);
} catch (err) {
  console.error(`no test results: ${err.message}`);
  failed = Math.max(failed, 1);
}
rmSync(dir, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(r.status === 0 && failed === 0 ? 0 : 1);
