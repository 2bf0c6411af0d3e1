import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../cli/program.js';

const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);
const kiln = async (...args: string[]) => (await run(process.execPath, [join(root, 'bin', 'kiln.js'), ...args], { cwd: root, encoding: 'utf8' })).stdout;

/** Option lines of commander's help, in every group ("Options:", "Deprecated options ...:"): the flags, then the description in a column (long descriptions wrap). */
function undescribed(help: string): string[] {
  const lines = help.split('\n');
  const out: string[] = [];
  let inOptions = false;
  for (const line of lines) {
    if (/^\S.*[oO]ptions\b.*:$/.test(line)) inOptions = true;
    else if (!line.startsWith('  ')) inOptions = false;
    if (!inOptions) continue;
    const m = line.match(/^ {2}(-\S.*?)(?: {2,}(\S.*))?$/);
    if (m && !m[2]) out.push(m[1]!);
  }
  return out;
}

/** The flags listed under a help group's heading (up to the next blank line). */
function group(help: string, heading: RegExp): string[] {
  const lines = help.split('\n');
  const start = lines.findIndex((l) => heading.test(l));
  if (start < 0) return [];
  const end = lines.findIndex((l, i) => i > start && l.trim() === '');
  return lines
    .slice(start + 1, end < 0 ? undefined : end)
    .map((l) => l.match(/^ {2}(--[\w-]+)/)?.[1])
    .filter((f): f is string => !!f);
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

  it("long-running commands take kubebuilder's flags, and list the previous names as deprecated", async () => {
    for (const c of ['controller', 'agent']) {
      const help = await kiln(c, '--help');
      const current = group(help, /^Options:$/);
      for (const flag of ['--log-level', '--leader-elect', '--leader-election-namespace', '--leader-election-id', '--metrics-bind-address', '--health-probe-bind-address', '--startup-timeout']) {
        expect(current, `${c} ${flag}`).toContain(flag);
      }
      expect(help).toMatch(/--leader-elect \[bool\] .*off unless given.*\(default: false\)/);
      expect(help).toMatch(/--metrics-bind-address <address> .*"0" \(off\).*\(default: ":8080"\)/);
      expect(help).toMatch(/--health-probe-bind-address <address> .*\(default: ":8081"\)/);
      expect(help).toMatch(/--startup-timeout <seconds> .*\(default: 60\)/);
      const deprecated = group(help, /^Deprecated options \(removed in the next release\):$/);
      expect(deprecated, c).toEqual(c === 'controller' ? ['--no-leader-elect', '--metrics-port', '--health-port', '--bind-address'] : ['--no-leader-elect', '--metrics-port', '--health-port']);
      for (const flag of deprecated) expect(current, `${c} ${flag}`).not.toContain(flag);
    }
  });
});

describe('README: Command-line flags', () => {
  it.each(['controller', 'agent', 'synth', 'diff', 'install', 'gitops bootstrap'])('the table of kiln %s lists exactly its current flags', (command) => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const heading = `#### kiln ${command}\n`;
    const at = readme.indexOf(heading);
    expect(at, heading).toBeGreaterThan(0);
    const table = readme
      .slice(at + heading.length)
      .split(/\n\n(?!\|)/)[0]!
      .split(/\n#/)[0]!;
    const rows = [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!.replace(/\\\|/g, '|'));
    let cmd = buildProgram();
    for (const name of command.split(' ')) cmd = cmd.commands.find((c) => c.name() === name)!;
    const current = cmd.options.filter((o) => !o.hidden && !o.helpGroupHeading?.startsWith('Deprecated')).map((o) => o.flags);
    expect(rows).toEqual(current);
  });
});
