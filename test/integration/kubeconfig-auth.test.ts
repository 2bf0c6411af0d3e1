/**
 * kubeconfig parity with kubectl, against a real kube-apiserver:
 *  - an exec credential plugin issuing short-lived tokens, which the API server
 *    checks through a webhook token authenticator served by the harness
 *    (test/harness/token-webhook.ts): the apply-mode controller keeps
 *    converging across several expiries, and after the server starts refusing
 *    a token that has not expired (401, the plugin runs again);
 *  - a plugin returning a client certificate;
 *  - a failing plugin: a clear error with its stderr, without any token;
 *  - `proxy-url`: a CONNECT proxy in this file carries the traffic;
 *  - `as`/`as-groups`/`as-uid`: impersonation seen in the API server's audit log.
 *
 * Runs its own control plane: the webhook authenticator and the audit log are
 * flags the shared one does not have.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from '../../kube/client.js';
import { Informer } from '../../kube/informer.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { Manager } from '../../controller/manager.js';
import { defaultCrdPaths, ensureBinaries, startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { startTokenWebhook, type TokenWebhook } from '../harness/token-webhook.js';
import { waitFor as waitUntil } from '../harness/wait.js';

const work = mkdtempSync(path.join(tmpdir(), 'kiln-kubeconfig-auth-'));
const auditFile = path.join(work, 'audit.log');
const ns = 'kiln-exec';
let cp: ControlPlane;
let webhook: TokenWebhook;
let manager: Manager | undefined;
const t0 = Date.now();
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`+${((Date.now() - t0) / 1000).toFixed(1)}s ${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-30).join('\n'));

/** A CONNECT proxy that records what it was asked to reach. */
function connectProxy(): Promise<{ port: number; connects: string[]; close: () => void }> {
  const connects: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.once('data', (head) => {
      const m = /^CONNECT (\S+):(\d+) HTTP\/1\.1\r\n/.exec(head.toString('latin1'));
      if (!m) return void client.end('HTTP/1.1 405 Method Not Allowed\r\n\r\n');
      connects.push(`${m[1]}:${m[2]}`);
      const upstream = net.connect(Number(m[2]), m[1], () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.pipe(client).pipe(upstream);
      });
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        connects,
        close: () => {
          for (const s of sockets) s.destroy();
          server.close();
        },
      }),
    ),
  );
}

/** A kubeconfig for the test control plane with `user` (and extra cluster fields). */
function kubeconfig(name: string, user: Record<string, unknown>, cluster: Record<string, unknown> = {}): string {
  const file = path.join(work, `${name}.kubeconfig`);
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'kiln', cluster: { server: cp.server, 'certificate-authority-data': Buffer.from(readFileSync(cp.caFile)).toString('base64'), ...cluster } }],
      users: [{ name, user }],
      contexts: [{ name, context: { cluster: 'kiln', user: name } }],
      'current-context': name,
    }),
  );
  return file;
}

const execUser = (command: string, extra: Record<string, unknown> = {}) => ({
  exec: { apiVersion: 'client.authentication.k8s.io/v1', command, interactiveMode: 'Never', provideClusterInfo: true, ...extra },
});

beforeAll(async () => {
  webhook = await startTokenWebhook(path.join(work, 'webhook'), { username: 'exec-user', groups: ['system:masters'] });
  const policy = path.join(work, 'audit-policy.yaml');
  writeFileSync(policy, JSON.stringify({ apiVersion: 'audit.k8s.io/v1', kind: 'Policy', omitStages: ['RequestReceived'], rules: [{ level: 'Metadata' }] }));
  cp = await startControlPlane({
    binDir: await ensureBinaries(),
    crdPaths: defaultCrdPaths(),
    controllerManager: false,
    apiserverArgs: [...webhook.apiserverArgs(), `--audit-log-path=${auditFile}`, `--audit-policy-file=${policy}`, '--audit-log-mode=blocking', '--audit-log-maxsize=1000000'],
  });
  await cp.kubectlOk(['create', 'namespace', ns]);
}, 300_000);

afterAll(async () => {
  await manager?.stop();
  await cp?.stop();
  await webhook?.close();
});

describe('exec credential plugin with short-lived tokens', () => {
  it('the controller keeps converging across token expiries, and after the server refuses a token that has not expired', async () => {
    await webhook.setTtl(3_000);
    const config = loadKubeConfig({ kubeconfig: kubeconfig('exec', execUser(webhook.plugin)) });
    expect(config.exec?.command).toBe(webhook.plugin);
    manager = new Manager({ kc: config, namespaces: [ns], concurrency: 2, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
    await manager.start();
    // The plugin saw the cluster (provideClusterInfo) and a non-interactive session.
    expect(JSON.parse(readFileSync(path.join(webhook.dir, 'last-exec-info.json'), 'utf8'))).toMatchObject({
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      spec: { interactive: false, cluster: { server: cp.server } },
    });
    const cache = { apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', metadata: { name: 'c', namespace: ns }, spec: { image: 'x', size: 1, catalogServers: 1 } };
    const grid = (partitions: number) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g', namespace: ns }, spec: { cache: 'c', partitions } });
    const partitionsNow = async () => {
      const r = await cp.kubectl(['-n', ns, 'get', 'configmap', 'c-grid-g', '-o', 'json']);
      return r.code === 0 ? (JSON.parse(JSON.parse(r.stdout).data['grid.json']) as { partitions: number }).partitions : undefined;
    };
    const converge = async (partitions: number) => {
      await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(grid(partitions)) });
      await waitFor(`grid ConfigMap with ${partitions} partitions`, async () => (await partitionsNow()) === partitions);
    };
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(cache) });
    const runsAtStart = webhook.runs();
    // Several expiries: a change every 3.5 s, each applied with a token obtained after the last expired.
    for (const p of [7, 11, 13, 17, 19]) {
      await converge(p);
      await new Promise((r) => setTimeout(r, 3_500));
    }
    const runsAfterExpiries = webhook.runs();
    expect(runsAfterExpiries - runsAtStart).toBeGreaterThanOrEqual(4);
    expect(webhook.reviews.filter((r) => r.result === 'ok').length).toBeGreaterThan(4);

    // Long-lived tokens now: once the short one has expired, the next change runs the plugin for one.
    await webhook.setTtl(3_600_000);
    await new Promise((r) => setTimeout(r, 3_500));
    await converge(23);
    expect(webhook.runs()).toBeGreaterThan(runsAfterExpiries);
    // The server now refuses every token issued so far, the controller's unexpired one included.
    const runsBeforeRevoke = webhook.runs();
    webhook.revoke();
    // kube-apiserver remembers an accepted token for 10 s (its token success cache, whatever the webhook's own TTL).
    await new Promise((r) => setTimeout(r, 11_000));
    await converge(29);
    expect(webhook.reviews.some((r) => r.result === 'revoked')).toBe(true);
    expect(webhook.runs()).toBeGreaterThan(runsBeforeRevoke);
    expect(logs.some((l) => l.includes('401'))).toBe(true);
    // Still converging with the token obtained after the 401.
    await converge(31);
    // Its token never reached a log line.
    expect(logs.join('\n')).not.toContain('kiln-exec.');
    await manager.stop();
    manager = undefined;
  }, 120_000);

  it('a plugin that returns a client certificate: the API server sees its subject', async () => {
    const id = await cp.mintIdentity('cert-from-plugin', ['kiln-testers']);
    const script = path.join(work, 'cert-plugin.sh');
    const status = { clientCertificateData: readFileSync(id.certFile, 'utf8'), clientKeyData: readFileSync(id.keyFile, 'utf8') };
    writeFileSync(script, `#!/bin/sh\ncat <<'EOF'\n${JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status })}\nEOF\n`, { mode: 0o755 });
    const client = new KubeClient(loadKubeConfig({ kubeconfig: kubeconfig('cert', execUser(script)) }), { qps: 0 });
    try {
      const review = await client.request<{ status: { userInfo: { username: string; groups: string[] } } }>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      });
      expect(review.status.userInfo.username).toBe('cert-from-plugin');
      expect(review.status.userInfo.groups).toContain('kiln-testers');
    } finally {
      await client.close();
    }
  });

  it('a failing plugin: an error naming it, with its stderr, never a token; a list that fails this way is retried', async () => {
    const script = path.join(work, 'failing-plugin.sh');
    writeFileSync(
      script,
      `#!/bin/sh\necho 'error: SSO session for profile prod has expired; run "aws sso login --profile prod"' >&2\necho '{"status":{"token":"kiln-exec.should-never-show"}}'\nexit 255\n`,
      { mode: 0o755 },
    );
    const client = new KubeClient(loadKubeConfig({ kubeconfig: kubeconfig('failing', execUser(script)) }), { qps: 0 });
    const err = await client.list({ apiVersion: 'v1', kind: 'ConfigMap', namespace: ns }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toBe(
      `getting credentials: exec: executable ${script} failed with exit code 255; its stderr: error: SSO session for profile prod has expired; run "aws sso login --profile prod"`,
    );
    expect(err?.message).not.toContain('should-never-show');
    const seen: string[] = [];
    const informer = new Informer(client, { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, resyncSeconds: 0, log: (level, msg, f) => seen.push(`${level} ${msg} ${JSON.stringify(f ?? {})}`) });
    const started = informer.start();
    await waitFor('the informer to report the plugin failure', () => seen.some((l) => l.includes('aws sso login')), 15_000);
    // Fix the plugin: the informer's retry gets a token and lists.
    writeFileSync(script, `#!/bin/sh\nexec ${JSON.stringify(webhook.plugin)}\n`, { mode: 0o755 });
    await started;
    expect(informer.hasSynced()).toBe(true);
    informer.stop();
    expect(seen.join('\n')).not.toContain('kiln-exec.');
    await client.close();
  }, 60_000);
});

describe('proxy-url', () => {
  it('a CONNECT proxy carries the traffic (TLS to the API server inside the tunnel)', async () => {
    const proxy = await connectProxy();
    try {
      const config = loadKubeConfig({ kubeconfig: kubeconfig('proxied', execUser(webhook.plugin), { 'proxy-url': `http://127.0.0.1:${proxy.port}` }) });
      const client = new KubeClient(config, { qps: 0 });
      const list = await client.list({ apiVersion: 'v1', kind: 'Namespace' });
      expect(list.items.map((n) => (n as { metadata: { name: string } }).metadata.name)).toContain(ns);
      const apiPort = new URL(cp.server).port;
      expect(proxy.connects).toContain(`127.0.0.1:${apiPort}`);
      // A watch holds its connection; a request made meanwhile opens a second tunnel.
      const abort = new AbortController();
      const events: string[] = [];
      const watching = client.watch({ apiVersion: 'v1', kind: 'Namespace' }, { resourceVersion: list.metadata.resourceVersion }, (e) => events.push(e.type), abort.signal).catch(() => undefined);
      await cp.kubectlOk(['create', 'namespace', 'kiln-proxied']);
      await waitFor('a watch event through the proxy', () => events.includes('ADDED'));
      await client.get({ apiVersion: 'v1', kind: 'Namespace', name: 'kiln-proxied' });
      expect(proxy.connects).toEqual([`127.0.0.1:${apiPort}`, `127.0.0.1:${apiPort}`]);
      abort.abort();
      await watching;
      await client.close();
      // Without proxy-url, the proxy sees nothing.
      const direct = new KubeClient(loadKubeConfig({ kubeconfig: kubeconfig('direct', execUser(webhook.plugin)) }), { qps: 0 });
      const n = proxy.connects.length;
      await direct.list({ apiVersion: 'v1', kind: 'Namespace' });
      expect(proxy.connects.length).toBe(n);
      await direct.close();
    } finally {
      proxy.close();
    }
  });
});

describe('impersonation', () => {
  it('as, as-groups and as-uid reach the API server: the audit log records the impersonated user', async () => {
    const client = new KubeClient(loadKubeConfig({ kubeconfig: kubeconfig('as', { token: cp.adminToken, as: 'jane', 'as-groups': ['kiln-auditors'], 'as-uid': 'uid-1234' }) }), { qps: 0 });
    // jane has no rights: the refusal names her, not the admin.
    const err = await client.list({ apiVersion: 'v1', kind: 'Secret', namespace: ns }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/User "jane" cannot list resource "secrets"/);
    await client.close();
    const event = await waitFor(
      'the audit event of the impersonated request',
      () => {
        const lines = readFileSync(auditFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map(
            (l) =>
              JSON.parse(l) as {
                verb: string;
                objectRef?: { resource?: string; namespace?: string };
                user: { username: string };
                impersonatedUser?: { username: string; uid?: string; groups?: string[] };
              },
          );
        return lines.find((e) => e.objectRef?.resource === 'secrets' && e.objectRef.namespace === ns && e.impersonatedUser);
      },
      10_000,
    );
    expect(event.user.username).toBe('kiln-admin');
    expect(event.impersonatedUser).toMatchObject({ username: 'jane', uid: 'uid-1234' });
    expect(event.impersonatedUser?.groups).toContain('kiln-auditors');
  });
});
