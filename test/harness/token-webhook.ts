/**
 * A webhook token authenticator for a test kube-apiserver that accepts
 * short-lived tokens, and an exec credential plugin that issues them: what
 * proves a client follows a credential's expiry, where a static token file
 * cannot.
 *
 * Tokens are `kiln-exec.<serial>.<expires ms>.<hmac>` under a secret in the
 * webhook's directory. The webhook (POST TokenReview, authentication.k8s.io/v1)
 * accepts one while its HMAC is right, it has not expired, and its serial is
 * not below `revokeBelow` (so a test can make the server refuse tokens that
 * have not expired yet); the user is `username` in `groups`. Every review is
 * recorded. The plugin (a Node script) issues a token valid for the
 * milliseconds in `<dir>/ttl-ms` and counts its runs in `<dir>/runs`.
 *
 * Opt-in: only a control plane started with `apiserverArgs()` uses it. The
 * webhook's own cache is 1 s, but kube-apiserver also keeps every accepted
 * token for 10 s in front of all token authenticators: a revoked token is
 * refused about 10 s later.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface Review {
  at: number;
  serial: number;
  result: 'ok' | 'expired' | 'revoked' | 'bad';
}

export interface TokenWebhook {
  dir: string;
  url: string;
  /** Path of the exec plugin (an executable Node script). */
  plugin: string;
  reviews: Review[];
  /** Refuse every token whose serial is below `serial` (the next token's serial by default). */
  revoke(serial?: number): void;
  /** The serial the next token gets. */
  nextSerial(): number;
  /** How long the tokens the plugin issues from now on live. */
  setTtl(ms: number): Promise<void>;
  runs(): number;
  /** kube-apiserver flags that make it consult this webhook. */
  apiserverArgs(): string[];
  close(): Promise<void>;
}

export async function startTokenWebhook(dir: string, opts: { username?: string; groups?: string[]; ttlMs?: number } = {}): Promise<TokenWebhook> {
  await mkdir(dir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  const secretFile = path.join(dir, 'secret');
  await writeFile(secretFile, secret, { mode: 0o600 });
  await writeFile(path.join(dir, 'ttl-ms'), String(opts.ttlMs ?? 60_000));
  const reviews: Review[] = [];
  let revokeBelow = 0;
  const sign = (body: string) => createHmac('sha256', secret).update(body).digest('base64url');

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let token = '';
      try {
        token = (JSON.parse(Buffer.concat(chunks).toString()) as { spec?: { token?: string } }).spec?.token ?? '';
      } catch {
        // not a TokenReview
      }
      const m = /^kiln-exec\.(\d+)\.(\d+)\.([\w-]+)$/.exec(token);
      let result: Review['result'] = 'bad';
      if (m && sign(`${m[1]}.${m[2]}`) === m[3]) {
        result = Number(m[2]) < Date.now() ? 'expired' : Number(m[1]) < revokeBelow ? 'revoked' : 'ok';
      }
      if (m) reviews.push({ at: Date.now(), serial: Number(m[1]), result });
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          status:
            result === 'ok' ? { authenticated: true, user: { username: opts.username ?? 'exec-user', groups: opts.groups ?? ['system:masters'] } } : { authenticated: false, error: `token ${result}` },
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  const configFile = path.join(dir, 'webhook.kubeconfig');
  await writeFile(
    configFile,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'webhook', cluster: { server: url } }],
      users: [{ name: 'apiserver', user: {} }],
      contexts: [{ name: 'webhook', context: { cluster: 'webhook', user: 'apiserver' } }],
      'current-context': 'webhook',
    }),
  );

  // The plugin: serial from a counter file, expiry from ttl-ms, signed with the secret.
  const plugin = path.join(dir, 'issue-token.mjs');
  await writeFile(
    plugin,
    `#!${process.execPath}
import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
const dir = ${JSON.stringify(dir)};
const read = (f, d) => { try { return readFileSync(dir + '/' + f, 'utf8').trim(); } catch { return d; } };
const serial = Number(read('serial', '0'));
writeFileSync(dir + '/serial', String(serial + 1));
writeFileSync(dir + '/runs', String(Number(read('runs', '0')) + 1));
const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO || '{}');
writeFileSync(dir + '/last-exec-info.json', JSON.stringify(info));
const expires = Date.now() + Number(read('ttl-ms', '60000'));
const body = serial + '.' + expires;
const token = 'kiln-exec.' + body + '.' + createHmac('sha256', readFileSync(${JSON.stringify(secretFile)}, 'utf8')).update(body).digest('base64url');
process.stdout.write(JSON.stringify({ apiVersion: info.apiVersion || 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token, expirationTimestamp: new Date(expires).toISOString() } }));
`,
  );
  await chmod(plugin, 0o755);

  const serialNow = () => (existsSync(path.join(dir, 'serial')) ? Number(readFileSync(path.join(dir, 'serial'), 'utf8')) : 0);
  return {
    dir,
    url,
    plugin,
    reviews,
    revoke: (serial = serialNow()) => void (revokeBelow = serial),
    nextSerial: serialNow,
    setTtl: (ms) => writeFile(path.join(dir, 'ttl-ms'), String(ms)),
    runs: () => (existsSync(path.join(dir, 'runs')) ? Number(readFileSync(path.join(dir, 'runs'), 'utf8')) : 0),
    apiserverArgs: () => [`--authentication-token-webhook-config-file=${configFile}`, '--authentication-token-webhook-version=v1', '--authentication-token-webhook-cache-ttl=1s'],
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
