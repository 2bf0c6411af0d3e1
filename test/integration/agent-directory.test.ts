/**
 * The runtime agent against a real OpenLDAP slapd (Debian's package, started
 * by the harness, reached over ldaps with the CA from the truststore Secret)
 * and the real control plane: rotation, generated values, Secret changes
 * acted on at once, an outage, and a failing admin bind reported without the
 * password.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { Manager } from '../../controller/manager.js';
import { isNotFound } from '../../kube/client.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { startSlapd, type SlapdServer } from '../harness/slapd.js';
import { waitFor as waitUntil } from '../harness/wait.js';

let cp: ControlPlaneClient;
let ldap: SlapdServer;
let agent: Agent;
let manager: Manager;
const ns = `kiln-agent-ds-${randomBytes(3).toString('hex')}`;
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-15).join('\n'));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const SUFFIX = 'dc=kiln,dc=test';
const AM = `uid=am-config,ou=admins,${SUFFIX}`;
const APP = `uid=app,ou=people,${SUFFIX}`;
const pw = () => `pw-${randomBytes(9).toString('hex')}`;
const b64 = (s: string) => Buffer.from(s).toString('base64');

const get = async (kind: string, name: string): Promise<Any> => {
  try {
    return await agent.client.get({ apiVersion: kind === 'Secret' ? 'v1' : 'kiln.dev/v1alpha1', kind, namespace: ns, name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
};
const setSecret = (name: string, key: string, value: string) =>
  agent.client.request('PATCH', `/api/v1/namespaces/${ns}/secrets/${name}`, { body: { data: { [key]: b64(value) } }, contentType: 'application/merge-patch+json' });
const synced = (o: Any) => o?.status?.conditions?.find((c: { type: string }) => c.type === 'PasswordsSynced');
const passwordsSynced = (pred: (c: Any, o: Any) => boolean = (c) => c?.status === 'True', what = 'PasswordsSynced=True', timeoutMs = 30_000) =>
  waitFor(
    `DirectoryService ds ${what}`,
    async () => {
      const o = await get('DirectoryService', 'ds');
      return pred(synced(o), o) ? o : undefined;
    },
    timeoutMs,
  );

let amPassword = pw();

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  ldap = await startSlapd({
    accounts: [
      { dn: AM, password: 'the-old-wrong-one' },
      { dn: APP, password: 'app-initial-value' },
    ],
  });
  await cp.kubectlOk(['create', 'namespace', ns]);
  await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', 'ds-admin', `--from-literal=password=${ldap.adminPassword}`]);
  await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', 'svc-passwords', `--from-literal=am-config.pw=${amPassword}`]);
  await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', 'ds-truststore', `--from-literal=ca.crt=${ldap.caPem}`]);
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'DirectoryService',
      metadata: { name: 'ds', namespace: ns },
      spec: {
        image: 'registry.example.com/ds:7.5',
        secrets: { truststore: 'ds-truststore' },
        passwords: {
          [`uid=admin,${SUFFIX}`]: { secretName: 'ds-admin' },
          [AM]: { secretName: 'svc-passwords', key: 'am-config.pw' },
          [APP]: { secretName: 'app-generated', create: true },
        },
      },
    }),
  });
  const kc = loadKubeConfig({ kubeconfig: cp.kubeconfig });
  agent = new Agent({
    kc,
    namespaces: [ns],
    concurrency: 4,
    qps: 0,
    burst: 0,
    passwordIntervalSeconds: 300,
    databaseCheckSeconds: 10,
    endpoints: { [`DirectoryService/${ns}/ds`]: ldap.ldapsUrl },
    log,
  });
  await agent.start();
  // The apply-mode controller on the same resource: its conditions and the agent's must live side by side.
  manager = new Manager({ kc, namespaces: [ns], concurrency: 2, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
  await manager.start();
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await agent?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  await ldap?.destroy();
});

describe('agent: directory passwords', () => {
  it("rotates a wrong password in the directory to the Secret's value (over ldaps, trusting the truststore CA)", async () => {
    const o = await passwordsSynced();
    expect(o.status.passwords).toEqual({ synced: 3, total: 3 });
    expect(await ldap.canBind(AM, amPassword)).toBe(true);
    expect(await ldap.canBind(AM, 'the-old-wrong-one')).toBe(false);
  });

  it("the agent's condition and the controller's live side by side, each under its own field manager", async () => {
    const o = await passwordsSynced((c, d) => c?.status === 'True' && d.status.conditions.some((x: Any) => x.type === 'Ready' && x.status === 'True'), 'PasswordsSynced and Ready');
    expect(o.status.conditions.map((c: Any) => c.type).sort()).toEqual(['Available', 'PasswordsSynced', 'Ready', 'Reconciling', 'Stalled', 'Synced']);
    expect(o.status.observedGeneration).toBe(o.metadata.generation);
    const managers = (o.metadata.managedFields as Any[])
      .filter((f) => f.subresource === 'status')
      .map((f) => f.manager)
      .sort();
    expect(managers).toEqual(['kiln', 'kiln-agent']);
    // Another round of both writes nothing over the other's fields.
    await new Promise((r) => setTimeout(r, 1000));
    const again = await get('DirectoryService', 'ds');
    expect(again.status.conditions.map((c: Any) => c.type).sort()).toEqual(['Available', 'PasswordsSynced', 'Ready', 'Reconciling', 'Stalled', 'Synced']);
  });

  it('generates the value of a create: true entry into its Secret and sets it in the directory', async () => {
    const s = await get('Secret', 'app-generated');
    const value = Buffer.from(s.data.password, 'base64').toString();
    expect(value).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(await ldap.canBind(APP, value)).toBe(true);
  });

  it('a changed Secret is in the directory within 2 s', async () => {
    await passwordsSynced();
    amPassword = pw();
    const t0 = performance.now();
    await setSecret('svc-passwords', 'am-config.pw', amPassword);
    while (!(await ldap.canBind(AM, amPassword))) {
      if (performance.now() - t0 > 10_000) throw new Error('not rotated after 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    const ms = performance.now() - t0;
    console.log(`rotation after a Secret change: ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(2000);
  });

  it('LDAP down, then up: reported, then converged', async () => {
    await ldap.stop();
    amPassword = pw();
    await setSecret('svc-passwords', 'am-config.pw', amPassword);
    const down = await passwordsSynced((c) => c?.status === 'False' && c.reason === 'DirectoryUnreachable', 'DirectoryUnreachable');
    expect(synced(down).message).not.toContain(amPassword);
    await ldap.start();
    await waitFor('rotated after the directory came back', async () => ldap.canBind(AM, amPassword), 40_000);
    await passwordsSynced();
  });

  it('a failing admin bind is reported without the password', async () => {
    const wrong = pw();
    await setSecret('ds-admin', 'password', wrong);
    const o = await passwordsSynced((c) => c?.status === 'False' && c.reason === 'AdminBindFailed', 'AdminBindFailed');
    const message = synced(o).message as string;
    expect(message).toContain(`uid=admin,${SUFFIX}`);
    expect(message).not.toContain(wrong);
    expect(message).not.toContain(ldap.adminPassword);
    const events = await cp.kubectlOk(['-n', ns, 'get', 'events', '-o', 'json']);
    expect(events).toContain('AdminBindFailed');
    for (const secret of [wrong, ldap.adminPassword, amPassword]) {
      expect(events).not.toContain(secret);
      expect(logs.join('\n')).not.toContain(secret);
    }
    await setSecret('ds-admin', 'password', ldap.adminPassword);
    await passwordsSynced();
  });
});
