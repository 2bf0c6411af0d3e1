/**
 * Start-up of `kiln controller` and `kiln agent` as a user meets it, each run
 * as a child process (node bin/kiln.js) against the real control plane:
 *
 * - leader election is off unless --leader-elect is given: the command works
 *   where no Lease namespace exists and creates no Lease;
 * - with --leader-elect and a Lease namespace that does not exist, it exits 2
 *   within seconds with one message naming the namespace, the Lease and the fix
 *   (it used to log "acquire failed" every 2 s forever);
 * - with a cluster address where nothing listens, it exits 2 once
 *   --startup-timeout has passed, with one message and no warning per informer
 *   per backoff round.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor } from '../harness/wait.js';
import { freePort, startKiln, suffix, type KilnProcess } from './install-support.js';

let cp: ControlPlaneClient;
const id = suffix();
const ns = `kiln-startup-${id}`;
const missing = `kiln-startup-missing-${id}`;
const scratch = mkdtempSync(join(tmpdir(), 'kiln-startup-'));
const running: KilnProcess[] = [];

type Command = 'controller' | 'agent';

/** Runs `kiln <command>` with the control plane's admin kubeconfig (unless args give another), no HTTP servers. */
function kiln(command: Command, args: string[], env: NodeJS.ProcessEnv = {}): KilnProcess & { startedAt: number } {
  const startedAt = performance.now();
  const p = startKiln([command, '--kubeconfig', cp.kubeconfig, '-n', ns, '--metrics-bind-address', '0', '--health-probe-bind-address', '0', ...args], {
    env: { ...process.env, KUBECONFIG: '', POD_NAMESPACE: undefined, ...env },
  });
  running.push(p);
  return Object.assign(p, { startedAt });
}

/** JSON log lines at warn or above (lib/log.ts names the level). */
const warnings = (lines: string[]) =>
  lines.filter((l) => {
    try {
      return ['warn', 'error', 'fatal'].includes((JSON.parse(l) as { level: string }).level);
    } catch {
      return false;
    }
  });

const leases = async (namespace: string) => JSON.parse(await cp.kubectlOk(['get', 'leases', '-n', namespace, '-o', 'json'])).items as { metadata: { name: string } }[];

/** Something the command does only when it works: the controller renders a DataGrid's ConfigMap; the agent generates an instance's superuser Secret. */
const WORK: Record<Command, { resource: object; wait: () => Promise<boolean> }> = {
  controller: {
    resource: { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g1', namespace: ns }, spec: { cache: 'c' } },
    wait: async () => (await cp.kubectl(['get', '-n', ns, 'configmap', 'c-grid-g1'])).code === 0,
  },
  agent: {
    resource: { apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'pg', namespace: ns }, spec: {} },
    wait: async () => (await cp.kubectl(['get', '-n', ns, 'secret', 'pg-superuser'])).code === 0,
  },
};

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  for (const w of Object.values(WORK)) await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(w.resource) });
});

afterAll(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()));
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  rmSync(scratch, { recursive: true, force: true });
});

describe.each(['controller', 'agent'] as const)('kiln %s start-up', (command) => {
  it('without --leader-elect: works with no Lease namespace and creates no Lease', async () => {
    // Where the Lease would go by default (POD_NAMESPACE, as in a pod): it must stay empty.
    expect((await cp.kubectl(['get', 'namespace', missing])).code).not.toBe(0);
    const p = kiln(command, [], { POD_NAMESPACE: ns });
    await waitFor(`${command} to do its work`, WORK[command].wait, 60_000, () => p.lines.slice(-10).join('\n'));
    await p.waitForLine(/"msg":"leading; starting workers"/, 10_000);
    expect(p.child.exitCode).toBeNull();
    expect(await leases(ns)).toEqual([]);
    expect(p.lines.filter((l) => /leader election|waiting for leadership/.test(l))).toEqual([]);
    expect(p.lines.filter((l) => /deprecated/.test(l))).toEqual([]);
    expect(await p.stop()).toBe(0);
    // --leader-elect=false is the same (kubebuilder's form) and still creates no Lease.
    const q = kiln(command, ['--leader-elect=false', '--leader-election-namespace', ns]);
    await q.waitForLine(/"msg":"leading; starting workers"/, 60_000);
    expect(await leases(ns)).toEqual([]);
    expect(await q.stop()).toBe(0);
  }, 150_000);

  it('--leader-elect with a Lease namespace that does not exist: exit 2 within seconds, one message naming it and the fix', async () => {
    const p = kiln(command, ['--leader-elect', '--leader-election-namespace', missing, '--leader-election-id', `kiln-${command}-${id}`]);
    const synced = p.waitForLine(/"msg":"caches synced"/, 30_000).then(() => performance.now());
    const code = await p.exited;
    const exitedAt = performance.now();
    const seconds = (exitedAt - p.startedAt) / 1000;
    const message = p.lines.filter((l) => l.startsWith(`kiln ${command}: `));
    expect(code, p.lines.join('\n')).toBe(2);
    expect(message).toHaveLength(1);
    expect(message[0]).toContain(`leader election: the namespace "${missing}" of the Lease ${missing}/kiln-${command}-${id} does not exist (namespaces "${missing}" not found)`);
    expect(message[0]).toContain(`To fix: create the namespace (kubectl create namespace ${missing}), pass --leader-election-namespace <an existing namespace>, or run without --leader-elect`);
    // One attempt, not a retry every retry period.
    expect(p.lines.filter((l) => /acquire failed|not found/.test(l))).toEqual(message);
    expect(warnings(p.lines)).toEqual([]);
    expect(p.lines.some((l) => l.includes('leading; starting workers'))).toBe(false);
    // Process start (loading the code) and filling the caches, then one campaign attempt: at once.
    expect(seconds).toBeLessThan(30);
    expect((exitedAt - (await synced)) / 1000).toBeLessThan(3);
    expect((await cp.kubectl(['get', 'namespace', missing])).code).not.toBe(0);
  }, 60_000);

  it('an API server that cannot be reached: exit 2 after --startup-timeout 3, one message, no warning per informer', async () => {
    const port = await freePort(); // closed again: nothing listens there
    const kubeconfig = join(scratch, `closed-${command}.yaml`);
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'closed',
        clusters: [{ name: 'closed', cluster: { server: `https://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'u', user: { token: 'not-a-real-token' } }],
        contexts: [{ name: 'closed', context: { cluster: 'closed', user: 'u' } }],
      }),
    );
    const p = kiln(command, ['--kubeconfig', kubeconfig, '--startup-timeout', '3', '--leader-elect']);
    const starting = await p.waitForLine(/"msg":"starting"/, 30_000);
    const startingAt = performance.now();
    const code = await p.exited;
    const afterStarting = (performance.now() - startingAt) / 1000;
    expect(JSON.parse(starting).server).toBe(`https://127.0.0.1:${port}`);
    expect(code, p.lines.join('\n')).toBe(2);
    const message = p.lines.filter((l) => l.startsWith(`kiln ${command}: `));
    expect(message).toEqual([
      `kiln ${command}: cannot reach the API server at https://127.0.0.1:${port} within 3 s: connect ECONNREFUSED 127.0.0.1:${port}. Check the cluster address (--kubeconfig, --context, $KUBECONFIG) and that the API server runs; --startup-timeout sets how long to wait.`,
    ]);
    expect(p.lines.filter((l) => l.includes('ECONNREFUSED'))).toEqual(message);
    expect(warnings(p.lines)).toEqual([]);
    // Waited the whole timeout (measured from the log line, not from process start), and not much more.
    expect(afterStarting).toBeGreaterThan(2.5);
    expect(afterStarting).toBeLessThan(6);
    // stderr: the "starting" line and the message; nothing per informer or per retry.
    expect(p.lines.filter((l) => l.trim() !== '').length).toBeLessThanOrEqual(3);
  }, 60_000);
});
