/**
 * The legacy `oidc` auth-provider of kubeconfig files (client-go's
 * plugin/pkg/client/auth/oidc, still read by kubectl): send the `id-token`
 * while it is valid; once it expires (10 s early, as client-go), refresh it with
 * the `refresh-token` at the token endpoint the issuer's discovery document
 * names, and write the new id-token (and refresh token, if the provider rotated
 * it) back into the kubeconfig file the user entry came from, as kubectl does,
 * so the next kubectl or kiln run starts from them.
 *
 * Config keys read: idp-issuer-url, client-id, client-secret, id-token,
 * refresh-token, idp-certificate-authority, idp-certificate-authority-data.
 * Client authentication to the token endpoint: HTTP Basic first, then the
 * credentials in the form, as golang.org/x/oauth2's auto-detection does.
 *
 * Why not @kubernetes/client-node's OpenIDConnectAuth: importing
 * `dist/oidc_auth.js` pulls in its config.js (the whole library) and
 * openid-client: +55 MiB RSS and +20 MiB heap, measured with
 * bench/auth-memory.ts (Node 24, after GC, median of 5 fresh processes already
 * holding what kiln's controller holds), more than a quarter of the
 * controller's 190 MiB budget. This file is node:https and the token grant.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { dirname, isAbsolute, join } from 'node:path';
import { dump, load } from 'js-yaml';

/** client-go's expiryDelta: a token this close to `exp` counts as expired. */
const EXPIRY_DELTA_MS = 10_000;

export class OidcError extends Error {
  override name = 'OidcError';
}

export interface OidcOptions {
  /** The kubeconfig file holding the user entry, and its name: where refreshed tokens are written. */
  persistTo?: { file: string; user: string };
  now?: () => number;
}

/** `exp` of a JWT in ms, or undefined when it has none (the token is never verified here: the API server does that). */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class OidcAuthProvider {
  private running: Promise<string> | undefined;
  private readonly now: () => number;
  /** Token refreshes so far. */
  refreshes = 0;

  constructor(
    readonly config: Record<string, string>,
    private readonly opts: OidcOptions & { base?: string } = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** A valid id-token, refreshed first if it has expired. */
  async token(): Promise<string> {
    const id = this.config['id-token'];
    if (id) {
      const exp = jwtExpiry(id);
      if (exp !== undefined && this.now() + EXPIRY_DELTA_MS < exp) return id;
    }
    this.running ??= this.refresh().finally(() => (this.running = undefined));
    return this.running;
  }

  private async refresh(): Promise<string> {
    const c = this.config;
    if (!c['refresh-token']) throw new OidcError('oidc auth-provider: the id-token has expired (or is missing) and there is no refresh-token to renew it; log in again (e.g. kubectl oidc-login)');
    const issuer = c['idp-issuer-url'];
    const clientId = c['client-id'];
    if (!issuer || !clientId) throw new OidcError('oidc auth-provider: idp-issuer-url and client-id are needed to refresh the id-token');
    const ca = c['idp-certificate-authority-data']
      ? Buffer.from(c['idp-certificate-authority-data'], 'base64').toString('utf8')
      : c['idp-certificate-authority']
        ? readFileSync(isAbsolute(c['idp-certificate-authority']) ? c['idp-certificate-authority'] : join(this.opts.base ?? '.', c['idp-certificate-authority']), 'utf8')
        : undefined;
    const discovery = await call(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { ca });
    if (discovery.status !== 200) throw new OidcError(`oidc auth-provider: discovery at ${issuer} answered ${discovery.status}`);
    const endpoint = (parseJson(discovery.body) as { token_endpoint?: unknown }).token_endpoint;
    if (typeof endpoint !== 'string' || !endpoint) throw new OidcError(`oidc auth-provider: the discovery document of ${issuer} names no token_endpoint`);
    const secret = c['client-secret'] ?? '';
    const form = (extra: Record<string, string>) => new URLSearchParams({ grant_type: 'refresh_token', refresh_token: c['refresh-token']!, ...extra }).toString();
    // oauth2's AuthStyleAutoDetect: Basic first, then the client credentials in the body.
    const basic = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
    let answer = await call(endpoint, { ca, method: 'POST', body: form({}), headers: { authorization: basic } });
    if (answer.status === 400 || answer.status === 401) answer = await call(endpoint, { ca, method: 'POST', body: form({ client_id: clientId, ...(secret ? { client_secret: secret } : {}) }) });
    const tokens = parseJson(answer.body) as { id_token?: unknown; refresh_token?: unknown; error?: unknown; error_description?: unknown };
    if (answer.status !== 200) {
      // The error fields of RFC 6749 §5.2 carry no credential; say them, and nothing else of the body.
      const why = typeof tokens.error === 'string' ? `${tokens.error}${typeof tokens.error_description === 'string' ? `: ${tokens.error_description}` : ''}` : `HTTP ${answer.status}`;
      throw new OidcError(`oidc auth-provider: refreshing the id-token at ${endpoint} failed: ${why}`);
    }
    if (typeof tokens.id_token !== 'string' || !tokens.id_token) throw new OidcError('oidc auth-provider: token response did not contain an id_token');
    c['id-token'] = tokens.id_token;
    if (typeof tokens.refresh_token === 'string' && tokens.refresh_token) c['refresh-token'] = tokens.refresh_token;
    this.refreshes++;
    if (this.opts.persistTo) persistAuthProvider(this.opts.persistTo.file, this.opts.persistTo.user, c);
    return tokens.id_token;
  }
}

function parseJson(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function call(url: string, o: { ca?: string; method?: string; body?: string; headers?: Record<string, string> }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
    if (o.body !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = String(Buffer.byteLength(o.body));
    }
    const req = mod.request(u, { method: o.method ?? 'GET', headers, ...(o.ca && u.protocol === 'https:' ? { ca: o.ca } : {}), signal: AbortSignal.timeout(30_000) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        size += d.length;
        if (size <= 1 << 20) chunks.push(d);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', (err) => reject(new OidcError(`oidc auth-provider: ${u.origin}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
    req.end(o.body);
  });
}

/** Writes a refreshed auth-provider config into the user entry of a kubeconfig file (atomically; the file keeps its mode). */
export function persistAuthProvider(file: string, user: string, config: Record<string, string>): void {
  const doc = (load(readFileSync(file, 'utf8')) ?? {}) as { users?: { name: string; user?: { 'auth-provider'?: { config?: Record<string, string> } } }[] };
  const entry = doc.users?.find((u) => u.name === user)?.user?.['auth-provider'];
  if (!entry) return;
  entry.config = { ...entry.config, 'id-token': config['id-token']!, ...(config['refresh-token'] ? { 'refresh-token': config['refresh-token'] } : {}) };
  const tmp = join(dirname(file), `.${Date.now()}.kiln-kubeconfig.tmp`);
  writeFileSync(tmp, dump(doc, { lineWidth: -1, noRefs: true }), { mode: statSync(file).mode & 0o777 });
  renameSync(tmp, file);
}
