/**
 * Exit statuses of the command line, as a user meets them: a real `node bin/kiln.js`.
 * 0 for --help and --version; 2 for every usage error (unknown flag, a numeric flag
 * that is not the number it asks for, a missing input path), with one line saying why.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../cli/program.js';

const root = join(import.meta.dirname, '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'kiln-cli-exit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs kiln with no cluster configuration reachable (so that a flag check that were missing would fail fast, not hang). */
export function kiln(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'bin', 'kiln.js'), ...args], {
      cwd: tmp,
      env: { ...process.env, KUBECONFIG: join(tmp, 'no-kubeconfig'), HOME: tmp, KUBERNETES_SERVICE_HOST: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

describe('usage errors exit 2; --help and --version exit 0', () => {
  it('a real process: --help and --version exit 0', async () => {
    for (const args of [['--version'], ['synth', '--help']]) {
      const r = await kiln(args);
      expect(r.status, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).not.toBe('');
    }
  });

  it('a real process: an unknown flag exits 2 (commander alone exits 1), nothing on stdout', async () => {
    const r = await kiln(['synth', '--no-such-flag']);
    expect(r.stderr).toMatch(/^error: unknown option '--no-such-flag'\n/);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
  });

  it.each([['--help'], ['-v'], ['controller', '--help'], ['gitops', 'bootstrap', '--help'], ['help', 'synth']])('kiln %s exits 0', (...args) => {
    expect(parseInProcess(args).status).toBe(0);
  });

  it.each([
    [['controller', '--no-such-flag'], /unknown option '--no-such-flag'/],
    [['no-such-command'], /unknown command 'no-such-command'/],
    [['synth', '--output'], /argument missing/],
    [['install', '--mode', 'sideways'], /argument 'sideways' is invalid/],
    [['controller', '--log-level', 'loud'], /argument 'loud' is invalid/],
    [['gitops', 'bootstrap'], /required option '--repo <url>'/],
    [['version', 'extra'], /too many arguments/],
  ])('kiln %j exits 2', (args, message) => {
    const r = parseInProcess(args);
    expect(r.stderr).toMatch(message);
    expect(r.status, r.stderr).toBe(2);
  });
});

describe('git mode names its cluster and its transport (issue #19 item 6 and 8)', () => {
  it('kiln install --mode git without --cluster exits 2 (a shared default name let two clusters prune each other)', async () => {
    const r = await kiln(['install', '--mode', 'git', '--repo', 'https://git.example.com/deploy.git', '--branch', 'main']);
    expect(r.stderr).toMatch(/--cluster <name>/);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
  });

  it('kiln install --mode git with an http:// repository exits 2 unless --allow-insecure-http, which it passes on', async () => {
    const base = ['install', '--mode', 'git', '--repo', 'http://git.example.com/deploy.git', '--branch', 'main', '--cluster', 'prod'];
    const refused = await kiln(base);
    expect(refused.stderr).toMatch(/--repo http:\/\/git\.example\.com\/deploy\.git: plain http:\/\/ .*--allow-insecure-http/);
    expect(refused.status).toBe(2);
    const allowed = await kiln([...base, '--allow-insecure-http', '--crds', 'skip']);
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(allowed.stdout).toMatch(/- "?--allow-insecure-http"?\n/);
    expect(allowed.stdout).toMatch(/- "?--cluster"?\n\s+- prod\n/);
  });

  it('kiln gitops bootstrap needs --cluster, as the controller does', () => {
    const r = parseInProcess(['gitops', 'bootstrap', '--flux', '--repo', 'https://git.example.com/deploy.git']);
    expect(r.stderr).toMatch(/required option '--cluster <name>'/);
    expect(r.status).toBe(2);
  });
});

describe('every numeric flag is checked: a clear message naming it, exit 2', () => {
  it('a real process: kiln controller --concurrency abc (it used to be NaN, and the queue then never ran)', async () => {
    const r = await kiln(['controller', '--concurrency', 'abc']);
    expect(r.stderr).toMatch(/^error: option '--concurrency <n>' argument 'abc' is invalid\. expected a whole number of at least 1\n/);
    expect(r.status).toBe(2);
  });

  // [command, flag, a value it refuses]: each flag once with text, and the edge each one has.
  const cases: [string, string, string][] = [
    ['controller', '--concurrency', 'abc'],
    ['controller', '--concurrency', '0'],
    ['controller', '--qps', 'fast'],
    ['controller', '--qps', '-1'],
    ['controller', '--burst', '0'],
    ['controller', '--resync', '1.5'],
    ['controller', '--debounce', '-5'],
    ['controller', '--max-wait', '10s'],
    ['controller', '--lease-duration', 'x'],
    ['controller', '--renew-deadline', '0'],
    ['controller', '--retry-period', ''],
    ['controller', '--startup-timeout', 'soon'],
    ['controller', '--metrics-port', '70000'],
    ['controller', '--health-port', '1.0'],
    ['agent', '--concurrency', 'NaN'],
    ['agent', '--qps', 'x'],
    ['agent', '--burst', '1e3'],
    ['agent', '--password-interval', '0'],
    ['agent', '--database-check-interval', 'often'],
    ['agent', '--lease-duration', '-15'],
    ['agent', '--renew-deadline', 'ten'],
    ['agent', '--retry-period', '0'],
    ['agent', '--startup-timeout', '-1'],
    ['agent', '--metrics-port', '-1'],
    ['agent', '--health-port', 'x'],
    ['agent', '--postgres-timeout', 'never'],
    ['agent', '--etcd-replace-after', '5'],
    ['synth', '--jobs', 'many'],
    ['synth', '-j', '0'],
    ['diff', '--concurrency', 'abc'],
    ['install', '--replicas', 'two'],
    ['install', '--agent-replicas', '-1'],
  ];
  it.each(cases)('kiln %s %s %j', (command, flag, value) => {
    const r = parseInProcess([command, flag, value]);
    expect(r.stderr).toMatch(new RegExp(`^error: option '[^']*${flag}[^']*' argument '${value.replace(/[.+]/g, '\\$&')}' is invalid\\. expected `));
    expect(r.status, r.stderr).toBe(2);
  });

  it('every numeric flag of every command is in the list above', () => {
    const numeric = /<(n|seconds|ms|port)>/;
    const found: string[] = [];
    const walk = (cmd: Command, path: string) => {
      for (const o of cmd.options) if (numeric.test(o.flags)) found.push(`${path} ${o.long}`);
      for (const c of cmd.commands) walk(c, path ? `${path} ${c.name()}` : c.name());
    };
    walk(buildProgram(), '');
    const listed = new Set(cases.map(([c, f]) => `${c} ${f === '-j' ? '--jobs' : f}`));
    expect(found.filter((f) => !listed.has(f))).toEqual([]);
  });

  it('the values they take', () => {
    for (const args of [
      ['controller', '--concurrency', '8', '--qps', '0.5', '--burst', '1', '--resync', '0', '--debounce', '0'],
      ['agent', '--qps', '0', '--password-interval', '+60'],
      ['synth', '-j', '2'],
      ['install', '--replicas', '0'],
    ]) {
      expect(parseInProcess(args), args.join(' ')).toEqual({ status: 'parsed', stderr: '' });
    }
  });

  it('--sharding: dynamic only, in apply mode, without --leader-elect, with a ring name that makes Lease names', async () => {
    for (const [args, message] of [
      [['--sharding', 'static'], /--sharding must be none or dynamic \(got "static"\)/],
      [['--sharding', 'dynamic', '--mode', 'git'], /--sharding dynamic is for apply mode/],
      [['--sharding', 'dynamic', '--leader-elect'], /--sharding dynamic replaces --leader-elect/],
      [['--sharding', 'dynamic', '--sharding-ring', 'Not_A_Label'], /--sharding-ring must be a DNS label/],
      [['--sharding', 'dynamic', '--lease-duration', '5', '--renew-deadline', '5'], /--lease-duration \(5\) must be greater than --renew-deadline \(5\)/],
    ] as const) {
      const r = await kiln(['controller', ...args]);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.status, args.join(' ')).toBe(2);
    }
  });

  it('leader-election timings that cannot work together, as client-go refuses them', async () => {
    const r = await kiln(['controller', '--leader-elect', '--lease-duration', '10', '--renew-deadline', '10']);
    expect(r.stderr).toMatch(/^error: --lease-duration \(10\) must be greater than --renew-deadline \(10\)/);
    expect(r.status).toBe(2);
  });
});

/** Parses as kiln would, in this process, with every command's action replaced by nothing. */
function parseInProcess(args: string[]): { status: number | 'parsed'; stderr: string } {
  let stderr = '';
  const program = buildProgram({
    exit: (code) => {
      throw Object.assign(new Error('exit'), { exitStatus: code });
    },
    output: { writeErr: (s) => (stderr += s), writeOut: () => {} },
  });
  const quiet = (cmd: Command) => {
    if (cmd.commands.length === 0) cmd.action(() => {});
    cmd.commands.forEach(quiet);
  };
  quiet(program);
  try {
    program.parse(args, { from: 'user' });
    return { status: 'parsed', stderr };
  } catch (err) {
    const status = (err as { exitStatus?: number }).exitStatus;
    if (status === undefined) throw err;
    return { status, stderr };
  }
}

describe('file-system errors: one line naming the path', () => {
  it('a missing input path', async () => {
    const missing = join(tmp, 'missing', 'resources.yaml');
    const r = await kiln(['synth', missing, '-o', join(tmp, 'out')]);
    expect(r.stderr).toBe(`kiln synth: ${missing}: no such file or directory (ENOENT)\n`);
    expect(r.status).toBe(2);
  });

  it('kiln diff with a missing input path', async () => {
    const missing = join(tmp, 'nope.yaml');
    const r = await kiln(['diff', missing]);
    expect(r.stderr).toBe(`kiln diff: ${missing}: no such file or directory (ENOENT)\n`);
    expect(r.status).toBe(2);
  });
});
