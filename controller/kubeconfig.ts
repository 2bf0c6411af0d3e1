/**
 * Finds the cluster to talk to: --kubeconfig, then $KUBECONFIG or
 * ~/.kube/config, then the in-cluster service account. It never falls back to
 * http://localhost:8080.
 *
 * kiln reads kubeconfig files itself (no @kubernetes/client-node in the
 * controller: importing it costs ~80 MiB of memory). Supported credentials:
 * a bearer token (inline or `tokenFile`, re-read as it rotates), a client
 * certificate and key (inline or files), basic auth; the CA inline or from a
 * file, insecure-skip-tls-verify, tls-server-name. Exec credential plugins and
 * auth providers are refused with a clear error.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { load } from 'js-yaml';

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
  /** Where it came from (file and context), for messages; never a credential. */
  source?: string;
}

/**
 * The subset of @kubernetes/client-node's KubeConfig that kiln reads, so that
 * code holding one (tests, scripts) can still pass it to KubeClient.
 */
export interface KubeConfigLike {
  getCurrentCluster(): { server: string; caData?: string; caFile?: string; skipTLSVerify?: boolean; tlsServerName?: string } | null;
  getCurrentUser(): {
    token?: string; certData?: string; certFile?: string; keyData?: string; keyFile?: string; username?: string; password?: string;
    authProvider?: { name?: string; config?: Record<string, string> }; exec?: unknown;
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
  if (user.exec) throw new NoClusterConfigError('exec credential plugins are not supported by kiln; use a token or a client certificate');
  const provider = user.authProvider;
  if (provider && provider.name !== 'tokenFile') throw new NoClusterConfigError(`auth provider ${provider.name} is not supported by kiln; use a token or a client certificate`);
  return {
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

/** The Authorization header for `config`, reading a token file at most once a minute. */
export class Credentials {
  private fileToken: { value: string; readAt: number } | undefined;

  constructor(private readonly config: ClusterConfig) {}

  authorization(): string | undefined {
    const c = this.config;
    if (c.tokenFile) {
      const now = Date.now();
      if (!this.fileToken || now - this.fileToken.readAt > TOKEN_FILE_TTL_MS) {
        try {
          this.fileToken = { value: readFileSync(c.tokenFile, 'utf8').trim(), readAt: now };
        } catch (err) {
          // Keep the last token while the file is being rotated; say which file, never what it held.
          if (!this.fileToken) throw new Error(`cannot read token file ${c.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        }
      }
      return `Bearer ${this.fileToken!.value}`;
    }
    if (c.token) return `Bearer ${c.token}`;
    if (c.username !== undefined && c.password !== undefined) return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
    return undefined;
  }

  /** Forget a token read from a file (after a 401: it may have rotated). */
  refresh(): void {
    this.fileToken = undefined;
  }
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
      doc = (load(readFileSync(file, 'utf8')) ?? {}) as KubeconfigFile;
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
    : (process.env['KUBECONFIG'] ?? '').split(':').filter(Boolean).concat(process.env['KUBECONFIG'] ? [] : [join(homedir(), '.kube', 'config')]);
  const present = files.filter((f) => existsSync(f));
  if (opts.kubeconfig && present.length === 0) throw new NoClusterConfigError(`kubeconfig ${opts.kubeconfig} does not exist`);
  if (present.length === 0) {
    if (process.env['KUBERNETES_SERVICE_HOST'] && existsSync(join(SA_DIR, 'token'))) return inCluster();
    throw new NoClusterConfigError(
      'no cluster configuration found: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run inside a cluster',
    );
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
  if (user['exec']) throw new NoClusterConfigError(`${source}: exec credential plugins are not supported by kiln; use a token or a client certificate`);
  if (user['auth-provider']) throw new NoClusterConfigError(`${source}: auth providers are not supported by kiln; use a token or a client certificate`);
  const tokenFile = typeof user['tokenFile'] === 'string' && user['tokenFile'] ? user['tokenFile'] : undefined;
  return {
    server,
    ca: fileOrData(cluster, 'certificate-authority-data', 'certificate-authority', clusterBase),
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: typeof cluster['tls-server-name'] === 'string' ? cluster['tls-server-name'] : undefined,
    token: typeof user['token'] === 'string' && user['token'] ? user['token'] : undefined,
    tokenFile: tokenFile ? (isAbsolute(tokenFile) ? tokenFile : join(userBase, tokenFile)) : undefined,
    cert: fileOrData(user, 'client-certificate-data', 'client-certificate', userBase),
    key: fileOrData(user, 'client-key-data', 'client-key', userBase),
    username: typeof user['username'] === 'string' ? user['username'] : undefined,
    password: typeof user['password'] === 'string' ? user['password'] : undefined,
    source,
  };
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
