import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Credentials, loadKubeConfig, NoClusterConfigError, toClusterConfig } from '../../controller/kubeconfig.js';

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
    const kc = file('a.yaml', `
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
`);
    const c = loadKubeConfig({ kubeconfig: kc });
    expect(c).toMatchObject({ server: 'https://127.0.0.1:6443', ca: 'CA', tlsServerName: 'kubernetes', cert: 'CERT', key: 'KEY' });
    expect(c.token).toBeUndefined();
    expect(c.source).toContain('context one');
  });

  it('a token, another context, and clear errors for what kiln does not support', () => {
    const kc = file('b.yaml', `
current-context: one
clusters: [{ name: c1, cluster: { server: 'https://h:443', insecure-skip-tls-verify: true } }]
users:
- { name: u1, user: { token: secret-token-value } }
- { name: u2, user: { exec: { command: aws, apiVersion: client.authentication.k8s.io/v1 } } }
contexts:
- { name: one, context: { cluster: c1, user: u1 } }
- { name: two, context: { cluster: c1, user: u2 } }
`);
    expect(loadKubeConfig({ kubeconfig: kc })).toMatchObject({ server: 'https://h:443', insecureSkipTLSVerify: true, token: 'secret-token-value' });
    expect(() => loadKubeConfig({ kubeconfig: kc, context: 'two' })).toThrow(/exec credential plugins are not supported/);
    expect(() => loadKubeConfig({ kubeconfig: kc, context: 'three' })).toThrow(NoClusterConfigError);
    try {
      loadKubeConfig({ kubeconfig: kc, context: 'two' });
    } catch (err) {
      expect(String(err)).not.toContain('secret-token-value');
    }
    expect(() => loadKubeConfig({ kubeconfig: join(dir, 'missing.yaml') })).toThrow(/does not exist/);
  });

  it('re-reads a token file (rotation) no more than once a minute, and at once after a 401', () => {
    const tokenFile = file('token', 'one\n');
    const creds = new Credentials({ server: 'https://h', tokenFile });
    expect(creds.authorization()).toBe('Bearer one');
    writeFileSync(tokenFile, 'two');
    expect(creds.authorization()).toBe('Bearer one');
    creds.refresh();
    expect(creds.authorization()).toBe('Bearer two');
  });

  it('accepts a client-node style KubeConfig object', () => {
    const like = {
      getCurrentCluster: () => ({ server: 'https://x', caData: b64('CA'), skipTLSVerify: false }),
      getCurrentUser: () => ({ token: 't' }),
    };
    expect(toClusterConfig(like)).toMatchObject({ server: 'https://x', ca: 'CA', token: 't' });
  });
});
