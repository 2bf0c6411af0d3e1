/**
 * The per-ServiceAccount token cache's decisions, on a controller client that
 * answers TokenRequests from memory (the real API server's answers are covered
 * by test/integration/configmapsync.test.ts): when a token is reused, when it
 * is requested again, and what a failed or invalidated one leaves behind.
 */
import { describe, expect, it } from 'vitest';
import { ApiError, KubeClient, type RequestOptions } from '../../kube/client.js';
import { ServiceAccountTokens } from '../../kube/service-account-clients.js';

interface TokenRequestBody {
  spec: { expirationSeconds: number };
}

/** Grants `lifetimeSeconds` (or what was asked) per TokenRequest; `fail` makes the next one a 403. */
class TokenIssuer extends KubeClient {
  readonly requests: { path: string; expirationSeconds: number }[] = [];
  lifetimeSeconds: number | undefined;
  fail = false;
  constructor(private readonly clock: () => number) {
    super({ server: 'https://api.example:6443', ca: 'CA PEM', token: 'controller-token', cert: 'CERT', key: 'KEY' }, { qps: 0 });
  }
  override async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const asked = (opts.body as TokenRequestBody).spec.expirationSeconds;
    const n = this.requests.push({ path: `${method} ${path}`, expirationSeconds: asked });
    await Promise.resolve();
    if (this.fail) {
      this.fail = false;
      throw new ApiError(403, 'Forbidden', `${method} ${path}: 403`, method, path, 'cannot create resource "serviceaccounts/token"');
    }
    const expirationTimestamp = new Date(this.clock() + (this.lifetimeSeconds ?? asked) * 1000).toISOString();
    return { status: { token: `eyJtoken.${n}.sig`, expirationTimestamp } } as T;
  }
}

function setup() {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const issuer = new TokenIssuer(() => now);
  const tokens = new ServiceAccountTokens(issuer, { now: () => now });
  return { issuer, tokens, advance: (seconds: number) => (now += seconds * 1000) };
}

describe('ServiceAccountTokens', () => {
  it('asks for 600 s (the API minimum, even when less is configured) and reuses the token until 80% of it has passed', async () => {
    const { issuer, tokens, advance } = setup();
    const first = await tokens.get('team-a', 'tenant');
    expect(issuer.requests).toEqual([{ path: 'POST /api/v1/namespaces/team-a/serviceaccounts/tenant/token', expirationSeconds: 600 }]);
    advance(479);
    expect(await tokens.get('team-a', 'tenant')).toBe(first);
    expect(issuer.requests).toHaveLength(1);
    advance(1); // 480 s = 80% of 600
    const second = await tokens.get('team-a', 'tenant');
    expect(second).not.toBe(first);
    expect(issuer.requests).toHaveLength(2);
    await new ServiceAccountTokens(issuer, { expirationSeconds: 60 }).get('team-a', 'tenant');
    expect(issuer.requests[2]?.expirationSeconds).toBe(600);
  });

  it('refreshes by the lifetime the API granted, not the one it asked for', async () => {
    const { issuer, tokens, advance } = setup();
    issuer.lifetimeSeconds = 100; // the server caps token lifetimes
    await tokens.get('team-a', 'tenant');
    advance(79);
    await tokens.get('team-a', 'tenant');
    expect(issuer.requests).toHaveLength(1);
    advance(1);
    await tokens.get('team-a', 'tenant');
    expect(issuer.requests).toHaveLength(2);
  });

  it('keeps one token per namespace and ServiceAccount, and concurrent callers share one request', async () => {
    const { issuer, tokens } = setup();
    const [a1, a2, b] = await Promise.all([tokens.get('team-a', 'tenant'), tokens.get('team-a', 'tenant'), tokens.get('team-b', 'tenant')]);
    expect(a2).toBe(a1);
    expect(b).not.toBe(a1);
    expect(issuer.requests.map((r) => r.path)).toEqual(['POST /api/v1/namespaces/team-a/serviceaccounts/tenant/token', 'POST /api/v1/namespaces/team-b/serviceaccounts/tenant/token']);
  });

  it('caches no failure: the next call asks again', async () => {
    const { issuer, tokens } = setup();
    issuer.fail = true;
    await expect(tokens.get('team-a', 'tenant')).rejects.toThrow(ApiError);
    await expect(tokens.get('team-a', 'tenant')).resolves.toMatch(/^eyJ/);
    expect(issuer.requests).toHaveLength(2);
  });

  it('invalidate() drops the token (after a 401) and the next call requests a new one', async () => {
    const { issuer, tokens } = setup();
    const first = await tokens.get('team-a', 'tenant');
    tokens.invalidate('team-a', 'tenant');
    expect(await tokens.get('team-a', 'tenant')).not.toBe(first);
    expect(issuer.requests).toHaveLength(2);
  });

  it('hands out one client per token: the same while the token is current, a new one after a refresh', async () => {
    const { issuer, tokens, advance } = setup();
    const client = await tokens.clientFor('team-a', 'tenant');
    expect(await tokens.clientFor('team-a', 'tenant')).toBe(client);
    // The ServiceAccount's token on the controller's server and CA, none of the controller's own credentials.
    expect(client.config).toEqual({ server: 'https://api.example:6443', ca: 'CA PEM', token: await tokens.get('team-a', 'tenant') });
    expect(client).not.toBe(issuer);
    advance(480);
    const refreshed = await tokens.clientFor('team-a', 'tenant');
    expect(refreshed).not.toBe(client);
    expect(refreshed.config.token).not.toBe(client.config.token);
  });

  it('redact() removes every token it holds, bearer credentials and JWTs', async () => {
    const { tokens } = setup();
    const token = await tokens.get('team-a', 'tenant');
    const out = tokens.redact(`token ${token}; Authorization: Bearer abc.def; id eyJhbGciOi.eyJzdWIiOi.c2ln`);
    expect(out).not.toContain(token);
    expect(out).not.toContain('abc.def');
    expect(out).not.toContain('eyJhbGciOi');
  });
});
