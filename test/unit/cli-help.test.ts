import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);
const kiln = async (...args: string[]) => (await run(process.execPath, [join(root, 'bin', 'kiln.js'), ...args], { cwd: root, encoding: 'utf8' })).stdout;

/** Option lines of commander's help: the flags, then the description in a column (long descriptions wrap). */
function undescribed(help: string): string[] {
  const lines = help.split('\n');
  const start = lines.indexOf('Options:');
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith('  ')) break;
    const m = line.match(/^ {2}(-\S.*?)(?: {2,}(\S.*))?$/);
    if (m && !m[2]) out.push(m[1]!);
  }
  return out;
}

describe('kiln --help', () => {
  it('names every command; kiln version prints the package version', async () => {
    const help = await kiln('--help');
    for (const c of ['version', 'synth', 'diff', 'controller', 'agent', 'gitops', 'install']) expect(help).toMatch(new RegExp(`^  ${c}\\b.*\\S`, 'm'));
    expect((await kiln('version')).trim()).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
  });

  it.each(['synth', 'diff', 'controller', 'agent', 'install', 'gitops bootstrap'])('kiln %s --help describes every flag', async (command) => {
    const help = await kiln(...command.split(' '), '--help');
    expect(help).toContain('Options:');
    expect(undescribed(help)).toEqual([]);
  });

  it('long-running commands take --log-level, --metrics-port and --health-port', async () => {
    for (const c of ['controller', 'agent']) {
      const help = await kiln(c, '--help');
      for (const flag of ['--log-level', '--metrics-port', '--health-port']) expect(help, `${c} ${flag}`).toContain(flag);
    }
  });
});
