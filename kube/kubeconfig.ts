/**
 * Finds the cluster to talk to: --kubeconfig, then $KUBECONFIG or
 * ~/.kube/config, then the in-cluster service account. It never falls back to
 * http://localhost:8080.
 *
 * kiln reads kubeconfig files itself (no @kubernetes/client-node in the
 * controller: importing it costs 60-80 MiB of memory; bench/auth-memory.ts). What kubectl accepts:
 * a bearer token (inline or `tokenFile`, re-read as it rotates), a client
 * certificate and key (inline or files), basic auth; exec credential plugins
 * (./exec-credential.ts: EKS, GKE, AKS kubelogin, Teleport, Pinniped) and the
 * legacy `oidc` auth-provider with refresh (./oidc.ts); impersonation (`as`,
 * `as-groups`, `as-uid`, `as-user-extra`); the CA inline or from a file,
 * insecure-skip-tls-verify, tls-server-name, `proxy-url` and the proxy
 * environment variables (./proxy.ts). The removed `gcp` and `azure`
 * auth-providers are refused with the message naming their exec replacement,
 * as kubectl does. Which credential wins follows client-go: a token, basic auth
 * or a client certificate in the user entry, then exec, then the auth-provider.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { load } from 'js-yaml';
import { ExecConfigError, execAuthenticatorFor, parseExecConfig, type ExecAuthenticator, type ExecClusterInfo, type ExecConfig, type ExecCredentials } from './exec-credential.js';
import { OidcAuthProvider } from './oidc.js';
import { parseProxyUrl, ProxyConfigError } from './proxy.js';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** How long a token read from a file is used before the file is read again (client-go: 1 minute). */
const TOKEN_FILE_TTL_MS = 60_000;

export class NoClusterConfigError extends Error {}

/** Where the API server is and how to authenticate to it: what KubeClient and LeaderElector take. */
export interface ClusterConfig {
  server: string;
  /** PEM CA bundle; the system's CAs when absent. */
  ca?: string;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
  /** A fixed bearer token. */
  token?: string;
  /** A file holding the bearer token (the in-cluster service account's, projected and rotated). */
  tokenFile?: string;
  /** PEM client certificate and key. */
  cert?: string;
  key?: string;
  username?: string;
  password?: string;
  /** An exec credential plugin (only when none of the credentials above is set). */
  exec?: ExecConfig;
  /** The legacy oidc auth-provider's config, and where refreshed tokens are written back. */
  oidc?: { config: Record<string, string>; persistTo?: { file: string; user: string }; base?: string };
  /** Impersonation headers sent with every request (kubeconfig `as`, `as-groups`, `as-uid`, `as-user-extra`). */
  impersonate?: Impersonation;
  /** The cluster's `proxy-url`; without it the proxy environment variables apply. */
  proxyUrl?: string;
  /** Where it came from (file and context), for messages; never a credential. */
  source?: string;
}

export interface Impersonation {
  user: string;
  groups?: string[];
  uid?: string;
  extra?: Record<string, string[]>;
}

/**
 * The subset of @kubernetes/client-node's KubeConfig that kiln reads, so that
 * code holding one (tests, scripts) can still pass it to KubeClient.
 */
export interface KubeConfigLike {
  getCurrentCluster(): { server: string; caData?: string; caFile?: string; skipTLSVerify?: boolean; tlsServerName?: string } | null;
  getCurrentUser(): {
    token?: string;
    certData?: string;
    certFile?: string;
    keyData?: string;
    keyFile?: string;
    username?: string;
    password?: string;
    authProvider?: { name?: string; config?: Record<string, string> };
    exec?: unknown;
  } | null;
}

export type ClusterConfigInput = ClusterConfig | KubeConfigLike;

const isKubeConfigLike = (x: unknown): x is KubeConfigLike => typeof (x as KubeConfigLike)?.getCurrentCluster === 'function';

/** kiln's ClusterConfig from either form. */
export function toClusterConfig(input: ClusterConfigInput): ClusterConfig {
  if (!isKubeConfigLike(input)) return input;
  const cluster = input.getCurrentCluster();
  if (!cluster?.server) throw new NoClusterConfigError('the kubeconfig has no current cluster');
  const user = input.getCurrentUser() ?? {};
  const provider = user.authProvider;
  const staticCreds = !!(user.token || user.certData || user.certFile || user.username || provider?.name === 'tokenFile');
  let exec: ExecConfig | undefined;
  if (user.exec && !staticCreds) {
    try {
      exec = parseExecConfig(user.exec);
    } catch (err) {
      throw new NoClusterConfigError((err as Error).message);
    }
  }
  if (provider && provider.name !== 'tokenFile' && !staticCreds && !exec) {
    throw new NoClusterConfigError(authProviderMessage(provider.name ?? '') ?? `auth provider ${provider.name} is not supported by kiln`);
  }
  return {
    ...(exec ? { exec } : {}),
    ...(provider?.name === 'oidc' && !staticCreds && !exec ? { oidc: { config: { ...provider.config } } } : {}),
    server: cluster.server,
    ca: cluster.caData ? b64(cluster.caData) : cluster.caFile ? readFileSync(cluster.caFile, 'utf8') : undefined,
    insecureSkipTLSVerify: cluster.skipTLSVerify,
    tlsServerName: cluster.tlsServerName,
    token: user.token,
    tokenFile: provider?.name === 'tokenFile' ? provider.config?.['tokenFile'] : undefined,
    cert: user.certData ? b64(user.certData) : user.certFile ? readFileSync(user.certFile, 'utf8') : undefined,
    key: user.keyData ? b64(user.keyData) : user.keyFile ? readFileSync(user.keyFile, 'utf8') : undefined,
    username: user.username,
    password: user.password,
  };
}

const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** What one request authenticates with; pass it back to unauthorized() after a 401. */
export interface Auth {
  /** The Authorization header value. */
  authorization?: string;
  /** PEM client certificate and key, when they come from an exec plugin. */
  cert?: string;
  key?: string;
  /** The exec credential used (what unauthorized() compares). */
  exec?: ExecCredentials;
}

/**
 * The credentials for `config`: a token file read at most once a minute, an
 * exec plugin's credential while it is valid, an oidc id-token refreshed when
 * it expires. Never logs or throws a credential.
 */
export class Credentials {
  private fileToken: { value: string; readAt: number } | undefined;
  readonly execAuth: ExecAuthenticator | undefined;
  readonly oidc: OidcAuthProvider | undefined;

  constructor(private readonly config: ClusterConfig) {
    const staticCreds = !!(config.tokenFile || config.token || (config.username !== undefined && config.password !== undefined) || (config.cert && config.key));
    this.execAuth = config.exec && !staticCreds ? execAuthenticatorFor(config.exec) : undefined;
    this.oidc = config.oidc && !staticCreds && !this.execAuth ? new OidcAuthProvider(config.oidc.config, { persistTo: config.oidc.persistTo, base: config.oidc.base }) : undefined;
  }

  /** Whether a refused credential can be replaced by another (exec plugin, oidc refresh, a token file re-read). */
  get renewable(): boolean {
    return !!(this.execAuth || this.oidc || this.config.tokenFile);
  }

  /** What the next request sends (runs the exec plugin or refreshes the oidc token when needed). */
  async get(): Promise<Auth> {
    if (this.execAuth) {
      let creds: ExecCredentials;
      try {
        creds = await this.execAuth.get();
      } catch (err) {
        throw Object.assign(new Error(`getting credentials: ${(err as Error).message}`), { name: 'CredentialsError' });
      }
      return { ...(creds.token ? { authorization: `Bearer ${creds.token}` } : {}), ...(creds.cert ? { cert: creds.cert, key: creds.key } : {}), exec: creds };
    }
    if (this.oidc) {
      try {
        return { authorization: `Bearer ${await this.oidc.token()}` };
      } catch (err) {
        throw Object.assign(new Error(`getting credentials: ${(err as Error).message}`), { name: 'CredentialsError' });
      }
    }
    const authorization = this.authorization();
    return authorization ? { authorization } : {};
  }

  /** The Authorization header of a token, token file or basic auth (not exec or oidc: see get()). */
  authorization(): string | undefined {
    const c = this.config;
    if (c.tokenFile) {
      const now = Date.now();
      if (!this.fileToken || now - this.fileToken.readAt > TOKEN_FILE_TTL_MS) {
        try {
          this.fileToken = { value: readFileSync(c.tokenFile, 'utf8').trim(), readAt: now };
        } catch (err) {
          // Keep the last token while the file is being rotated; say which file, never what it held.
          if (!this.fileToken) throw new Error(`cannot read token file ${c.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
        }
      }
      return `Bearer ${this.fileToken.value}`;
    }
    if (c.token) return `Bearer ${c.token}`;
    if (c.username !== undefined && c.password !== undefined) return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
    return undefined;
  }

  /**
   * The server answered 401 to a request sent with `used`: forget a token read
   * from a file (it may have rotated), or run the exec plugin again (unless
   * another request already did). A plugin failure here is not thrown: the next
   * request runs it again and reports it.
   */
  async unauthorized(used: Auth = {}): Promise<void> {
    this.fileToken = undefined;
    if (this.execAuth && used.exec) await this.execAuth.unauthorized(used.exec).catch(() => undefined);
  }

  /** Forget a token read from a file (after a 401: it may have rotated). */
  refresh(): void {
    this.fileToken = undefined;
  }
}

/** kubectl's messages for the auth-providers client-go removed in 1.26; undefined for others. */
export function authProviderMessage(name: string): string | undefined {
  if (name === 'gcp') {
    return (
      'the gcp auth-provider was removed from kubectl and client-go in Kubernetes 1.26; use the "gke-gcloud-auth-plugin" exec credential plugin instead ' +
      '(gcloud components install gke-gcloud-auth-plugin, then gcloud container clusters get-credentials writes the exec entry); ' +
      'see https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin'
    );
  }
  if (name === 'azure') {
    return (
      'the azure auth-provider was removed from kubectl and client-go in Kubernetes 1.26; use the "kubelogin" exec credential plugin instead ' +
      '(kubelogin convert-kubeconfig rewrites the entry); see https://azure.github.io/kubelogin'
    );
  }
  return undefined;
}

interface KubeconfigFile {
  'current-context'?: string;
  clusters?: { name: string; cluster: Record<string, unknown> }[];
  users?: { name: string; user: Record<string, unknown> }[];
  contexts?: { name: string; context: { cluster?: string; user?: string; namespace?: string } }[];
}

/** Merges kubeconfig files as kubectl does: the first file to name a cluster, user, context or current-context wins. */
function readKubeconfigs(files: string[]): KubeconfigFile & { origin: Map<unknown, string> } {
  const merged: KubeconfigFile & { origin: Map<unknown, string> } = { clusters: [], users: [], contexts: [], origin: new Map() };
  for (const file of files) {
    let doc: KubeconfigFile;
    try {
      doc = load(readFileSync(file, 'utf8')) ?? {};
    } catch (err) {
      throw new NoClusterConfigError(`kubeconfig ${file}: ${(err as Error).message.split('\n')[0]}`);
    }
    merged['current-context'] ??= doc['current-context'] || undefined;
    for (const k of ['clusters', 'users', 'contexts'] as const) {
      for (const entry of (doc[k] ?? []) as { name: string }[]) {
        if ((merged[k] as { name: string }[]).some((e) => e.name === entry.name)) continue;
        (merged[k] as { name: string }[]).push(entry);
        merged.origin.set(entry, file);
      }
    }
  }
  return merged;
}

function fileOrData(entry: Record<string, unknown>, dataKey: string, fileKey: string, base: string): string | undefined {
  const data = entry[dataKey];
  if (typeof data === 'string' && data) return b64(data);
  const file = entry[fileKey];
  if (typeof file === 'string' && file) return readFileSync(isAbsolute(file) ? file : join(base, file), 'utf8');
  return undefined;
}

export function loadKubeConfig(opts: { kubeconfig?: string; context?: string } = {}): ClusterConfig {
  const files = opts.kubeconfig
    ? [opts.kubeconfig]
    : (process.env['KUBECONFIG'] ?? '')
        .split(':')
        .filter(Boolean)
        .concat(process.env['KUBECONFIG'] ? [] : [join(homedir(), '.kube', 'config')]);
  const present = files.filter((f) => existsSync(f));
  if (opts.kubeconfig && present.length === 0) throw new NoClusterConfigError(`kubeconfig ${opts.kubeconfig} does not exist`);
  if (present.length === 0) {
    if (process.env['KUBERNETES_SERVICE_HOST'] && existsSync(join(SA_DIR, 'token'))) return inCluster();
    throw new NoClusterConfigError('no cluster configuration found: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run inside a cluster');
  }
  const where = present.join(':');
  const kc = readKubeconfigs(present);
  const contextName = opts.context ?? kc['current-context'];
  if (!contextName) throw new NoClusterConfigError(`the kubeconfig ${where} has no current context`);
  const context = kc.contexts!.find((c) => c.name === contextName);
  if (!context) throw new NoClusterConfigError(`the kubeconfig ${where} has no context ${contextName}`);
  const clusterEntry = kc.clusters!.find((c) => c.name === context.context?.cluster);
  const cluster = clusterEntry?.cluster ?? {};
  const server = typeof cluster['server'] === 'string' ? cluster['server'] : '';
  if (!server) throw new NoClusterConfigError(`the kubeconfig ${where} names no cluster server for its current context`);
  const userEntry = kc.users!.find((u) => u.name === context.context?.user);
  const user = userEntry?.user ?? {};
  // Relative file names are relative to the file that holds the entry, as kubectl reads them.
  const clusterBase = dirname(kc.origin.get(clusterEntry) ?? present[0]!);
  const userBase = dirname(kc.origin.get(userEntry) ?? present[0]!);
  const source = `kubeconfig ${where}, context ${contextName}`;
  const str = (o: Record<string, unknown>, k: string) => (typeof o[k] === 'string' && o[k] ? o[k] : undefined);
  const tokenFile = str(user, 'tokenFile');
  const ca = fileOrData(cluster, 'certificate-authority-data', 'certificate-authority', clusterBase);
  const proxyUrl = str(cluster, 'proxy-url');
  if (proxyUrl) {
    try {
      parseProxyUrl(proxyUrl);
    } catch (err) {
      if (err instanceof ProxyConfigError) throw new NoClusterConfigError(`${source}: ${err.message}`);
      throw err;
    }
  }
  const config: ClusterConfig = {
    server,
    ca,
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: str(cluster, 'tls-server-name'),
    token: str(user, 'token'),
    tokenFile: tokenFile ? (isAbsolute(tokenFile) ? tokenFile : join(userBase, tokenFile)) : undefined,
    cert: fileOrData(user, 'client-certificate-data', 'client-certificate', userBase),
    key: fileOrData(user, 'client-key-data', 'client-key', userBase),
    username: str(user, 'username'),
    password: typeof user['password'] === 'string' ? user['password'] : undefined,
    ...(proxyUrl ? { proxyUrl } : {}),
    source,
  };
  // client-go: a token, basic auth or a client certificate in the entry wins over exec and auth-provider.
  const staticCreds = !!(config.token || config.tokenFile || (config.username !== undefined && config.password !== undefined) || (config.cert && config.key));
  if (user['exec'] && !staticCreds) {
    let exec: ExecConfig;
    try {
      exec = parseExecConfig(user['exec']);
    } catch (err) {
      if (err instanceof ExecConfigError) throw new NoClusterConfigError(`${source}: ${err.message}`);
      throw err;
    }
    // clientcmd resolves a command holding a path separator against the kubeconfig's directory.
    if (exec.command.includes('/') && !isAbsolute(exec.command)) exec.command = join(userBase, exec.command);
    const extension = ((cluster['extensions'] ?? []) as { name?: string; extension?: unknown }[]).find?.((e) => e?.name === 'client.authentication.k8s.io/exec')?.extension;
    const info: ExecClusterInfo = {
      server,
      ...(config.tlsServerName ? { 'tls-server-name': config.tlsServerName } : {}),
      ...(config.insecureSkipTLSVerify ? { 'insecure-skip-tls-verify': true } : {}),
      ...(ca ? { 'certificate-authority-data': Buffer.from(ca).toString('base64') } : {}),
      ...(proxyUrl ? { 'proxy-url': proxyUrl } : {}),
      ...(cluster['disable-compression'] === true ? { 'disable-compression': true } : {}),
      ...(extension !== undefined ? { config: extension } : {}),
    };
    config.exec = { ...exec, cluster: info };
  } else if (user['auth-provider'] && !staticCreds) {
    const provider = user['auth-provider'] as { name?: unknown; config?: Record<string, unknown> };
    const name = typeof provider.name === 'string' ? provider.name : '';
    if (name === 'oidc') {
      const cfg: Record<string, string> = {};
      for (const [k, v] of Object.entries(provider.config ?? {})) if (typeof v === 'string') cfg[k] = v;
      const file = kc.origin.get(userEntry);
      config.oidc = { config: cfg, base: userBase, ...(file && userEntry ? { persistTo: { file, user: userEntry.name } } : {}) };
    } else {
      throw new NoClusterConfigError(`${source}: ${authProviderMessage(name) ?? `auth-provider ${JSON.stringify(name)} is not supported (kubectl supports only oidc and exec credential plugins)`}`);
    }
  }
  const as = str(user, 'as');
  const asGroups = user['as-groups'];
  const asUid = str(user, 'as-uid');
  const asExtra = user['as-user-extra'];
  if (as || asGroups || asUid || asExtra) {
    if (!as) throw new NoClusterConfigError(`${source}: as-groups, as-uid and as-user-extra need as (the user to impersonate)`);
    if (asGroups !== undefined && (!Array.isArray(asGroups) || asGroups.some((g) => typeof g !== 'string'))) throw new NoClusterConfigError(`${source}: as-groups must be a list of strings`);
    const extra: Record<string, string[]> = {};
    if (asExtra !== undefined) {
      if (!asExtra || typeof asExtra !== 'object' || Array.isArray(asExtra)) throw new NoClusterConfigError(`${source}: as-user-extra must map keys to lists of strings`);
      for (const [k, v] of Object.entries(asExtra)) {
        if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new NoClusterConfigError(`${source}: as-user-extra.${k} must be a list of strings`);
        extra[k] = v as string[];
      }
    }
    config.impersonate = {
      user: as,
      ...(Array.isArray(asGroups) && asGroups.length ? { groups: asGroups as string[] } : {}),
      ...(asUid ? { uid: asUid } : {}),
      ...(Object.keys(extra).length ? { extra } : {}),
    };
  }
  return config;
}

/** The pod's service account: its token file (re-read as the kubelet rotates it) and the cluster CA. */
function inCluster(): ClusterConfig {
  const host = process.env['KUBERNETES_SERVICE_HOST']!;
  const port = process.env['KUBERNETES_SERVICE_PORT'] ?? '443';
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: existsSync(join(SA_DIR, 'ca.crt')) ? readFileSync(join(SA_DIR, 'ca.crt'), 'utf8') : undefined,
    tokenFile: join(SA_DIR, 'token'),
    source: 'in-cluster service account',
  };
}
