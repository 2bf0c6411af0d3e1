/**
 * Exec credential plugins as client-go runs them: config validation, the
 * plugin's environment and KUBERNETES_EXEC_INFO, caching until
 * expirationTimestamp, re-running after a 401, and errors that show the
 * plugin's stderr but never its token. The plugins are real scripts.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeExecCredential, ExecAuthenticator, execEnvironment, parseExecConfig, type ExecConfig } from '../../kube/exec-credential.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-exec-'));
const V1 = 'client.authentication.k8s.io/v1';

/** A plugin script: counts its runs in `<name>.runs`, saves its KUBERNETES_EXEC_INFO and FOO, prints `body` (a shell snippet). */
function plugin(name: string, body: string): string {
  const f = join(dir, name);
  writeFileSync(
    f,
    `#!/bin/sh
n=$(cat "${f}.runs" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${f}.runs"
printf '%s' "$KUBERNETES_EXEC_INFO" > "${f}.info"
printf '%s' "$FOO" > "${f}.foo"
${body}
`,
  );
  chmodSync(f, 0o755);
  return f;
}
const runsOf = (f: string) => Number(readFileSync(`${f}.runs`, 'utf8'));
const config = (command: string, extra: Partial<ExecConfig> = {}): ExecConfig => ({ apiVersion: V1, command, args: [], env: [], interactiveMode: 'Never', provideClusterInfo: false, ...extra });

describe('parseExecConfig', () => {
  it('accepts v1 and v1beta1 as clientcmd does; v1 needs interactiveMode, v1beta1 defaults to IfAvailable', () => {
    expect(parseExecConfig({ apiVersion: V1, command: 'aws', args: ['eks', 'get-token'], interactiveMode: 'Never', env: [{ name: 'AWS_PROFILE', value: 'p' }], provideClusterInfo: true })).toEqual({
      apiVersion: V1,
      command: 'aws',
      args: ['eks', 'get-token'],
      env: [{ name: 'AWS_PROFILE', value: 'p' }],
      interactiveMode: 'Never',
      provideClusterInfo: true,
    });
    expect(parseExecConfig({ apiVersion: 'client.authentication.k8s.io/v1beta1', command: 'x' }).interactiveMode).toBe('IfAvailable');
    expect(() => parseExecConfig({ apiVersion: V1, command: 'x' })).toThrow(/interactiveMode must be specified/);
    expect(() => parseExecConfig({ apiVersion: V1, command: 'x', interactiveMode: 'Sometimes' })).toThrow(/invalid interactiveMode "Sometimes"/);
    expect(() => parseExecConfig({ apiVersion: 'client.authentication.k8s.io/v1alpha1', command: 'x' })).toThrow(/v1alpha1 was removed in Kubernetes 1.24/);
    expect(() => parseExecConfig({ apiVersion: 'v1', command: 'x' })).toThrow(/invalid apiVersion "v1"/);
    expect(() => parseExecConfig({ apiVersion: V1, interactiveMode: 'Never' })).toThrow(/command must be specified/);
    expect(() => parseExecConfig({ apiVersion: V1, command: 'x', interactiveMode: 'Never', env: [{ name: 'SECRET', value: 3 }] })).toThrow(/env\[0\] \(SECRET\) needs a string value/);
  });
});

describe('execEnvironment', () => {
  const base = config('x', {
    env: [
      { name: 'FOO', value: 'from-kubeconfig' },
      { name: 'KUBERNETES_EXEC_INFO', value: 'overridden' },
    ],
    cluster: { server: 'https://h:6443', 'certificate-authority-data': 'Q0E=', config: { region: 'eu' } },
  });

  it('process environment, then the kubeconfig env, then KUBERNETES_EXEC_INFO; cluster only with provideClusterInfo', () => {
    const { env, interactive } = execEnvironment(base, { FOO: 'from-process', PATH: '/bin' }, true);
    expect(interactive).toBe(false);
    expect(env['PATH']).toBe('/bin');
    expect(env['FOO']).toBe('from-kubeconfig');
    expect(JSON.parse(env['KUBERNETES_EXEC_INFO']!)).toEqual({ kind: 'ExecCredential', apiVersion: V1, spec: { interactive: false } });
    const withCluster = execEnvironment({ ...base, provideClusterInfo: true }, {}, false);
    expect(JSON.parse(withCluster.env['KUBERNETES_EXEC_INFO']!).spec).toEqual({
      cluster: { server: 'https://h:6443', 'certificate-authority-data': 'Q0E=', config: { region: 'eu' } },
      interactive: false,
    });
  });

  it('interactiveMode: Never never, IfAvailable when stdin is a terminal, Always fails without one', () => {
    expect(execEnvironment({ ...base, interactiveMode: 'IfAvailable' }, {}, true).interactive).toBe(true);
    expect(execEnvironment({ ...base, interactiveMode: 'IfAvailable' }, {}, false).interactive).toBe(false);
    expect(execEnvironment({ ...base, interactiveMode: 'Always' }, {}, true).interactive).toBe(true);
    expect(() => execEnvironment({ ...base, interactiveMode: 'Always' }, {}, false)).toThrow('exec plugin cannot support interactive mode: standard input is not a terminal');
  });
});

describe('decodeExecCredential', () => {
  it('checks the answer as client-go does and never quotes stdout', () => {
    expect(decodeExecCredential(JSON.stringify({ apiVersion: V1, kind: 'ExecCredential', status: { token: 't', expirationTimestamp: '2030-01-01T00:00:00Z' } }), V1)).toEqual({
      token: 't',
      expiresAt: Date.parse('2030-01-01T00:00:00Z'),
    });
    expect(() => decodeExecCredential('sekrit-token-abc', V1)).toThrow(/not a JSON ExecCredential \(16 bytes\)/);
    try {
      decodeExecCredential('{"token": "sekrit-token-abc"', V1);
    } catch (err) {
      expect(String(err)).not.toContain('sekrit');
    }
    expect(() => decodeExecCredential(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status: { token: 't' } }), V1)).toThrow(
      'exec plugin is configured to use API version client.authentication.k8s.io/v1, plugin returned version client.authentication.k8s.io/v1beta1',
    );
    expect(() => decodeExecCredential(JSON.stringify({ apiVersion: V1, kind: 'ExecCredential' }), V1)).toThrow("exec plugin didn't return a status field");
    expect(() => decodeExecCredential(JSON.stringify({ apiVersion: V1, kind: 'ExecCredential', status: {} }), V1)).toThrow("exec plugin didn't return a token or cert/key pair");
    expect(() => decodeExecCredential(JSON.stringify({ apiVersion: V1, kind: 'ExecCredential', status: { clientCertificateData: 'x' } }), V1)).toThrow(
      'exec plugin returned only certificate or key, not both',
    );
    expect(() => decodeExecCredential(JSON.stringify({ apiVersion: V1, kind: 'ExecCredential', status: { clientCertificateData: 'x', clientKeyData: 'y' } }), V1)).toThrow(
      /failed parsing client key\/certificate/,
    );
    expect(() => decodeExecCredential(JSON.stringify({ apiVersion: V1, kind: 'ExecCredential', status: { token: 't', expirationTimestamp: 'tomorrow' } }), V1)).toThrow(/not an RFC 3339 time/);
  });

  it('a client certificate and key (PEM) from the plugin', () => {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=u', '-days', '1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')],
      { stdio: 'ignore' },
    );
    const cert = readFileSync(join(dir, 'c.pem'), 'utf8');
    const key = readFileSync(join(dir, 'k.pem'), 'utf8');
    expect(decodeExecCredential(JSON.stringify({ apiVersion: V1, kind: 'ExecCredential', status: { clientCertificateData: cert, clientKeyData: key } }), V1)).toEqual({ cert, key });
  });
});

describe('ExecAuthenticator', () => {
  it('keeps the credential until expirationTimestamp, then runs the plugin before the next request', async () => {
    const f = plugin('expiring', `printf '{"apiVersion":"${V1}","kind":"ExecCredential","status":{"token":"tok-%s","expirationTimestamp":"2030-01-01T00:00:10Z"}}' $n`);
    let now = Date.parse('2030-01-01T00:00:00Z');
    const a = new ExecAuthenticator(config(f, { env: [{ name: 'FOO', value: 'bar' }] }), { now: () => now, environ: () => ({ PATH: process.env['PATH'] }) });
    expect((await a.get()).token).toBe('tok-1');
    expect(readFileSync(`${f}.foo`, 'utf8')).toBe('bar');
    expect(JSON.parse(readFileSync(`${f}.info`, 'utf8'))).toEqual({ kind: 'ExecCredential', apiVersion: V1, spec: { interactive: false } });
    now += 9_000;
    expect((await a.get()).token).toBe('tok-1');
    now += 1_000; // exactly at expiry: still valid (client-go: now.After(exp))
    expect((await a.get()).token).toBe('tok-1');
    now += 1;
    expect((await a.get()).token).toBe('tok-2');
    expect(runsOf(f)).toBe(2);
  });

  it('concurrent requests share one plugin run; a 401 runs it again only if the refused credential is still current', async () => {
    const f = plugin('shared', `sleep 0.2; printf '{"apiVersion":"${V1}","kind":"ExecCredential","status":{"token":"t%s"}}' $n`);
    const a = new ExecAuthenticator(config(f));
    const all = await Promise.all([a.get(), a.get(), a.get()]);
    expect(all.map((c) => c.token)).toEqual(['t1', 't1', 't1']);
    expect(runsOf(f)).toBe(1);
    const used = all[0];
    await Promise.all([a.unauthorized(used), a.unauthorized(used)]);
    expect(runsOf(f)).toBe(2);
    expect((await a.get()).token).toBe('t2');
    await a.unauthorized(used); // a stale credential: already replaced
    expect(runsOf(f)).toBe(2);
    // No expirationTimestamp: kept until a 401.
    expect((await a.get()).token).toBe('t2');
    expect(runsOf(f)).toBe(2);
  });

  it('a failing plugin: exit code and its stderr, never its token; a missing one: the install hint', async () => {
    const f = plugin('failing', `echo "token expired for profile prod: run aws sso login" >&2; echo '{"status":{"token":"leaked-token-xyz"}}'; exit 3`);
    const a = new ExecAuthenticator(config(f));
    const err = await a.get().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toBe(`exec: executable ${f} failed with exit code 3; its stderr: token expired for profile prod: run aws sso login`);
    expect(err?.message).not.toContain('leaked-token-xyz');
    await expect(a.get()).rejects.toThrow(/exit code 3/); // a failure is not cached: it runs again
    expect(runsOf(f)).toBe(2);
    const missing = new ExecAuthenticator(config('kiln-no-such-plugin', { installHint: 'Install it with: brew install no-such-plugin' }));
    await expect(missing.get()).rejects.toThrow(
      /exec: executable kiln-no-such-plugin not found\n\nIt looks like you are trying to use a client-go credential plugin that is not installed[\s\S]*brew install no-such-plugin/,
    );
    const garbage = new ExecAuthenticator(config(plugin('garbage', `echo 'Bearer sekrit-abc'`)));
    const g = await garbage.get().then(
      () => undefined,
      (e: unknown) => String(e),
    );
    expect(g).toMatch(/decoding stdout of .*garbage: not a JSON ExecCredential/);
    expect(g).not.toContain('sekrit');
  });

  it('a plugin that hangs is killed after the timeout and fails naming it; the next request runs it again', async () => {
    // `sleep` is the shell's child: it keeps the plugin's stdout open after the shell is killed.
    const f = plugin('hanging', `echo "calling sts.amazonaws.com" >&2; sleep 30`);
    const a = new ExecAuthenticator(config(f), { timeoutMs: 500 });
    const started = Date.now();
    await expect(a.get()).rejects.toThrow(`exec: executable ${f} did not finish within 0.5 s and was killed; its stderr: calling sts.amazonaws.com`);
    expect(Date.now() - started).toBeLessThan(3000);
    await expect(a.get()).rejects.toThrow(/did not finish within 0\.5 s/);
    expect(runsOf(f)).toBe(2);
  });
});
