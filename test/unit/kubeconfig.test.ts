import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { Credentials, loadKubeConfig, NoClusterConfigError, toClusterConfig } from '../../kube/kubeconfig.js';
import { jwtExpiry, OidcAuthProvider } from '../../kube/oidc.js';
import { proxyFor, useProxy } from '../../kube/proxy.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-kubeconfig-'));
const b64 = (s: string) => Buffer.from(s).toString('base64');

function file(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('loadKubeConfig', () => {
  it('reads the current context: server, CA data, client certificate files relative to the kubeconfig', () => {
    file('client.crt', 'CERT');
    file('client.key', 'KEY');
    const kc = file(
      'a.yaml',
      `
apiVersion: v1
kind: Config
current-context: one
clusters:
- name: c1
  cluster: { server: 'https://127.0.0.1:6443', certificate-authority-data: ${b64('CA')}, tls-server-name: kubernetes }
users:
- name: u1
  user: { client-certificate: client.crt, client-key: client.key }
contexts:
- name: one
  context: { cluster: c1, user: u1 }
- name: two
  context: { cluster: c1, user: u2 }
`,
    );
    const c = loadKubeConfig({ kubeconfig: kc });
    expect(c).toMatchObject({ server: 'https://127.0.0.1:6443', ca: 'CA', tlsServerName: 'kubernetes', cert: 'CERT', key: 'KEY' });
    expect(c.token).toBeUndefined();
    expect(c.source).toContain('context one');
  });

  it('a token, another context, and clear errors for what kiln cannot use', () => {
    const kc = file(
      'b.yaml',
      `
current-context: one
clusters: [{ name: c1, cluster: { server: 'https://h:443', insecure-skip-tls-verify: true } }]
users:
- { name: u1, user: { token: secret-token-value } }
- { name: u2, user: { exec: { command: aws, apiVersion: client.authentication.k8s.io/v1 } } }
- { name: u3, user: { auth-provider: { name: gcp, config: { access-token: secret-token-value } } } }
contexts:
- { name: one, context: { cluster: c1, user: u1 } }
- { name: two, context: { cluster: c1, user: u2 } }
- { name: gcp, context: { cluster: c1, user: u3 } }
`,
    );
    expect(loadKubeConfig({ kubeconfig: kc })).toMatchObject({ server: 'https://h:443', insecureSkipTLSVerify: true, token: 'secret-token-value' });
    expect(() => loadKubeConfig({ kubeconfig: kc, context: 'two' })).toThrow(/context two: exec plugin: interactiveMode must be specified/);
    expect(() => loadKubeConfig({ kubeconfig: kc, context: 'gcp' })).toThrow(/gcp auth-provider was removed .* use the "gke-gcloud-auth-plugin" exec credential plugin/);
    expect(() => loadKubeConfig({ kubeconfig: kc, context: 'three' })).toThrow(NoClusterConfigError);
    try {
      loadKubeConfig({ kubeconfig: kc, context: 'gcp' });
    } catch (err) {
      expect(String(err)).not.toContain('secret-token-value');
    }
    expect(() => loadKubeConfig({ kubeconfig: join(dir, 'missing.yaml') })).toThrow(/does not exist/);
  });

  it('re-reads a token file (rotation) no more than once a minute, and at once after a 401', async () => {
    const tokenFile = file('token', 'one\n');
    const creds = new Credentials({ server: 'https://h', tokenFile });
    expect(creds.authorization()).toBe('Bearer one');
    writeFileSync(tokenFile, 'two');
    expect(creds.authorization()).toBe('Bearer one');
    creds.refresh();
    expect(creds.authorization()).toBe('Bearer two');
    writeFileSync(tokenFile, 'three');
    await creds.unauthorized();
    expect(await creds.get()).toEqual({ authorization: 'Bearer three' });
  });

  it('exec: a command with a path is relative to the kubeconfig; cluster info with the exec extension; a token in the entry wins (client-go)', () => {
    const kc = file(
      'exec.yaml',
      `
current-context: eks
clusters:
- name: c1
  cluster:
    server: https://eks.example:443
    certificate-authority-data: ${b64('CA')}
    proxy-url: http://proxy.corp:3128
    extensions:
    - { name: client.authentication.k8s.io/exec, extension: { audience: kiln } }
users:
- name: aws
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: bin/get-token
      args: [eks, get-token, --cluster-name, prod]
      env: [{ name: AWS_PROFILE, value: prod }]
      provideClusterInfo: true
- name: both
  user:
    token: static-token
    exec: { apiVersion: client.authentication.k8s.io/v1, command: aws, interactiveMode: Never }
contexts:
- { name: eks, context: { cluster: c1, user: aws } }
- { name: both, context: { cluster: c1, user: both } }
`,
    );
    const c = loadKubeConfig({ kubeconfig: kc });
    expect(c.exec).toEqual({
      apiVersion: 'client.authentication.k8s.io/v1beta1',
      command: join(dir, 'bin/get-token'),
      args: ['eks', 'get-token', '--cluster-name', 'prod'],
      env: [{ name: 'AWS_PROFILE', value: 'prod' }],
      interactiveMode: 'IfAvailable',
      provideClusterInfo: true,
      cluster: { server: 'https://eks.example:443', 'certificate-authority-data': b64('CA'), 'proxy-url': 'http://proxy.corp:3128', config: { audience: 'kiln' } },
    });
    expect(c.proxyUrl).toBe('http://proxy.corp:3128');
    const both = loadKubeConfig({ kubeconfig: kc, context: 'both' });
    expect(both.exec).toBeUndefined();
    expect(new Credentials(both).execAuth).toBeUndefined();
  });

  it('impersonation (as, as-groups, as-uid, as-user-extra), azure and unknown auth-providers, a bad proxy-url', () => {
    const kc = file(
      'as.yaml',
      `
current-context: as
clusters:
- { name: c1, cluster: { server: 'https://h:443' } }
- { name: bad-proxy, cluster: { server: 'https://h:443', proxy-url: 'ftp://proxy:21' } }
users:
- { name: admin, user: { token: t, as: jane, as-groups: [dev, ops], as-uid: '42', as-user-extra: { reason: [audit] } } }
- { name: groups-only, user: { token: t, as-groups: [dev] } }
- { name: az, user: { auth-provider: { name: azure, config: {} } } }
- { name: other, user: { auth-provider: { name: keystone } } }
contexts:
- { name: as, context: { cluster: c1, user: admin } }
- { name: groups-only, context: { cluster: c1, user: groups-only } }
- { name: az, context: { cluster: c1, user: az } }
- { name: other, context: { cluster: c1, user: other } }
- { name: bad-proxy, context: { cluster: bad-proxy, user: admin } }
`,
    );
    expect(loadKubeConfig({ kubeconfig: kc }).impersonate).toEqual({ user: 'jane', groups: ['dev', 'ops'], uid: '42', extra: { reason: ['audit'] } });
    expect(() => loadKubeConfig({ kubeconfig: kc, context: 'groups-only' })).toThrow(/as-groups, as-uid and as-user-extra need as/);
    expect(() => loadKubeConfig({ kubeconfig: kc, context: 'az' })).toThrow(/azure auth-provider was removed .* "kubelogin" exec credential plugin/);
    expect(() => loadKubeConfig({ kubeconfig: kc, context: 'other' })).toThrow(/auth-provider "keystone" is not supported/);
    expect(() => loadKubeConfig({ kubeconfig: kc, context: 'bad-proxy' })).toThrow(/proxy URL ftp:\/\/proxy:21: scheme ftp is not supported/);
  });

  it('accepts a client-node style KubeConfig object', () => {
    const like = {
      getCurrentCluster: () => ({ server: 'https://x', caData: b64('CA'), skipTLSVerify: false }),
      getCurrentUser: () => ({ token: 't' }),
    };
    expect(toClusterConfig(like)).toMatchObject({ server: 'https://x', ca: 'CA', token: 't' });
  });
});

describe("proxy selection (client-go: proxy-url, else Go's ProxyFromEnvironment)", () => {
  it('proxy-url wins; HTTPS_PROXY for https, HTTP_PROXY for http, upper case first; a URL without scheme is http', () => {
    const env = { HTTPS_PROXY: 'corp:3128', https_proxy: 'http://lower:1', HTTP_PROXY: 'http://plain:80' };
    expect(proxyFor('https://api.example:6443', 'socks5://s:1080', env)?.href).toBe('socks5://s:1080');
    expect(proxyFor('https://api.example:6443', undefined, env)?.href).toBe('http://corp:3128/');
    expect(proxyFor('https://api.example:6443', undefined, { https_proxy: 'http://lower:1' })?.host).toBe('lower:1');
    expect(proxyFor('http://api.example:8080', undefined, env)?.host).toBe('plain');
    expect(proxyFor('https://api.example:6443', undefined, {})).toBeUndefined();
  });

  it('NO_PROXY and loopback as Go reads them', () => {
    expect(useProxy('127.0.0.1', '6443', '')).toBe(false);
    expect(useProxy('::1', '6443', '')).toBe(false);
    expect(useProxy('localhost', '6443', '')).toBe(false);
    expect(useProxy('api.example.com', '443', '')).toBe(true);
    expect(useProxy('api.example.com', '443', '*')).toBe(false);
    expect(useProxy('api.example.com', '443', 'example.com')).toBe(false);
    expect(useProxy('example.com', '443', 'example.com')).toBe(false);
    expect(useProxy('example.com', '443', '.example.com')).toBe(true);
    expect(useProxy('api.example.com', '443', '.example.com')).toBe(false);
    expect(useProxy('notexample.com', '443', 'example.com')).toBe(true);
    expect(useProxy('10.1.2.3', '443', '10.0.0.0/8')).toBe(false);
    expect(useProxy('11.1.2.3', '443', '10.0.0.0/8')).toBe(true);
    expect(useProxy('api.example.com', '6443', 'api.example.com:443')).toBe(true);
    expect(useProxy('api.example.com', '443', 'api.example.com:443')).toBe(false);
    expect(useProxy('2001:db8::1', '443', '2001:db8::0001')).toBe(false);
    expect(useProxy('api.example.com', '443', ' foo.com , example.com ')).toBe(false);
  });
});

describe('oidc auth-provider', () => {
  const jwt = (exp: number) => `${b64('{"alg":"none"}')}.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.sig`;

  it('uses the id-token until 10 s before exp, then refreshes it at the discovered token endpoint and writes both tokens back to the kubeconfig', async () => {
    const seen: { auth?: string; body: string }[] = [];
    let refreshed = 0;
    const idp = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req
        .on('data', (c: Buffer) => chunks.push(c))
        .on('end', () => {
          const origin = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
          if (req.url === '/.well-known/openid-configuration') {
            res.end(JSON.stringify({ issuer: origin, token_endpoint: `${origin}/token` }));
            return;
          }
          seen.push({ auth: req.headers.authorization, body: Buffer.concat(chunks).toString() });
          const form = new URLSearchParams(Buffer.concat(chunks).toString());
          if (form.get('refresh_token') !== `refresh-${refreshed}`) {
            res.writeHead(400).end(JSON.stringify({ error: 'invalid_grant', error_description: 'refresh token reused' }));
            return;
          }
          refreshed++;
          res.end(JSON.stringify({ id_token: jwt(2_000_000_000), refresh_token: `refresh-${refreshed}`, access_token: 'a' }));
        });
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    const issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
    try {
      const kc = file(
        'oidc.yaml',
        `
current-context: o
clusters: [{ name: c, cluster: { server: 'https://h:443' } }]
users:
- name: dex
  user:
    auth-provider:
      name: oidc
      config: { idp-issuer-url: '${issuer}', client-id: kiln, client-secret: s3cret, id-token: '${jwt(1_000)}', refresh-token: refresh-0 }
contexts: [{ name: o, context: { cluster: c, user: dex } }]
`,
      );
      const c = loadKubeConfig({ kubeconfig: kc });
      expect(c.oidc?.persistTo).toEqual({ file: kc, user: 'dex' });
      const creds = new Credentials(c);
      expect(await creds.get()).toEqual({ authorization: `Bearer ${jwt(2_000_000_000)}` });
      expect(seen[0]).toEqual({ auth: `Basic ${b64('kiln:s3cret')}`, body: 'grant_type=refresh_token&refresh_token=refresh-0' });
      const written = load(readFileSync(kc, 'utf8')) as { users: { user: { 'auth-provider': { config: Record<string, string> } } }[] };
      expect(written.users[0]!.user['auth-provider'].config).toMatchObject({ 'id-token': jwt(2_000_000_000), 'refresh-token': 'refresh-1', 'client-secret': 's3cret' });
      await creds.get(); // still valid: no second refresh
      expect(seen).toHaveLength(1);
      // A provider that refuses: its error, no token in the message.
      const stale = new OidcAuthProvider({ 'idp-issuer-url': issuer, 'client-id': 'kiln', 'id-token': jwt(1_000), 'refresh-token': 'refresh-0' });
      const err = await stale.token().then(
        () => '',
        (e: unknown) => String(e),
      );
      expect(err).toMatch(/refreshing the id-token at .*\/token failed: invalid_grant: refresh token reused/);
      expect(err).not.toContain('refresh-0');
      await expect(new OidcAuthProvider({ 'id-token': jwt(1_000) }).token()).rejects.toThrow(/no refresh-token/);
      expect(jwtExpiry(jwt(5))).toBe(5000);
    } finally {
      idp.close();
    }
  });
});
