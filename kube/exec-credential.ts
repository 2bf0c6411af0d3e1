/**
 * Exec credential plugins (client.authentication.k8s.io v1 and v1beta1), as
 * client-go's k8s.io/client-go/plugin/pkg/client/auth/exec runs them for
 * kubectl: `aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`,
 * Teleport's and Pinniped's plugins.
 *
 * What client-go does, and so what this does:
 *  - The plugin runs with the process environment, then the kubeconfig's `env`
 *    entries, then KUBERNETES_EXEC_INFO (an ExecCredential whose spec says
 *    whether the session is interactive and, with `provideClusterInfo`, the
 *    cluster: server, CA data, TLS server name, proxy URL, and the cluster's
 *    `client.authentication.k8s.io/exec` extension as `config`).
 *  - `interactiveMode`: Never (stdin never given), IfAvailable (given when it is
 *    a terminal), Always (an error unless stdin is a terminal). Required for v1;
 *    v1beta1 defaults to IfAvailable.
 *  - The answer must be an ExecCredential of the configured apiVersion with a
 *    status holding a token, or a client certificate and key (PEM), or both.
 *  - The credential is kept until its `expirationTimestamp` (forever without
 *    one); a request made after that runs the plugin first, so an expired token
 *    is never sent. After a 401 the plugin runs again, unless another request
 *    already replaced the credential that was refused. One plugin run at a time
 *    per configuration, shared by every client built from it.
 *  - Failures say which executable failed and how; the install hint when it is
 *    not found.
 * Where kiln differs, because nobody may be watching: a non-interactive run
 * that has not finished after `timeoutMs` (60 s by default) is killed and
 * fails, naming the executable and the limit. client-go waits for ever, and a
 * plugin stuck on its own network call (an STS or token endpoint that
 * accepts and never answers) would then hold every request of the process,
 * since all of them wait for the one shared run. An interactive run is not
 * limited: a person may be reading a device-code prompt.
 * Where kiln differs, because it is a controller whose stderr carries JSON log
 * lines: the plugin's stderr is captured (its last 4 KiB) and put in the error
 * when it fails, instead of being copied to kiln's stderr; it is passed through
 * only when the session is interactive (a person is at the terminal, e.g. for a
 * device-code prompt). The token is never in an error or a log line: a stdout
 * that is not an ExecCredential is reported by size, never quoted.
 *
 * Why not @kubernetes/client-node's ExecAuth: measured with bench/auth-memory.ts
 * (Node 24, resident memory and heap growth after GC, median of 5 fresh
 * processes that first load what kiln's controller holds: the ESM loader,
 * node:https/net/tls/crypto/child_process, js-yaml), its deep import
 * `dist/exec_auth.js` costs ~0 MiB RSS and 0.03 MiB heap (about 5.5 MiB in a
 * bare process, nearly all of it the ESM loader, which is where the "~4 MiB"
 * figure came from). Memory did not rule it out; behaviour did: it sets no
 * KUBERNETES_EXEC_INFO, ignores interactiveMode and provideClusterInfo, does
 * not check the returned apiVersion, cannot be told to drop a credential after
 * a 401, and reports a failure as the bare stderr text. Wrapping it would have
 * meant rewriting all of that around its 40-line spawn, so this module
 * implements the protocol. kiln's kubeconfig.ts with this file, oidc.ts and
 * proxy.ts, bundled, measure 0.38 MiB RSS and 0.18 MiB heap the same way.
 */
import { spawn } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';

export const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'] as const;
export type ExecInteractiveMode = 'Never' | 'IfAvailable' | 'Always';

/** The cluster as an exec plugin sees it in KUBERNETES_EXEC_INFO (provideClusterInfo). */
export interface ExecClusterInfo {
  server: string;
  'tls-server-name'?: string;
  'insecure-skip-tls-verify'?: boolean;
  /** base64 of the PEM CA bundle, as client-go encodes []byte */
  'certificate-authority-data'?: string;
  'proxy-url'?: string;
  'disable-compression'?: boolean;
  /** the cluster's `client.authentication.k8s.io/exec` extension */
  config?: unknown;
}

/** A kubeconfig user's `exec` stanza, validated. */
export interface ExecConfig {
  apiVersion: (typeof EXEC_API_VERSIONS)[number];
  /** As written, or resolved against the kubeconfig's directory when it holds a path separator. */
  command: string;
  args: string[];
  env: { name: string; value: string }[];
  interactiveMode: ExecInteractiveMode;
  provideClusterInfo: boolean;
  installHint?: string;
  /** Filled by the loader; sent only with provideClusterInfo. */
  cluster?: ExecClusterInfo;
}

export class ExecConfigError extends Error {}

/** Validates a kubeconfig `exec` stanza as clientcmd does (messages name the problem, never a value from `env`). */
export function parseExecConfig(raw: unknown): ExecConfig {
  if (!raw || typeof raw !== 'object') throw new ExecConfigError('exec: must be a mapping');
  const e = raw as Record<string, unknown>;
  const apiVersion = e['apiVersion'];
  if (apiVersion === 'client.authentication.k8s.io/v1alpha1') {
    throw new ExecConfigError('exec plugin: apiVersion client.authentication.k8s.io/v1alpha1 was removed in Kubernetes 1.24; use client.authentication.k8s.io/v1 (or v1beta1)');
  }
  if (typeof apiVersion !== 'string' || !(EXEC_API_VERSIONS as readonly string[]).includes(apiVersion)) {
    throw new ExecConfigError(`exec plugin: invalid apiVersion ${JSON.stringify(apiVersion ?? '')} (expected ${EXEC_API_VERSIONS.join(' or ')})`);
  }
  const command = e['command'];
  if (typeof command !== 'string' || !command) throw new ExecConfigError('exec plugin: command must be specified');
  const args = e['args'] ?? [];
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new ExecConfigError('exec plugin: args must be a list of strings');
  const env = e['env'] ?? [];
  if (!Array.isArray(env)) throw new ExecConfigError('exec plugin: env must be a list of {name, value}');
  for (const [i, v] of env.entries()) {
    if (!v || typeof v !== 'object' || typeof (v as { name?: unknown }).name !== 'string' || !(v as { name: string }).name) {
      throw new ExecConfigError(`exec plugin: env[${i}] needs a name`);
    }
    if (typeof (v as { value?: unknown }).value !== 'string') throw new ExecConfigError(`exec plugin: env[${i}] (${(v as { name: string }).name}) needs a string value`);
  }
  let mode = e['interactiveMode'];
  if (mode === undefined || mode === '') {
    if (apiVersion === 'client.authentication.k8s.io/v1')
      throw new ExecConfigError('exec plugin: interactiveMode must be specified for client.authentication.k8s.io/v1 (Never, IfAvailable or Always)');
    mode = 'IfAvailable';
  }
  if (mode !== 'Never' && mode !== 'IfAvailable' && mode !== 'Always') throw new ExecConfigError(`exec plugin: invalid interactiveMode ${JSON.stringify(mode)} (Never, IfAvailable or Always)`);
  return {
    apiVersion: apiVersion as ExecConfig['apiVersion'],
    command,
    args: args as string[],
    env: (env as { name: string; value: string }[]).map(({ name, value }) => ({ name, value })),
    interactiveMode: mode,
    provideClusterInfo: e['provideClusterInfo'] === true,
    ...(typeof e['installHint'] === 'string' && e['installHint'] ? { installHint: e['installHint'] } : {}),
  };
}

/** What a plugin returned: use it until `expiresAt` (ms since the epoch; never expires when absent). */
export interface ExecCredentials {
  token?: string;
  /** PEM client certificate and key */
  cert?: string;
  key?: string;
  expiresAt?: number;
}

export class ExecPluginError extends Error {
  override name = 'ExecPluginError';
}

const INSTALL_HINT_HELP = `

It looks like you are trying to use a client-go credential plugin that is not installed.

To learn more about this feature, consult the documentation available at:
      https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins`;

const STDERR_TAIL = 4096;
const STDOUT_MAX = 1 << 20;

export interface ExecAuthenticatorOptions {
  now?: () => number;
  /** whether stdin is a terminal (process.stdin.isTTY) */
  isTerminal?: () => boolean;
  environ?: () => NodeJS.ProcessEnv;
  /** A non-interactive run is killed after this long (default 60 s); see the module comment. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;

export class ExecAuthenticator {
  private cached: ExecCredentials | undefined;
  private running: Promise<ExecCredentials> | undefined;
  /** Plugin runs so far (tests and metrics read it). */
  runs = 0;
  private readonly now: () => number;
  private readonly isTerminal: () => boolean;
  private readonly environ: () => NodeJS.ProcessEnv;
  private readonly timeoutMs: number;

  constructor(
    readonly config: ExecConfig,
    opts: ExecAuthenticatorOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.now = opts.now ?? Date.now;
    this.isTerminal = opts.isTerminal ?? (() => process.stdin.isTTY === true);
    this.environ = opts.environ ?? (() => process.env);
  }

  /** The credential to send: the cached one unless it has expired, else a fresh one from the plugin. */
  async get(): Promise<ExecCredentials> {
    const c = this.cached;
    if (c && (c.expiresAt === undefined || this.now() <= c.expiresAt)) return c;
    return this.refresh();
  }

  /**
   * The server answered 401 to a request sent with `used`: run the plugin again,
   * unless the credential was already replaced since.
   */
  async unauthorized(used: ExecCredentials): Promise<void> {
    if (this.running) {
      await this.running.catch(() => undefined);
      return;
    }
    if (used !== this.cached) return;
    await this.refresh();
  }

  private refresh(): Promise<ExecCredentials> {
    // One plugin run at a time (it may be interactive): later callers share it.
    this.running ??= this.run().then(
      (creds) => {
        this.running = undefined;
        this.cached = creds;
        return creds;
      },
      (err: unknown) => {
        this.running = undefined;
        throw err;
      },
    );
    return this.running;
  }

  /** Mode, environment and KUBERNETES_EXEC_INFO for one run (exported for tests through execEnvironment). */
  private async run(): Promise<ExecCredentials> {
    const { env, interactive } = execEnvironment(this.config, this.environ(), this.isTerminal());
    this.runs++;
    const { command, args } = this.config;
    const out = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string; error?: NodeJS.ErrnoException; timedOut?: boolean }>((resolve) => {
      const child = spawn(command, args, { env, stdio: [interactive ? 'inherit' : 'ignore', 'pipe', interactive ? 'inherit' : 'pipe'] });
      const stdout: Buffer[] = [];
      let size = 0;
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => {
        size += d.length;
        if (size <= STDOUT_MAX) stdout.push(d);
      });
      child.stderr?.setEncoding('utf8').on('data', (d: string) => {
        stderr = (stderr + d).slice(-STDERR_TAIL);
      });
      let error: NodeJS.ErrnoException | undefined;
      child.on('error', (err) => (error = err));
      const timer = interactive
        ? undefined
        : setTimeout(() => {
            child.kill('SIGKILL');
            // Not waiting for 'close': a process the plugin started may still hold its stdout open.
            child.stdout!.destroy();
            child.stderr?.destroy();
            resolve({ code: null, signal: 'SIGKILL', stdout: Buffer.alloc(0), stderr, timedOut: true });
          }, this.timeoutMs);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout: Buffer.concat(stdout), stderr, error });
      });
    });
    const tail = out.stderr.trim() ? `; its stderr: ${out.stderr.trim()}` : '';
    if (out.timedOut) throw new ExecPluginError(`exec: executable ${command} did not finish within ${this.timeoutMs / 1000} s and was killed${tail}`);
    if (out.error) {
      if (out.error.code === 'ENOENT') {
        let msg = `exec: executable ${command} not found${INSTALL_HINT_HELP}`;
        if (this.config.installHint) msg += `\n\n${this.config.installHint}`;
        throw new ExecPluginError(msg);
      }
      throw new ExecPluginError(`exec: executable ${command}: ${out.error.code ?? out.error.message}`);
    }
    if (out.signal) throw new ExecPluginError(`exec: executable ${command} was killed by ${out.signal}${tail}`);
    if (out.code !== 0) throw new ExecPluginError(`exec: executable ${command} failed with exit code ${out.code}${tail}`);
    return decodeExecCredential(out.stdout.toString('utf8'), this.config.apiVersion, command);
  }
}

/** The plugin's environment (process, then the kubeconfig's env, then KUBERNETES_EXEC_INFO) and whether it runs interactively. */
export function execEnvironment(config: ExecConfig, environ: NodeJS.ProcessEnv, stdinIsTerminal: boolean): { env: NodeJS.ProcessEnv; interactive: boolean } {
  let interactive: boolean;
  switch (config.interactiveMode) {
    case 'Never':
      interactive = false;
      break;
    case 'IfAvailable':
      interactive = stdinIsTerminal;
      break;
    case 'Always':
      if (!stdinIsTerminal) throw new ExecPluginError('exec plugin cannot support interactive mode: standard input is not a terminal');
      interactive = true;
      break;
  }
  const info = {
    kind: 'ExecCredential',
    apiVersion: config.apiVersion,
    spec: { ...(config.provideClusterInfo && config.cluster ? { cluster: config.cluster } : {}), interactive },
  };
  const env: NodeJS.ProcessEnv = { ...environ };
  for (const { name, value } of config.env) env[name] = value;
  env['KUBERNETES_EXEC_INFO'] = JSON.stringify(info);
  return { env, interactive };
}

/** Checks a plugin's stdout as client-go does. Never quotes it: it may hold a credential. */
export function decodeExecCredential(stdout: string, apiVersion: string, command = 'plugin'): ExecCredentials {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new ExecPluginError(`exec: decoding stdout of ${command}: not a JSON ExecCredential (${Buffer.byteLength(stdout)} bytes)`);
  }
  const d = (doc && typeof doc === 'object' ? doc : {}) as { apiVersion?: unknown; kind?: unknown; status?: unknown };
  if (d.kind !== 'ExecCredential') throw new ExecPluginError(`exec: decoding stdout of ${command}: kind is ${JSON.stringify(typeof d.kind === 'string' ? d.kind : '')}, not ExecCredential`);
  if (d.apiVersion !== apiVersion) {
    throw new ExecPluginError(`exec plugin is configured to use API version ${apiVersion}, plugin returned version ${typeof d.apiVersion === 'string' ? d.apiVersion : '(none)'}`);
  }
  if (!d.status || typeof d.status !== 'object') throw new ExecPluginError("exec plugin didn't return a status field");
  const s = d.status as Record<string, unknown>;
  const str = (k: string) => (typeof s[k] === 'string' ? s[k] : '');
  const token = str('token');
  const cert = str('clientCertificateData');
  const key = str('clientKeyData');
  if (!token && !cert && !key) throw new ExecPluginError("exec plugin didn't return a token or cert/key pair");
  if (!cert !== !key) throw new ExecPluginError('exec plugin returned only certificate or key, not both');
  if (cert) {
    try {
      new X509Certificate(cert);
      createPrivateKey(key);
    } catch (err) {
      throw new ExecPluginError(`exec plugin: failed parsing client key/certificate: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  let expiresAt: number | undefined;
  const exp = s['expirationTimestamp'];
  if (exp !== undefined && exp !== null && exp !== '') {
    expiresAt = typeof exp === 'string' ? Date.parse(exp) : NaN;
    if (Number.isNaN(expiresAt)) throw new ExecPluginError(`exec: decoding stdout of ${command}: expirationTimestamp is not an RFC 3339 time`);
  }
  return { ...(token ? { token } : {}), ...(cert ? { cert, key } : {}), ...(expiresAt !== undefined ? { expiresAt } : {}) };
}

/**
 * One authenticator per plugin configuration and cluster, shared by every
 * client built from it (client-go keeps the same global cache), so the
 * controller, its leader elector and the agent's clients run the plugin once.
 */
const authenticators = new Map<string, ExecAuthenticator>();
export function execAuthenticatorFor(config: ExecConfig): ExecAuthenticator {
  const key = JSON.stringify(config);
  let a = authenticators.get(key);
  if (!a) {
    a = new ExecAuthenticator(config);
    authenticators.set(key, a);
  }
  return a;
}
