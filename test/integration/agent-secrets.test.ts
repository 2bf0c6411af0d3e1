/**
 * The agent keeps in memory the contents of the Secrets kiln resources name,
 * and of no other (issue #19): a 10,000-byte Helm-release-like Secret in a
 * namespace it watches stays out of its caches (the Secret informer holds
 * names and resourceVersions only), the superuser Secret an instance names is
 * read by name, a change to it is seen, and it is dropped once no resource
 * names it. Real API server; the agent runs in-process with the admin's
 * kubeconfig, watching two namespaces of its own.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import type { KubeObject } from '../../kube/informer.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor } from '../harness/wait.js';

let cp: ControlPlaneClient;
let agent: Agent;
const id = randomBytes(3).toString('hex');
const ns = `kiln-agent-sec-${id}`;
const other = `kiln-agent-helm-${id}`;
const logs: string[] = [];
const HELM = 'sh.helm.release.v1.shop.v7';
/** Response bytes the agent's client received for Secret lists and watches (not GETs by name). */
const secretBytes = { LIST: 0, WATCH: 0 };

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  for (const n of [ns, other]) await cp.kubectlOk(['create', 'namespace', n]);
  const release = randomBytes(7500).toString('base64'); // 10,000 bytes
  for (const n of [ns, other]) {
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', type: 'helm.sh/release.v1', metadata: { name: HELM, namespace: n, labels: { owner: 'helm', name: 'shop' } }, stringData: { release } }),
    });
  }
  await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', 'pg-superuser', '--from-literal=password=first']);
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'pg', namespace: ns }, spec: { superuserSecret: { name: 'pg-superuser' } } }),
  });
  agent = new Agent({
    kc: loadKubeConfig({ kubeconfig: cp.kubeconfig }),
    namespaces: [ns, other],
    concurrency: 2,
    qps: 0,
    burst: 0,
    passwordIntervalSeconds: 300,
    databaseCheckSeconds: 1,
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
  });
  agent.client.onReceived = (verb, path, bytes) => {
    if ((verb === 'LIST' || verb === 'WATCH') && path.endsWith('/secrets')) secretBytes[verb] += bytes;
  };
  await agent.start();
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  for (const n of [ns, other]) await cp?.kubectl(['delete', 'namespace', n, '--wait=false']);
});

const ready = async () => {
  const r = await cp.kubectl(['get', '-n', ns, 'postgresinstance', 'pg', '-o', 'jsonpath={.status.conditions[?(@.type=="SuperuserSecretReady")].status}']);
  return r.stdout === 'True';
};
/** Everything the agent's Secret informers hold, as JSON. */
const informerSecrets = (): KubeObject[] => (agent as unknown as { informers: Map<string, { list(): KubeObject[] }> }).informers.get('Secret')!.list();

it('holds no contents of a Secret no kiln resource names (a 10,000-byte Helm release in a watched namespace)', async () => {
  await waitFor('SuperuserSecretReady', ready, 30_000, () => logs.slice(-10).join('\n'));
  const held = informerSecrets();
  // The informer still sees every Secret (to notice changes), by name only.
  expect(
    held
      .filter((s) => s.metadata.name === HELM)
      .map((s) => s.metadata.namespace)
      .sort(),
  ).toEqual([ns, other].sort());
  const bytes = JSON.stringify(held).length;
  console.log(`Secret informer cache: ${held.length} Secrets, ${bytes} bytes of JSON`);
  expect(bytes).toBeLessThan(2_000);
  for (const s of held) expect(Object.keys(s).sort()).toEqual(['apiVersion', 'kind', 'metadata']);
  // Contents: the one Secret a resource names, and nothing else.
  expect(agent.secrets.keys()).toEqual([`${ns}/pg-superuser`]);
});

it("lists Secrets as metadata: a 10,000-byte Secret's data never crosses the wire to the agent", () => {
  // Two 10,000-byte Helm releases in the watched namespaces: a list of full Secrets carries 20,000 bytes.
  console.log(`Secret LIST bytes received: ${secretBytes.LIST}`);
  expect(secretBytes.LIST).toBeGreaterThan(0);
  expect(secretBytes.LIST).toBeLessThan(10_000);
});

it('watches Secrets as metadata: a 10,000-byte change costs its metadata on the wire, not its data', async () => {
  const watchBefore = secretBytes.WATCH;
  const release = randomBytes(7500).toString('base64');
  await cp.kubectlOk(['-n', other, 'patch', 'secret', HELM, '--type=merge', '-p', JSON.stringify({ stringData: { release } })]);
  const rv = (await cp.kubectlOk(['-n', other, 'get', 'secret', HELM, '-o', 'jsonpath={.metadata.resourceVersion}'])).trim();
  await waitFor('the change in the Secret informer', () => informerSecrets().some((s) => s.metadata.namespace === other && s.metadata.name === HELM && s.metadata.resourceVersion === rv), 10_000);
  const received = secretBytes.WATCH - watchBefore;
  console.log(`Secret WATCH bytes received for a 10,000-byte change: ${received}`);
  expect(received).toBeGreaterThan(0);
  expect(received).toBeLessThan(5_000);
});

it('reads a named Secret again when it changes, and drops it when no resource names it', async () => {
  await cp.kubectlOk(['-n', ns, 'patch', 'secret', 'pg-superuser', '--type=merge', '-p', JSON.stringify({ stringData: { password: 'second' } })]);
  await waitFor("the new value in the agent's cache", () => Buffer.from(agent.secrets.get(ns, 'pg-superuser')?.data?.password ?? '', 'base64').toString() === 'second', 10_000);
  await cp.kubectlOk(['-n', ns, 'delete', 'postgresinstance', 'pg']);
  await waitFor(
    "the Secret dropped from the agent's cache",
    () => agent.secrets.keys().length === 0,
    10_000,
    () => agent.secrets.keys().join(', '),
  );
});

it('starts in a namespace that holds no Secret (a metadata-only list of nothing has "items": null)', async () => {
  const empty = `kiln-agent-none-${id}`;
  await cp.kubectlOk(['create', 'namespace', empty]);
  // A new namespace gets its ServiceAccount, never a Secret, from kube-controller-manager.
  const lonely = new Agent({
    kc: loadKubeConfig({ kubeconfig: cp.kubeconfig }),
    namespaces: [empty],
    concurrency: 1,
    qps: 0,
    burst: 0,
    passwordIntervalSeconds: 300,
    databaseCheckSeconds: 60,
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
  });
  try {
    const started = await Promise.race([lonely.start().then(() => 'started'), new Promise((r) => setTimeout(() => r('timed out'), 20_000))]);
    expect(
      started,
      logs
        .filter((l) => l.includes('list failed'))
        .slice(-3)
        .join('\n'),
    ).toBe('started');
  } finally {
    await lonely.stop();
    await cp.kubectl(['delete', 'namespace', empty, '--wait=false']);
  }
});
