/**
 * The agent's directory password sync against a real slapd (over ldaps)
 * reached through a fault proxy, beside a DirectoryService that reaches the
 * same slapd directly. The agent runs ONE worker, so the healthy resource can
 * converge only if the faulted one's reconcile gives its worker back. For
 * each fault (new connections: the agent opens its LDAP connections per
 * sync):
 *  - the faulted DirectoryService reports PasswordsSynced=False,
 *    DirectoryUnreachable, naming the failure, within the LDAP timeouts
 *    (agent/directory.ts: 5 s to connect, 10 s per operation);
 *  - the healthy one converges meanwhile;
 *  - when the fault ends, the faulted one converges.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { startFaultProxy, type Fault, type FaultProxy } from '../harness/fault-proxy.js';
import { startSlapd, type SlapdServer } from '../harness/slapd.js';
import { waitFor as waitUntil } from '../harness/wait.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const FAULTS: Fault[] = [{ kind: 'blackhole' }, { kind: 'half-close' }, { kind: 'reset' }, { kind: 'delay', ms: 200 }];
const SUFFIX = 'dc=kiln,dc=test';
/** The LDAP operation timeout (10 s) plus the connect and a status write. */
const DETECT_MS = 20_000;

let cp: ControlPlaneClient;
let ldap: SlapdServer;
let proxy: FaultProxy;
let agent: Agent;
const ns = `kiln-faults-ds-${randomBytes(3).toString('hex')}`;
const t0 = Date.now();
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`+${((Date.now() - t0) / 1000).toFixed(1)}s ${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number) => waitUntil(what, fn, timeoutMs, () => logs.slice(-15).join('\n'));

const MANY = Array.from({ length: 6 }, (_, i) => `uid=many-${i},ou=people,${SUFFIX}`);
const names = FAULTS.flatMap((f) => [`bad-${f.kind}`, `good-${f.kind}`]).concat('many');
const accountOf = (name: string) => `uid=${name},ou=people,${SUFFIX}`;

async function condition(name: string): Promise<Any> {
  const r = await cp.kubectl(['get', '-n', ns, 'directoryservice', name, '-o', 'json']);
  if (r.code !== 0) return undefined;
  return JSON.parse(r.stdout).status?.conditions?.find((c: Any) => c.type === 'PasswordsSynced');
}

/** A DirectoryService whose one account has a wrong password in the directory: synced means rotated. */
async function createDirectory(name: string, password: string, extra: string[] = []) {
  await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', `${name}-pw`, `--from-literal=password=${password}`]);
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'DirectoryService',
      metadata: { name, namespace: ns },
      spec: {
        image: 'registry.example.com/ds:7.5',
        secrets: { truststore: 'ds-truststore' },
        passwords: {
          [`uid=admin,${SUFFIX}`]: { secretName: 'ds-admin' },
          [accountOf(name)]: { secretName: `${name}-pw` },
          ...Object.fromEntries(extra.map((dn) => [dn, { secretName: `${name}-pw` }])),
        },
      },
    }),
  });
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  ldap = await startSlapd({
    accounts: names
      .map((n) => accountOf(n))
      .concat(MANY)
      .map((dn) => ({ dn, password: 'wrong-before-sync' })),
  });
  const ldaps = new URL(ldap.ldapsUrl);
  proxy = await startFaultProxy({ host: ldaps.hostname, port: Number(ldaps.port) });
  await cp.kubectlOk(['create', 'namespace', ns]);
  await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', 'ds-admin', `--from-literal=password=${ldap.adminPassword}`]);
  await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', 'ds-truststore', `--from-literal=ca.crt=${ldap.caPem}`]);
  const endpoints = Object.fromEntries(names.map((n) => [`DirectoryService/${ns}/${n}`, n.startsWith('bad-') || n === 'many' ? proxy.url('ldaps') : ldap.ldapsUrl]));
  agent = new Agent({ kc: loadKubeConfig({ kubeconfig: cp.kubeconfig }), namespaces: [ns], concurrency: 1, qps: 0, burst: 0, passwordIntervalSeconds: 300, databaseCheckSeconds: 10, endpoints, log });
  await agent.start();
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await proxy?.close();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  await ldap?.destroy();
});

describe('slapd behind a faulty network', () => {
  for (const fault of FAULTS) {
    it(`${fault.kind}: the faulted sync fails in bounded time naming why, the one worker is freed for a healthy directory, and it converges when the fault ends`, async () => {
      const bad = `bad-${fault.kind}`;
      const good = `good-${fault.kind}`;
      const badPw = `pw-${randomBytes(9).toString('hex')}`;
      const goodPw = `pw-${randomBytes(9).toString('hex')}`;
      proxy.setFault(fault);
      try {
        const started = Date.now();
        const before = proxy.accepted;
        await createDirectory(bad, badPw);
        // Let the faulted sync take the only worker before the healthy one queues behind it.
        await waitFor(`a connection for ${bad}`, () => proxy.accepted > before, 10_000);
        await createDirectory(good, goodPw);
        if (fault.kind === 'delay') {
          await waitFor(`${bad} synced through a ${fault.ms} ms delay`, async () => (await condition(bad))?.status === 'True', DETECT_MS);
        } else {
          const c = await waitFor(
            `${bad} DirectoryUnreachable`,
            async () => {
              const c = await condition(bad);
              return c?.status === 'False' && c.reason === 'DirectoryUnreachable' ? c : undefined;
            },
            DETECT_MS,
          );
          expect(c.message).toContain(proxy.url('ldaps'));
          console.log(`[faults-slapd] ${fault.kind}: DirectoryUnreachable after ${Date.now() - started} ms: ${c.message}`);
        }
        await waitFor(`${good} synced while ${bad} is faulted`, async () => (await condition(good))?.status === 'True', DETECT_MS);
        expect(await ldap.canBind(accountOf(good), goodPw)).toBe(true);
        if (fault.kind !== 'delay') expect((await condition(bad))?.status).toBe('False');
      } finally {
        proxy.setFault({ kind: 'none' });
      }
      const healed = Date.now();
      await waitFor(`${bad} synced after the fault ended`, async () => (await condition(bad))?.status === 'True', 30_000);
      expect(await ldap.canBind(accountOf(bad), badPw)).toBe(true);
      console.log(`[faults-slapd] ${fault.kind}: converged ${Date.now() - healed} ms after the fault ended`);
    });
  }

  it('a partition in the middle of a sync of many entries ends the sync at the first timeout, not one timeout per entry', async () => {
    const pw = `pw-${randomBytes(9).toString('hex')}`;
    // Slow enough (200 ms each way) that the sync of 7 entries is still running when the partition starts.
    proxy.setFault({ kind: 'delay', ms: 200 });
    const before = proxy.accepted;
    let cut: number;
    try {
      await createDirectory('many', pw, MANY);
      await waitFor('the sync under way', () => proxy.accepted >= before + 2, 10_000);
      await new Promise((r) => setTimeout(r, 2500));
      proxy.setFault({ kind: 'blackhole' }, { existing: true });
      cut = Date.now();
      const c = await waitFor(
        'many DirectoryUnreachable',
        async () => {
          const c = await condition('many');
          return c?.status === 'False' ? c : undefined;
        },
        40_000,
      );
      const tookMs = Date.now() - cut;
      console.log(`[faults-slapd] partition mid-sync: ${c.reason} after ${tookMs} ms: ${c.message}`);
      expect(c.reason).toBe('DirectoryUnreachable');
      expect(c.message).toMatch(/no answer within 10 s \(operation timeout; connection closed\)/);
      expect(tookMs).toBeLessThan(16_000);
    } finally {
      proxy.setFault({ kind: 'none' });
    }
    await waitFor('many synced after the partition', async () => (await condition('many'))?.status === 'True', 30_000);
  });
});
