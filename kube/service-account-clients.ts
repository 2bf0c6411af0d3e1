/**
 * Clients that act as a ServiceAccount: a bearer token from the TokenRequest
 * API, on the controller's server and CA. A controller that writes on behalf of
 * a tenant uses them so that RBAC, not the controller's own rights, decides
 * where the tenant reaches.
 *
 * Tokens are never logged; `redact()` removes them, and anything that looks
 * like a bearer credential, from a message.
 */
import { KubeClient } from './client.js';
import type { ClusterConfig, ClusterConfigInput } from './kubeconfig.js';
import { redact } from './redact.js';
import { pathFor } from './resources.js';

/** The TokenRequest API's minimum lifetime. */
const MIN_TOKEN_SECONDS = 600;
/**
 * A token is replaced once this share of the lifetime the API granted has
 * passed, as the kubelet rotates projected tokens: a request made with it
 * still has a fifth of its lifetime to finish.
 */
const REFRESH_AT = 0.8;

interface CachedToken {
  token: string;
  refreshAt: number;
  expiresAt: number;
  config?: ClusterConfig;
  client?: KubeClient;
}

export interface ServiceAccountTokensOptions {
  /** Requested lifetime; at least 600 (the API's minimum). Default 600. */
  expirationSeconds?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/**
 * TokenRequest per (namespace, serviceAccount), cached until 80% of the
 * lifetime the API granted, with one client per token so its connections are
 * reused. Concurrent callers share one request; a failed request is not
 * cached. `invalidate()` drops a token the API no longer accepts.
 */
export class ServiceAccountTokens {
  private readonly cache = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  private readonly controller: KubeClient;
  private readonly expirationSeconds: number;
  private readonly now: () => number;

  /** `kc`: the controller's own identity, which only requests tokens (`serviceaccounts/token` create). */
  constructor(kc: ClusterConfigInput | KubeClient, options: ServiceAccountTokensOptions = {}) {
    this.controller = kc instanceof KubeClient ? kc : new KubeClient(kc, { qps: 0 });
    this.expirationSeconds = Math.max(MIN_TOKEN_SECONDS, Math.floor(options.expirationSeconds ?? MIN_TOKEN_SECONDS));
    this.now = options.now ?? Date.now;
  }

  private static key(namespace: string, serviceAccount: string): string {
    return `${namespace}/${serviceAccount}`;
  }

  private async entry(namespace: string, serviceAccount: string): Promise<CachedToken> {
    const key = ServiceAccountTokens.key(namespace, serviceAccount);
    const cached = this.cache.get(key);
    if (cached && this.now() < cached.refreshAt) return cached;
    const inflight = this.pending.get(key);
    if (inflight) return inflight;
    const p = this.request(namespace, serviceAccount).then(
      (fresh) => {
        this.cache.set(key, fresh);
        this.pending.delete(key);
        return fresh;
      },
      (err: unknown) => {
        this.pending.delete(key);
        throw err;
      },
    );
    this.pending.set(key, p);
    return p;
  }

  private async request(namespace: string, serviceAccount: string): Promise<CachedToken> {
    const issuedAt = this.now();
    const res = await this.controller.request<{ status?: { token?: string; expirationTimestamp?: string } }>(
      'POST',
      pathFor({ apiVersion: 'v1', kind: 'ServiceAccount', namespace, name: serviceAccount }, 'token'),
      { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: this.expirationSeconds, audiences: [] } } },
    );
    const token = res.status?.token;
    if (!token) throw new Error(`TokenRequest for ServiceAccount ${namespace}/${serviceAccount} returned no token`);
    // The API may grant a shorter lifetime than asked (--service-account-max-token-expiration): trust its answer.
    const exp = res.status?.expirationTimestamp;
    const expMs = exp ? Date.parse(String(exp)) : NaN;
    const expiresAt = Number.isFinite(expMs) ? expMs : issuedAt + this.expirationSeconds * 1000;
    const lifetime = Math.max(0, expiresAt - issuedAt);
    return { token, expiresAt, refreshAt: issuedAt + lifetime * REFRESH_AT };
  }

  /** A bearer token for the ServiceAccount. */
  async get(namespace: string, serviceAccount: string): Promise<string> {
    return (await this.entry(namespace, serviceAccount)).token;
  }

  /** The controller's server and CA with the ServiceAccount's bearer token (no client certificate, no impersonation). */
  async kubeConfigFor(namespace: string, serviceAccount: string): Promise<ClusterConfig> {
    const e = await this.entry(namespace, serviceAccount);
    e.config ??= tokenConfig(this.controller.config, e.token);
    return e.config;
  }

  /** A client with the ServiceAccount's token; the same one while the token is current. */
  async clientFor(namespace: string, serviceAccount: string): Promise<KubeClient> {
    const e = await this.entry(namespace, serviceAccount);
    e.config ??= tokenConfig(this.controller.config, e.token);
    e.client ??= new KubeClient(e.config, { qps: 0 });
    return e.client;
  }

  /** The controller identity's client. */
  controllerClient(): KubeClient {
    return this.controller;
  }

  /** Forget the token (e.g. after a 401: the ServiceAccount was recreated or the token revoked). */
  invalidate(namespace: string, serviceAccount: string): void {
    this.cache.delete(ServiceAccountTokens.key(namespace, serviceAccount));
  }

  /** `text` without bearer credentials, anything that looks like a JWT, or any token this cache holds. */
  redact(text: string): string {
    return redact(
      text,
      [...this.cache.values()].map((e) => e.token),
    );
  }
}

function tokenConfig(base: ClusterConfig, token: string): ClusterConfig {
  return { server: base.server, ca: base.ca, insecureSkipTLSVerify: base.insecureSkipTLSVerify, tlsServerName: base.tlsServerName, proxyUrl: base.proxyUrl, token };
}
