/**
 * The flags `kiln controller` and `kiln agent` share (cli/runtime-options.ts):
 * kubebuilder's names and forms, and the previous release's names as deprecated aliases.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { addRuntimeOptions, parseBindAddress, parseBool, runtimeSettings } from '../../cli/runtime-options.js';

/** Parses `args` as the controller's runtime flags would be (the agent has no --bind-address). */
function parse(args: string[], o: { bindAddressAlias?: boolean } = { bindAddressAlias: true }) {
  const cmd = new Command('controller').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  addRuntimeOptions(cmd, { leaseName: 'kiln-controller', ...o });
  cmd.action(() => {});
  cmd.parse(args, { from: 'user' });
  return runtimeSettings(cmd);
}

describe('bind addresses (kubebuilder forms)', () => {
  it.each([
    [':8080', { port: 8080 }],
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    ['0.0.0.0:9443', { host: '0.0.0.0', port: 9443 }],
    ['localhost:8081', { host: 'localhost', port: 8081 }],
    ['metrics.kiln-system.svc:8080', { host: 'metrics.kiln-system.svc', port: 8080 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['[::]:8081', { host: '::', port: 8081 }],
    [':0', { port: 0 }],
    ['127.0.0.1:65535', { host: '127.0.0.1', port: 65535 }],
  ])('%s', (text, want) => {
    expect(parseBindAddress(text)).toEqual(want);
  });

  it('"0" turns the server off', () => {
    expect(parseBindAddress('0')).toBeUndefined();
  });

  it.each(['8080', '', ':', ':65536', ':80a', '127.0.0.1', '::1:8080', '[::1]', '[127.0.0.1]:80', 'a b:80', '-x:80', ':-1', '00'])('refuses %j', (text) => {
    expect(() => parseBindAddress(text)).toThrow(/expected \[host\]:port/);
  });
});

describe('booleans as pflag takes them', () => {
  it.each([
    ['true', true],
    ['false', false],
    ['1', true],
    ['0', false],
    ['t', true],
    ['F', false],
    ['TRUE', true],
    ['False', false],
  ] as const)('%s', (text, want) => {
    expect(parseBool(text)).toBe(want);
  });
  it('refuses anything else', () => {
    expect(() => parseBool('yes')).toThrow(/true or false/);
  });
});

describe('runtime flags', () => {
  it('defaults: no leader election, metrics on :8080, probes on :8081, 60 s to reach the API server, no warning', () => {
    expect(parse([])).toEqual({ leaderElection: undefined, metrics: { port: 8080 }, health: { port: 8081 }, startupTimeoutSeconds: 60, warnings: [] });
  });

  it('--leader-elect turns it on, with the Lease and its timings', () => {
    expect(parse(['--leader-elect']).leaderElection).toEqual({
      namespace: process.env['POD_NAMESPACE'] ?? 'kiln-system',
      name: 'kiln-controller',
      leaseDurationSeconds: 15,
      renewDeadlineSeconds: 10,
      retryPeriodSeconds: 2,
    });
    expect(
      parse(['--leader-elect', '--leader-election-namespace', 'ops', '--leader-election-id', 'x', '--lease-duration', '8', '--renew-deadline', '6', '--retry-period', '1']).leaderElection,
    ).toEqual({ namespace: 'ops', name: 'x', leaseDurationSeconds: 8, renewDeadlineSeconds: 6, retryPeriodSeconds: 1 });
  });

  it('--leader-elect=true and --leader-elect=false, as kubebuilder (pflag) take them', () => {
    expect(parse(['--leader-elect=true']).leaderElection).toBeDefined();
    expect(parse(['--leader-elect=false']).leaderElection).toBeUndefined();
    // The last one given wins, as with pflag.
    expect(parse(['--leader-elect', '--leader-elect=false']).leaderElection).toBeUndefined();
    expect(parse(['--leader-elect=false', '--leader-elect']).leaderElection).toBeDefined();
    expect(() => parse(['--leader-elect=maybe'])).toThrow(/--leader-elect.*invalid/);
  });

  it('--metrics-bind-address and --health-probe-bind-address, "0" for off', () => {
    expect(parse(['--metrics-bind-address', '127.0.0.1:9090', '--health-probe-bind-address', ':9091'])).toMatchObject({
      metrics: { host: '127.0.0.1', port: 9090 },
      health: { port: 9091 },
      warnings: [],
    });
    expect(parse(['--metrics-bind-address=0', '--health-probe-bind-address=0'])).toMatchObject({ metrics: undefined, health: undefined });
    expect(() => parse(['--metrics-bind-address', '9090'])).toThrow(/--metrics-bind-address.*invalid.*no port/);
    expect(() => parse(['--health-probe-bind-address', '::1:8081'])).toThrow(/--health-probe-bind-address.*invalid.*brackets/);
  });

  it('--startup-timeout takes seconds greater than 0', () => {
    expect(parse(['--startup-timeout', '3']).startupTimeoutSeconds).toBe(3);
    expect(parse(['--startup-timeout=0.5']).startupTimeoutSeconds).toBe(0.5);
    for (const bad of ['0', '-1', 'x', '']) expect(() => parse(['--startup-timeout', bad]), bad).toThrow(/--startup-timeout.*invalid/);
  });
});

describe("the previous release's names still work, with one warning each", () => {
  it('--no-leader-elect: off (as is the default now)', () => {
    const s = parse(['--no-leader-elect']);
    expect(s.leaderElection).toBeUndefined();
    expect(s.warnings).toEqual([expect.stringMatching(/^--no-leader-elect is deprecated .*off unless --leader-elect/)]);
    expect(parse(['--leader-elect', '--no-leader-elect']).leaderElection).toBeUndefined();
  });

  it('--metrics-port and --health-port: a port on every interface, 0 for off', () => {
    const s = parse(['--metrics-port', '9090', '--health-port', '0']);
    expect(s).toMatchObject({ metrics: { port: 9090 }, health: undefined });
    expect(s.metrics).not.toHaveProperty('host');
    expect(s.warnings).toEqual([
      expect.stringMatching(/^--metrics-port is deprecated .*use --metrics-bind-address :9090$/),
      expect.stringMatching(/^--health-port is deprecated .*use --health-probe-bind-address 0$/),
    ]);
    // The same port for both: one address (one server serves all three paths).
    expect(parse(['--metrics-port', '9090', '--health-port', '9090'])).toMatchObject({ metrics: { port: 9090 }, health: { port: 9090 } });
    expect(() => parse(['--metrics-port', 'x'])).toThrow(/--metrics-port.*invalid/);
  });

  it('--bind-address sets the host of each address given without one', () => {
    const s = parse(['--bind-address', '127.0.0.1', '--metrics-port', '9090']);
    expect(s).toMatchObject({ metrics: { host: '127.0.0.1', port: 9090 }, health: { host: '127.0.0.1', port: 8081 } });
    expect(s.warnings).toEqual([expect.stringMatching(/--metrics-port is deprecated .*use --metrics-bind-address 127\.0\.0\.1:9090$/), expect.stringMatching(/^--bind-address is deprecated/)]);
    expect(parse(['--bind-address', '127.0.0.1', '--health-probe-bind-address', '10.0.0.1:8081']).health).toEqual({ host: '10.0.0.1', port: 8081 });
  });

  it('an alias and its new name together are refused', () => {
    expect(() => parse(['--metrics-port', '1', '--metrics-bind-address', ':2'])).toThrow(/--metrics-port.*cannot be used with.*--metrics-bind-address/);
    expect(() => parse(['--health-probe-bind-address', ':2', '--health-port', '1'])).toThrow(/cannot be used with/);
  });

  it('the agent never had --bind-address', () => {
    expect(() => parse(['--bind-address', '127.0.0.1'], {})).toThrow(/unknown option '--bind-address'/);
    expect(parse(['--metrics-port', '9090'], {}).metrics).toEqual({ port: 9090 });
  });
});
