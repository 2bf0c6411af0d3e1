/**
 * A real Kubernetes control plane for tests: etcd, kube-apiserver and
 * kube-controller-manager built from the Go module proxy by
 * scripts/build-control-plane.sh, run on free loopback ports in a temp dir.
 *
 * Only node: builtins and `yaml` are used (no Kubernetes client library): the
 * handle drives the cluster with the kubectl binary built alongside.
 *
 * Authentication:
 *  - the admin uses a static bearer token (`--token-auth-file`, group
 *    system:masters);
 *  - further identities are minted at run time as client certificates
 *    (CN=user, O=group…) signed by a CA this harness generates and passes as
 *    `--client-ca-file`. Anyone holding the control plane's `dir` can mint
 *    them (see ./connect.ts for test workers).
 *
 * Lifetime: every server is started through a small bash wrapper that kills it
 * when the owning Node process goes away, so a crashed test run leaves no
 * etcd/apiserver behind; stop() and process exit/SIGINT/SIGTERM handlers kill
 * them eagerly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { freePorts } from './ports.js';
import { run, runBuildScript, type RunResult } from './run.js';

export const KUBE_VERSION = 'v1.34.4';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD_SCRIPT = path.join(REPO_ROOT, 'scripts', 'build-control-plane.sh');
const BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl'] as const;

/** Controllers run by default: enough for GC, namespaces, StatefulSets/Deployments and service accounts. */
export const DEFAULT_CONTROLLERS = [
  'garbage-collector-controller',
  'namespace-controller',
  'statefulset-controller',
  'deployment-controller',
  'replicaset-controller',
  // Completes Jobs from their pods' phases (the stand-in kubelet writes those).
  'job-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
];

/** What pods on a real node need beyond the defaults. */
export const NODE_CONTROLLERS = [
  ...DEFAULT_CONTROLLERS,
  'endpointslice-controller',
  'endpoints-controller',
  'persistentvolume-binder-controller',
  'persistentvolume-protection-controller',
  'persistentvolumeclaim-protection-controller',
  'root-ca-certificate-publisher-controller',
  // Lifts the not-ready taint a kubelet registers with once the node is Ready.
  'node-lifecycle-controller',
  'ttl-after-finished-controller',
];

export interface KubectlOptions {
  /** kubeconfig to use instead of the admin one */
  kubeconfig?: string;
  /** written to kubectl's stdin */
  input?: string;
  /** kill kubectl after this long (default 60 s) */
  timeoutMs?: number;
  /** extra environment variables */
  env?: Record<string, string>;
}

export type KubectlResult = RunResult;

export interface Identity {
  name: string;
  groups: string[];
  /** self-contained kubeconfig file (client cert, key and server CA embedded) */
  kubeconfig: string;
  /** PEM files, for HTTP clients that take them directly */
  certFile: string;
  keyFile: string;
}

/** Everything needed to reach a running control plane; plain data, safe to pass between processes. */
export interface ControlPlaneInfo {
  /** admin kubeconfig file (bearer token, system:masters) */
  kubeconfig: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** working directory: logs, certs, etcd data, minted identities */
  dir: string;
  /** directory holding etcd, kube-apiserver, kube-controller-manager, kubectl */
  binDir: string;
  version: string;
  /** CA bundle that verifies the apiserver's serving certificate */
  caFile: string;
  adminToken: string;
}

export interface ControlPlaneClient extends ControlPlaneInfo {
  /** Mint a client-certificate identity; RBAC sees user `name` in `groups`. */
  mintIdentity(name: string, groups?: string[]): Promise<Identity>;
  /** Run kubectl (admin kubeconfig unless opts.kubeconfig); never throws on a non-zero exit. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /** Like kubectl(), but throws with stderr when the exit code is not 0; returns stdout. */
  kubectlOk(args: string[], opts?: KubectlOptions): Promise<string>;
  /** `kubectl apply --server-side` the files, then wait until every CRD in them is Established. */
  installCrds(paths: string[]): Promise<void>;
  info(): ControlPlaneInfo;
}

export interface ControlPlane extends ControlPlaneClient {
  /** pids of etcd, kube-apiserver and (if started) kube-controller-manager */
  pids: Record<string, number>;
  /** ms from startControlPlane() to ready */
  startupMs: number;
  /**
   * Stop kube-apiserver (SIGTERM, wait for it to exit), stay down `downMs`
   * (default 2000), start it again with the same arguments and port, and wait
   * for /readyz. etcd and the controller manager keep running. Note: while
   * clients hold watches open, kube-apiserver does not exit on SIGTERM (it waits
   * for them, up to its 60 s shutdown timeout), so it is SIGKILLed after
   * stop()'s 10 s grace and those clients see their connections reset.
   */
  restartApiServer(opts?: { downMs?: number }): Promise<void>;
  /** Kill every server; removes `dir` unless it was given or KILN_KEEP_CONTROLPLANE=1. */
  stop(): Promise<void>;
}

export interface StartOptions {
  binDir?: string;
  /** working directory (created if missing); default a fresh temp dir, removed on stop() */
  dir?: string;
  /** CRD files (or directories) installed before the controller manager starts */
  crdPaths?: string[];
  /** start kube-controller-manager (default true) */
  controllerManager?: boolean;
  controllers?: string[];
  /** keep `dir` after stop() (default: keep only when `dir` was given) */
  keepDir?: boolean;
  /** how long to wait for each server (default 60 s) */
  readyTimeoutMs?: number;
  /** pid whose death kills the servers (default this process) */
  ownerPid?: number;
  /** extra kube-apiserver flags */
  apiserverArgs?: string[];
  /**
   * Serve a real node (test/harness/node.ts): the API server listens on every
   * address and advertises `advertiseAddress` (the node bridge's gateway, which
   * pods reach) as the `kubernetes` Service's endpoint; the ServiceAccount
   * admission plugin mounts tokens into pods; the controller manager also runs
   * what pods need (EndpointSlices, volume binding, kube-root-ca.crt).
   */
  node?: { advertiseAddress: string };
}

// ---------------------------------------------------------------------------
// binaries

export function defaultCacheRoot(): string {
  return process.env.KILN_CACHE || path.join(os.homedir(), '.cache', 'kiln');
}

export function defaultBinDir(): string {
  return path.join(defaultCacheRoot(), 'controlplane', KUBE_VERSION, 'bin');
}

/** Directory of CRDs the build script copies from Go modules (VolumeSnapshot*). */
export function extraCrdDir(): string {
  return path.join(defaultCacheRoot(), 'controlplane', KUBE_VERSION, 'crds');
}

/**
 * CRDs a test cluster gets by default: the repo's crds/*.yaml, plus the CRDs
 * the build script fetched (VolumeSnapshot*) unless the repo has a file of
 * the same name. KILN_CRD_PATHS (':'-separated; empty for none) overrides.
 */
export function defaultCrdPaths(): string[] {
  const override = process.env.KILN_CRD_PATHS;
  if (override !== undefined) return override.split(path.delimiter).filter(Boolean);
  const yamlIn = (dir: string) =>
    existsSync(dir)
      ? readdirSync(dir)
          .filter((f) => /\.ya?ml$/.test(f))
          .sort()
          .map((f) => path.join(dir, f))
      : [];
  const own = yamlIn(path.join(REPO_ROOT, 'crds'));
  const names = new Set(own.map((p) => path.basename(p)));
  return [...own, ...yamlIn(extraCrdDir()).filter((p) => !names.has(path.basename(p)))];
}

/**
 * Return the directory holding the control-plane binaries, running
 * scripts/build-control-plane.sh (under a second when they are up to date; a
 * cold build takes many minutes). KILN_CONTROLPLANE_BIN points at a directory
 * of ready binaries instead and skips the script.
 */
export async function ensureBinaries(): Promise<string> {
  const override = process.env.KILN_CONTROLPLANE_BIN;
  if (override) {
    const missing = BINARIES.filter((b) => !existsSync(path.join(override, b)));
    if (missing.length) throw new Error(`KILN_CONTROLPLANE_BIN=${override} lacks ${missing.join(', ')}`);
    return override;
  }
  return runBuildScript(BUILD_SCRIPT);
}

// ---------------------------------------------------------------------------
// small helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runOk(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

async function tail(file: string, lines = 40): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

/** GET a URL; resolves with the status code, or 0 when the connection fails. */
export function probe(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, { headers, rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

// ---------------------------------------------------------------------------
// certificates (openssl CLI)

function subjectPart(key: string, value: string): string {
  // openssl -subj escaping: backslash-escape '/', '+', '=', ',' and '\'.
  return `/${key}=${value.replace(/[\\/+=,]/g, (c) => `\\${c}`)}`;
}

/** `openssl req -x509 -new` with a new P-256 key: the CA and every client certificate. */
async function newEcCertificate(args: string[]): Promise<void> {
  await runOk('openssl', ['req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', ...args]);
}

async function createCa(dir: string): Promise<{ caCert: string; caKey: string }> {
  const caCert = path.join(dir, 'client-ca.crt');
  const caKey = path.join(dir, 'client-ca.key');
  await newEcCertificate([
    '-keyout',
    caKey,
    '-out',
    caCert,
    '-days',
    '3650',
    '-subj',
    '/CN=kiln-test-client-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { caCert, caKey };
}

/** A client certificate from the test client CA in `dir`: RBAC sees user `name` in `groups`. Writes `<base>.crt` and `<base>.key`. */
async function signClientCert(dir: string, base: string, name: string, groups: string[]): Promise<void> {
  const subj = [subjectPart('CN', name), ...groups.map((g) => subjectPart('O', g))].join('');
  await newEcCertificate([
    '-CA',
    path.join(dir, 'client-ca.crt'),
    '-CAkey',
    path.join(dir, 'client-ca.key'),
    '-keyout',
    `${base}.key`,
    '-out',
    `${base}.crt`,
    '-days',
    '365',
    '-subj',
    subj,
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    '-addext',
    'keyUsage=critical,digitalSignature',
    '-addext',
    'extendedKeyUsage=clientAuth',
  ]);
}

function kubeconfigYaml(opts: { server: string; caData: string; user: string; token?: string; certData?: string; keyData?: string }): string {
  const user: Record<string, string> = {};
  if (opts.token) user.token = opts.token;
  if (opts.certData) user['client-certificate-data'] = opts.certData;
  if (opts.keyData) user['client-key-data'] = opts.keyData;
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kiln-test', cluster: { server: opts.server, 'certificate-authority-data': opts.caData } }],
    users: [{ name: opts.user, user }],
    contexts: [{ name: 'kiln-test', context: { cluster: 'kiln-test', user: opts.user } }],
    'current-context': 'kiln-test',
    preferences: {},
  });
}

// ---------------------------------------------------------------------------
// client handle (shared with ./connect.ts)

/** Build a handle on an already running control plane from its plain-data description. */
export function attachControlPlane(info: ControlPlaneInfo): ControlPlaneClient {
  const kubectlBin = path.join(info.binDir, 'kubectl');
  let minted = 0;

  const kubectl = (args: string[], opts: KubectlOptions = {}) =>
    run(kubectlBin, ['--kubeconfig', opts.kubeconfig ?? info.kubeconfig, ...args], {
      input: opts.input,
      timeoutMs: opts.timeoutMs,
      env: { ...process.env, KUBECONFIG: '', ...opts.env },
    });

  const kubectlOk = async (args: string[], opts: KubectlOptions = {}) => {
    const r = await kubectl(args, opts);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  };

  return {
    ...info,
    info: () => ({ ...info }),
    kubectl,
    kubectlOk,

    async mintIdentity(name: string, groups: string[] = []): Promise<Identity> {
      const idDir = path.join(info.dir, 'identities');
      await mkdir(idDir, { recursive: true });
      const base = path.join(idDir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}-${process.pid}-${++minted}-${randomBytes(3).toString('hex')}`);
      const certFile = `${base}.crt`;
      const keyFile = `${base}.key`;
      await signClientCert(info.dir, base, name, groups);
      const kubeconfig = `${base}.kubeconfig`;
      await writeFile(
        kubeconfig,
        kubeconfigYaml({
          server: info.server,
          caData: Buffer.from(await readFile(info.caFile)).toString('base64'),
          user: name,
          certData: Buffer.from(await readFile(certFile)).toString('base64'),
          keyData: Buffer.from(await readFile(keyFile)).toString('base64'),
        }),
        { mode: 0o600 },
      );
      return { name, groups, kubeconfig, certFile, keyFile };
    },

    async installCrds(paths: string[]): Promise<void> {
      if (!paths.length) return;
      for (const p of paths) await stat(p); // fail early with ENOENT
      const files = paths.flatMap((p) => ['-f', p]);
      await kubectlOk(['apply', '--server-side', '--force-conflicts', ...files], { timeoutMs: 120_000 });
      await kubectlOk(['wait', '--for', 'condition=established', '--timeout', '60s', ...files], {
        timeoutMs: 90_000,
      });
    },
  };
}

// ---------------------------------------------------------------------------
// process management

/*
 * Wrapper that runs a server so that it dies with its owner: a background loop
 * polls the owner pid and the server pid, and TERMs (then KILLs) the server
 * when the owner is gone. `exec` keeps the server's pid equal to the one Node
 * sees. argv: owner-pid, binary, args...
 */
const WRAPPER = `
owner=$1; shift
self=$$
(
  trap '' INT HUP
  while kill -0 "$owner" 2>/dev/null && kill -0 "$self" 2>/dev/null; do sleep 1; done
  if kill -0 "$self" 2>/dev/null; then
    kill -TERM "$self" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$self" 2>/dev/null || exit 0; sleep 1; done
    kill -KILL "$self" 2>/dev/null
  fi
) </dev/null >/dev/null 2>&1 &
exec "$@"
`;

export interface Server {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
  exitCode?: number | null;
}

const live = new Set<Server>();
let handlersInstalled = false;

function killAllSync(signal: NodeJS.Signals) {
  for (const s of live) {
    if (s.child.pid && s.exitCode === undefined) {
      try {
        process.kill(-s.child.pid, signal); // whole process group: server + its watchdog
      } catch {
        try {
          process.kill(s.child.pid, signal);
        } catch {
          /* gone */
        }
      }
    }
  }
}

function installExitHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => killAllSync('SIGKILL'));
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      killAllSync('SIGTERM');
      process.removeListener(sig, handler);
      // Let other handlers run; if there are none, re-raise to get the default exit.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

export async function startServer(name: string, bin: string, args: string[], dir: string, ownerPid: number): Promise<Server> {
  const log = path.join(dir, `${name}.log`);
  const fh = await open(log, 'a');
  const child = spawn('bash', ['-c', WRAPPER, 'kiln-wrapper', String(ownerPid), bin, ...args], {
    cwd: dir,
    stdio: ['ignore', fh.fd, fh.fd],
    detached: true, // own process group: a terminal ^C is handled by us, and stop() can kill the group
  });
  await fh.close();
  const server: Server = {
    name,
    child,
    log,
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        server.exitCode = code ?? (signal ? -1 : null);
        live.delete(server);
        resolve(server.exitCode);
      });
      child.on('error', () => {
        server.exitCode = -1;
        live.delete(server);
        resolve(-1);
      });
    }),
  };
  live.add(server);
  child.unref();
  return server;
}

export async function stopServer(s: Server, graceMs = 10_000) {
  if (s.exitCode !== undefined || !s.child.pid) return;
  try {
    process.kill(-s.child.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([s.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs)))]);
  clearTimeout(timer);
  if (!done) {
    try {
      process.kill(-s.child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await s.exited;
  }
}

export async function waitReady(s: Server, check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (s.exitCode !== undefined) {
      throw new Error(`${s.name} exited (code ${s.exitCode}) before ${what}; log ${s.log}:\n${await tail(s.log)}`);
    }
    if (await check()) return;
    if (Date.now() > deadline) {
      throw new Error(`${s.name} not ${what} after ${timeoutMs} ms; log ${s.log}:\n${await tail(s.log)}`);
    }
    await sleep(150);
  }
}

// ---------------------------------------------------------------------------
// start

const TMP_PREFIX = 'kiln-cp-';
const ownerPidOf = (opts: StartOptions) => opts.ownerPid ?? process.pid;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove temp dirs left by crashed runs (their owner pid is gone). */
async function removeStaleDirs(): Promise<void> {
  const tmp = os.tmpdir();
  let entries: string[];
  try {
    entries = readdirSync(tmp).filter((e) => e.startsWith(TMP_PREFIX));
  } catch {
    return;
  }
  for (const e of entries) {
    const dir = path.join(tmp, e);
    try {
      const owner = Number(readFileSync(path.join(dir, 'owner.pid'), 'utf8').trim());
      if (owner > 0 && !pidAlive(owner)) await rm(dir, { recursive: true, force: true });
    } catch {
      /* no owner file (yet): leave it */
    }
  }
}

export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  // Free ports are picked by binding to port 0 and closing; another process can
  // grab one before a server binds it. Retry on that race.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !/address already in use/i.test(String(err))) throw err;
    }
  }
}

async function startOnce(opts: StartOptions): Promise<ControlPlane> {
  const t0 = Date.now();
  installExitHandlers();
  const binDir = opts.binDir ?? (await ensureBinaries());
  for (const b of BINARIES) {
    if (!existsSync(path.join(binDir, b))) throw new Error(`missing ${b} in ${binDir} (run npm run controlplane:build)`);
  }
  const ownDir = !opts.dir;
  if (ownDir) await removeStaleDirs();
  const dir = opts.dir ? path.resolve(opts.dir) : await mkdtemp(path.join(os.tmpdir(), TMP_PREFIX));
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'owner.pid'), `${ownerPidOf(opts)}\n`);
  const keepDir = opts.keepDir ?? (!ownDir || process.env.KILN_KEEP_CONTROLPLANE === '1');
  const timeout = opts.readyTimeoutMs ?? 60_000;
  const ownerPid = ownerPidOf(opts);
  const servers: Server[] = [];

  const stopAll = async () => {
    // reverse start order: controller manager, apiserver, etcd
    for (const s of [...servers].reverse()) await stopServer(s);
  };

  try {
    const [etcdPort, peerPort, apiPort, kcmPort] = await freePorts(4);
    // A node reaches the API server at the address it advertises, the only one its self-signed certificate names besides the Service IP.
    const server = `https://${opts.node?.advertiseAddress ?? '127.0.0.1'}:${apiPort}`;
    const adminToken = randomBytes(24).toString('hex');
    const certDir = path.join(dir, 'apiserver-certs');
    await mkdir(certDir, { recursive: true });

    // etcd first; key material is generated while it starts.
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const etcd = await startServer(
      'etcd',
      path.join(binDir, 'etcd'),
      [
        '--name',
        'kiln',
        '--data-dir',
        path.join(dir, 'etcd'),
        '--listen-client-urls',
        etcdUrl,
        '--advertise-client-urls',
        etcdUrl,
        '--listen-peer-urls',
        peerUrl,
        '--initial-advertise-peer-urls',
        peerUrl,
        '--initial-cluster',
        `kiln=${peerUrl}`,
        '--unsafe-no-fsync',
        '--log-level',
        'warn',
      ],
      dir,
      ownerPid,
    );
    servers.push(etcd);

    const saKeys = new Promise<{ publicKey: string; privateKey: string }>((resolve, reject) =>
      generateKeyPair(
        'rsa',
        {
          modulusLength: 2048,
          publicKeyEncoding: { type: 'spki', format: 'pem' },
          privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        },
        (err, publicKey, privateKey) => (err ? reject(err) : resolve({ publicKey, privateKey })),
      ),
    );
    const [{ publicKey, privateKey }] = await Promise.all([saKeys, createCa(dir)]);
    const saPub = path.join(dir, 'sa.pub');
    const saKey = path.join(dir, 'sa.key');
    await writeFile(saPub, publicKey);
    await writeFile(saKey, privateKey, { mode: 0o600 });
    const tokenFile = path.join(dir, 'tokens.csv');
    await writeFile(tokenFile, `${adminToken},kiln-admin,kiln-admin,"system:masters"\n`, { mode: 0o600 });

    await waitReady(etcd, async () => (await probe(`${etcdUrl}/health`)) === 200, timeout, 'healthy');

    // The API server authenticates to the node's kubelet (logs, exec, port-forward) as a client of the same CA.
    const kubeletClient = path.join(dir, 'apiserver-kubelet-client');
    if (opts.node) await signClientCert(dir, kubeletClient, 'kube-apiserver-kubelet-client', ['system:masters']);

    const apiserverArgs = [
      '--etcd-servers',
      etcdUrl,
      '--secure-port',
      String(apiPort),
      '--bind-address',
      opts.node ? '0.0.0.0' : '127.0.0.1',
      '--advertise-address',
      opts.node?.advertiseAddress ?? '127.0.0.1',
      '--cert-dir',
      certDir,
      '--service-cluster-ip-range',
      '10.96.0.0/16',
      '--allow-privileged=true',
      '--authorization-mode',
      // A node's kubelet is authorised as nodes are: the Node authorizer, and NodeRestriction below.
      opts.node ? 'Node,RBAC' : 'RBAC',
      ...(opts.node
        ? [
            '--kubelet-client-certificate',
            `${kubeletClient}.crt`,
            '--kubelet-client-key',
            `${kubeletClient}.key`,
            '--kubelet-preferred-address-types',
            'InternalIP',
            '--enable-admission-plugins',
            'NodeRestriction',
          ]
        : ['--disable-admission-plugins', 'ServiceAccount']),
      '--service-account-issuer',
      `${server}/`,
      '--service-account-key-file',
      saPub,
      '--service-account-signing-key-file',
      saKey,
      '--token-auth-file',
      tokenFile,
      '--client-ca-file',
      path.join(dir, 'client-ca.crt'),
      // Without a node nothing reaches the `kubernetes` Service: skip its loopback endpoint reconciler.
      '--endpoint-reconciler-type',
      opts.node ? 'lease' : 'none',
      '--profiling=false',
      ...(opts.apiserverArgs ?? []),
    ];
    const startApiServer = () => startServer('kube-apiserver', path.join(binDir, 'kube-apiserver'), apiserverArgs, dir, ownerPid);
    const apiserver = await startApiServer();
    servers.push(apiserver);

    const caFile = path.join(certDir, 'apiserver.crt');
    const auth = { Authorization: `Bearer ${adminToken}` };
    const apiserverReady = (s: Server) => waitReady(s, async () => (await probe(`${server}/readyz`, auth)) === 200, timeout, 'ready');
    await apiserverReady(apiserver);

    const kubeconfig = path.join(dir, 'admin.kubeconfig');
    await writeFile(
      kubeconfig,
      kubeconfigYaml({
        server,
        caData: Buffer.from(readFileSync(caFile)).toString('base64'),
        user: 'kiln-admin',
        token: adminToken,
      }),
      { mode: 0o600 },
    );

    const info: ControlPlaneInfo = { kubeconfig, server, dir, binDir, version: KUBE_VERSION, caFile, adminToken };
    const client = attachControlPlane(info);
    await writeFile(path.join(dir, 'controlplane.json'), JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });

    // CRDs before the controller manager, so the GC's first discovery sees them.
    if (opts.crdPaths?.length) await client.installCrds(opts.crdPaths);

    if (opts.controllerManager ?? true) {
      const kcm = await startServer(
        'kube-controller-manager',
        path.join(binDir, 'kube-controller-manager'),
        [
          '--kubeconfig',
          kubeconfig,
          '--controllers',
          (opts.controllers ?? (opts.node ? NODE_CONTROLLERS : DEFAULT_CONTROLLERS)).join(','),
          '--leader-elect=false',
          '--use-service-account-credentials=false',
          '--bind-address',
          '127.0.0.1',
          '--secure-port',
          String(kcmPort),
          '--cert-dir',
          path.join(dir, 'kcm-certs'),
          '--service-account-private-key-file',
          saKey,
          '--root-ca-file',
          caFile,
          '--profiling=false',
        ],
        dir,
        ownerPid,
      );
      servers.push(kcm);
      await waitReady(kcm, async () => (await probe(`https://127.0.0.1:${kcmPort}/healthz`)) === 200, timeout, 'healthy');
    }

    let stopped: Promise<void> | undefined;
    const pids = Object.fromEntries(servers.map((s) => [s.name, s.child.pid ?? -1]));
    return {
      ...client,
      pids,
      startupMs: Date.now() - t0,
      async restartApiServer({ downMs = 2000 }: { downMs?: number } = {}) {
        const i = servers.findIndex((s) => s.name === 'kube-apiserver');
        await stopServer(servers[i]!);
        await sleep(downMs);
        // Same args and port; the serving cert in certDir is reused, so caFile stays valid.
        const restarted = await startApiServer();
        servers[i] = restarted; // stop() kills the new process
        pids['kube-apiserver'] = restarted.child.pid ?? -1;
        await apiserverReady(restarted);
      },
      stop() {
        stopped ??= (async () => {
          await stopAll();
          if (!keepDir) await rm(dir, { recursive: true, force: true });
        })();
        return stopped;
      },
    };
  } catch (err) {
    // Keep the directory (logs) unless it is a port race that will be retried.
    await stopAll();
    if (ownDir && /address already in use/i.test(String(err))) await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
