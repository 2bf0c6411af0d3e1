/**
 * A real node for the test control plane: containerd (runc), a kubelet
 * registered as Node `kiln-node`, kube-scheduler, kube-proxy (iptables) and
 * CoreDNS, all processes on this machine. Pods get their own network
 * namespaces on a bridge (`kilnbr0`, 10.244.0.0/24) through the Debian CNI
 * plugins; Services work through kube-proxy's rules; names resolve through
 * CoreDNS on the bridge's gateway address. Traffic stays on this machine.
 *
 * Why each setting is what it is:
 * - cgroupfs driver, cgroup v1 (`failCgroupV1: false`): this sandbox mounts v1
 *   controllers and has no systemd. Pods live under their own cgroup root, so
 *   stop() can find and kill every process a test started.
 * - No swap check, eviction thresholds near zero: the machine is shared with
 *   the rest of the suite, and a pod evicted for a busy disk is not what a
 *   test is about.
 * - CoreDNS runs as a process, not a pod, so the node needs no DNS image; it
 *   answers from the same API the kubelet reads, as in-cluster CoreDNS does.
 * - Volumes: a default StorageClass with no provisioner and WaitForFirstConsumer,
 *   and `local` PersistentVolumes made by addLocalVolumes(): static
 *   provisioning as a bare-metal cluster has it.
 */
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { probe, startServer, stopServer, waitReady, type ControlPlaneClient, type Server } from './controlplane.js';
import { freePorts } from './ports.js';
import { run, runBuildScript } from './run.js';

export const NODE_NAME = 'kiln-node';
export const NODE_NETWORK = { bridge: 'kilnbr0', subnet: '10.244.0.0/24', gateway: '10.244.0.1' } as const;
export const CLUSTER_DOMAIN = 'cluster.local';
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
export const NODE_BINARIES = ['kubelet', 'kube-scheduler', 'kube-proxy', 'coredns'] as const;
const CGROUP_ROOT = '/kiln-node';
const CGROUP_FS = '/sys/fs/cgroup';
/** The Debian packages the node runs on (scripts/build-node.sh installs them). */
const HOST_TOOLS = [
  '/usr/bin/containerd',
  '/usr/bin/containerd-shim-runc-v2',
  '/usr/sbin/runc',
  '/usr/bin/ctr',
  '/usr/lib/cni/bridge',
  '/usr/lib/cni/host-local',
  '/usr/lib/cni/loopback',
  '/usr/lib/cni/portmap',
];

export interface NodeOptions {
  /** working directory (containerd's root and state, the kubelet's root dir, logs) */
  dir: string;
  /** directory holding kubelet, kube-scheduler, kube-proxy and coredns */
  binDir: string;
  /** OCI archives imported into containerd before the kubelet starts */
  images: string[];
  ownerPid?: number;
  readyTimeoutMs?: number;
}

export interface RealNode {
  name: string;
  /** containerd's socket, for `ctr --address` */
  containerdAddress: string;
  /** ms from startNode() to a Ready node */
  startupMs: number;
  /** Make `count` local PersistentVolumes of `size` on the node. */
  addLocalVolumes(count: number, size?: string): Promise<string[]>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function sh(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** The host side of pod networking; idempotent. Also what the API server advertises, so it exists first. */
export async function ensureBridge(): Promise<void> {
  const { bridge, subnet, gateway } = NODE_NETWORK;
  const prefix = subnet.split('/')[1]!;
  if ((await run('ip', ['link', 'show', bridge])).code !== 0) await sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
  const addrs = await sh('ip', ['-o', '-4', 'addr', 'show', 'dev', bridge]);
  if (!addrs.includes(`${gateway}/${prefix}`)) await sh('ip', ['addr', 'add', `${gateway}/${prefix}`, 'dev', bridge]);
  await sh('ip', ['link', 'set', bridge, 'up']);
  // Pod -> Service -> pod on the same bridge is routed by the host and must pass
  // kube-proxy's iptables rules.
  await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
  const nf = '/proc/sys/net/bridge/bridge-nf-call-iptables';
  if (existsSync(nf)) await writeFile(nf, '1');
}

/** Fails with the list of what is missing, so a run without the node's packages says why. */
export function checkHost(binDir: string): void {
  const missing = [...HOST_TOOLS.filter((t) => !existsSync(t)), ...NODE_BINARIES.map((b) => path.join(binDir, b)).filter((b) => !existsSync(b))];
  if (missing.length) throw new Error(`the real node needs ${missing.join(', ')} (run scripts/build-node.sh)`);
}

function containerdConfig(dir: string, address: string): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
[grpc]
  address = "${address}"
[ttrpc]
  address = "${address}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[${cri}]
  sandbox_image = "${PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
  # The sandbox cannot lower a process's OOM score (no CAP_SYS_RESOURCE over its own
  # limit); the kubelet asks -998 for the pause container. Clamp to containerd's own.
  restrict_oom_score_adj = true
  [${cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni"
  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
`;
}

function cniConfig(dir: string): string {
  const { bridge, subnet, gateway } = NODE_NETWORK;
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'kiln',
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          // No masquerade: nothing leaves this machine, and a killed run would leave per-pod NAT chains behind.
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet, gateway }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(dir, 'cni-ipam') },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

/** cgroup v1: one directory per controller; the kubelet wants its root to exist in each. */
function cgroupControllers(): string[] {
  return readdirSync(CGROUP_FS).filter((c) => existsSync(path.join(CGROUP_FS, c, 'cgroup.procs')));
}

async function createCgroupRoot(): Promise<void> {
  for (const c of cgroupControllers()) {
    const d = path.join(CGROUP_FS, c, CGROUP_ROOT);
    await mkdir(d, { recursive: true });
    if (c === 'cpuset') {
      // A new cpuset cgroup starts with no CPUs and no memory nodes: inherit the parent's.
      for (const f of ['cpuset.cpus', 'cpuset.mems']) await writeFile(path.join(d, f), readFileSync(path.join(CGROUP_FS, c, f), 'utf8'));
    }
  }
}

/** SIGKILL every process under the node's cgroup root, then remove the cgroups, deepest first. */
async function killCgroupRoot(): Promise<void> {
  const walk = (d: string): string[] => [
    ...readdirSync(d, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .flatMap((e) => walk(path.join(d, e.name))),
    d,
  ];
  for (let round = 0; round < 20; round++) {
    let alive = 0;
    for (const c of cgroupControllers()) {
      const root = path.join(CGROUP_FS, c, CGROUP_ROOT);
      if (!existsSync(root)) continue;
      for (const d of walk(root)) {
        const pids = readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
        for (const pid of pids) {
          alive++;
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
    }
    if (alive === 0) break;
    await sleep(250);
  }
  for (const c of cgroupControllers()) {
    const root = path.join(CGROUP_FS, c, CGROUP_ROOT);
    if (!existsSync(root)) continue;
    for (const d of walk(root)) {
      try {
        rmdirSync(d);
      } catch {
        /* busy: a later run retries */
      }
    }
  }
}

/** Unmount what the kubelet and containerd left under `dir` (secret tmpfs, rootfs overlays, netns), deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', ['-l', m]);
}

/**
 * Kill shims of this node's containerd (they outlive it by design), or with no
 * address, the shims of any containerd whose socket is gone (a run that was killed).
 */
function killShims(address?: string): void {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!cmd.startsWith('/usr/bin/containerd-shim')) continue;
    const args = cmd.split('\0');
    const own = args[args.indexOf('-address') + 1] ?? '';
    if (address ? own === address : own !== '' && !existsSync(own)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

/** Network namespaces the CRI plugin pinned for this node's sandboxes (under its state dir in 1.6: /var/run/netns). */
async function removeSandboxNetns(ids: string[]): Promise<void> {
  for (const id of ids) await run('ip', ['netns', 'delete', id]);
}

export async function startNode(cp: ControlPlaneClient, opts: NodeOptions): Promise<RealNode> {
  const t0 = Date.now();
  checkHost(opts.binDir);
  const dir = path.resolve(opts.dir);
  const ownerPid = opts.ownerPid ?? process.pid;
  const timeout = opts.readyTimeoutMs ?? 120_000;
  await mkdir(path.join(dir, 'cni'), { recursive: true });
  const servers: Server[] = [];
  const address = path.join(dir, 'containerd.sock');
  const bin = (b: string) => path.join(opts.binDir, b);
  const netnsBefore = new Set(await listNetns());

  // Left by a run that was killed: its rules would send Service traffic to pods that are gone.
  await run(bin('kube-proxy'), ['--cleanup'], { timeoutMs: 30_000 });
  await killCgroupRoot();
  killShims();
  await ensureBridge();
  await createCgroupRoot();

  const stopAll = async () => {
    for (const s of [...servers].reverse()) await stopServer(s, 5_000);
  };

  try {
    const [kubeletPort, kubeletHealthz, schedPort, proxyHealthz, proxyMetrics, dnsHealth] = await freePorts(6);
    // Each component as a cluster has it: the kubelet as system:node:<name> (Node authorizer,
    // NodeRestriction), the scheduler and kube-proxy as the users their default RBAC names,
    // CoreDNS with the read-only rights its own manifests give it. None is an admin.
    const [kubeletId, schedulerId, proxyId, dnsId] = await Promise.all([
      cp.mintIdentity(`system:node:${NODE_NAME}`, ['system:nodes']),
      cp.mintIdentity('system:kube-scheduler'),
      cp.mintIdentity('system:kube-proxy'),
      cp.mintIdentity('kiln-test:coredns'),
    ]);
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: coreDnsRbac(dnsId.name) });

    await writeFile(path.join(dir, 'containerd.toml'), containerdConfig(dir, address));
    await writeFile(path.join(dir, 'cni', '10-kiln.conflist'), cniConfig(dir));
    const containerd = await startServer('containerd', '/usr/bin/containerd', ['--config', path.join(dir, 'containerd.toml')], dir, ownerPid);
    servers.push(containerd);
    const ctr = (...args: string[]) => sh('/usr/bin/ctr', ['--address', address, '-n', 'k8s.io', ...args], 300_000);
    await waitReady(containerd, async () => (await run('/usr/bin/ctr', ['--address', address, 'version'], { timeoutMs: 5_000 })).code === 0, timeout, 'serving');
    for (const image of opts.images) await ctr('images', 'import', '--no-unpack', image);

    // CoreDNS before the kubelet: the first pod may resolve a name at once.
    const corefile = path.join(dir, 'Corefile');
    await writeFile(
      corefile,
      `${CLUSTER_DOMAIN}:53 in-addr.arpa:53 {
    bind ${NODE_NETWORK.gateway}
    errors
    health 127.0.0.1:${dnsHealth}
    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa {
        kubeconfig ${dnsId.kubeconfig}
        pods insecure
        ttl 5
    }
}
.:53 {
    bind ${NODE_NETWORK.gateway}
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`,
    );
    const coredns = await startServer('coredns', bin('coredns'), ['-conf', corefile], dir, ownerPid);
    servers.push(coredns);
    await waitReady(coredns, async () => (await probe(`http://127.0.0.1:${dnsHealth}/health`)) === 200, timeout, 'healthy');

    const scheduler = await startServer(
      'kube-scheduler',
      bin('kube-scheduler'),
      ['--kubeconfig', schedulerId.kubeconfig, '--leader-elect=false', '--bind-address', '127.0.0.1', '--secure-port', String(schedPort), '--profiling=false'],
      dir,
      ownerPid,
    );
    servers.push(scheduler);

    const proxyConfig = path.join(dir, 'kube-proxy.yaml');
    await writeFile(
      proxyConfig,
      toYaml({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        clientConnection: { kubeconfig: proxyId.kubeconfig },
        mode: 'iptables',
        clusterCIDR: NODE_NETWORK.subnet,
        hostnameOverride: NODE_NAME,
        bindAddress: NODE_NETWORK.gateway,
        healthzBindAddress: `127.0.0.1:${proxyHealthz}`,
        metricsBindAddress: `127.0.0.1:${proxyMetrics}`,
        // Leave the host's conntrack sysctls alone: this is a shared machine.
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
        iptables: { localhostNodePorts: false },
      }),
    );
    const proxy = await startServer('kube-proxy', bin('kube-proxy'), ['--config', proxyConfig], dir, ownerPid);
    servers.push(proxy);

    const resolvConf = path.join(dir, 'resolv.conf');
    await writeFile(resolvConf, ''); // pods see only the cluster's DNS: there is no other network
    const kubeletConfig = path.join(dir, 'kubelet.yaml');
    await writeFile(
      kubeletConfig,
      toYaml({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: NODE_NETWORK.gateway,
        port: kubeletPort,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort: kubeletHealthz,
        containerRuntimeEndpoint: `unix://${address}`,
        cgroupDriver: 'cgroupfs',
        cgroupRoot: CGROUP_ROOT,
        failCgroupV1: false,
        failSwapOn: false,
        authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: path.join(cpDir(cp), 'client-ca.crt') } },
        authorization: { mode: 'Webhook' },
        clusterDomain: CLUSTER_DOMAIN,
        clusterDNS: [NODE_NETWORK.gateway],
        resolvConf,
        evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        serializeImagePulls: false,
        nodeStatusUpdateFrequency: '5s',
        syncFrequency: '10s',
        fileCheckFrequency: '10s',
        podPidsLimit: -1,
        maxPods: 110,
      }),
    );
    const kubelet = await startServer(
      'kubelet',
      bin('kubelet'),
      [
        '--config',
        kubeletConfig,
        '--kubeconfig',
        kubeletId.kubeconfig,
        '--hostname-override',
        NODE_NAME,
        '--node-ip',
        NODE_NETWORK.gateway,
        '--root-dir',
        path.join(dir, 'kubelet'),
        '--cert-dir',
        path.join(dir, 'kubelet-pki'),
        '--v=1',
      ],
      dir,
      ownerPid,
    );
    servers.push(kubelet);
    const nodeReady = async () => {
      const r = await cp.kubectl(['get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
      return r.code === 0 && r.stdout.trim() === 'True';
    };
    await waitReady(kubelet, nodeReady, timeout, 'a Ready node');
    await waitReady(proxy, async () => (await probe(`http://127.0.0.1:${proxyHealthz}/healthz`)) === 200, timeout, 'healthy');

    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: toYaml(storageClass()) });

    let volumes = 0;
    let stopped: Promise<void> | undefined;
    return {
      name: NODE_NAME,
      containerdAddress: address,
      startupMs: Date.now() - t0,
      async addLocalVolumes(count: number, size = '20Gi'): Promise<string[]> {
        const names: string[] = [];
        const docs: unknown[] = [];
        for (let i = 0; i < count; i++) {
          const name = `local-${++volumes}`;
          const p = path.join(dir, 'volumes', name);
          await mkdir(p, { recursive: true, mode: 0o777 });
          docs.push(localVolume(name, p, size));
          names.push(name);
        }
        await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: docs.map((d) => toYaml(d)).join('---\n') });
        return names;
      },
      stop() {
        stopped ??= (async () => {
          await stopAll();
          killShims(address);
          await killCgroupRoot();
          await run(bin('kube-proxy'), ['--cleanup'], { timeoutMs: 30_000 });
          const netnsAfter = await listNetns();
          await removeSandboxNetns(netnsAfter.filter((n) => !netnsBefore.has(n) && n.startsWith('cni-')));
          await unmountUnder(dir);
          if (process.env.KILN_KEEP_CONTROLPLANE !== '1') await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        })();
        return stopped;
      },
    };
  } catch (err) {
    await stopAll();
    killShims(address);
    await killCgroupRoot();
    throw err;
  }
}

function cpDir(cp: ControlPlaneClient): string {
  return cp.dir;
}

async function listNetns(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

function storageClass() {
  return {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name: 'local', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
    provisioner: 'kubernetes.io/no-provisioner',
    volumeBindingMode: 'WaitForFirstConsumer',
    reclaimPolicy: 'Retain',
  };
}

function localVolume(name: string, hostPath: string, size: string) {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name },
    spec: {
      capacity: { storage: size },
      accessModes: ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: 'Retain',
      storageClassName: 'local',
      local: { path: hostPath },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [NODE_NAME] }] }] } },
    },
  };
}

/** Runs scripts/build-node.sh (progress on our stderr; seconds when cached) and returns the node's bin directory. */
export async function buildNode(): Promise<string> {
  const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'build-node.sh');
  return runBuildScript(script);
}

/** What CoreDNS's kubernetes plugin reads, as its upstream manifests grant it (system:coredns). */
function coreDnsRbac(user: string): string {
  const name = 'kiln-test:coredns';
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name },
      rules: [
        { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
    },
  ]
    .map((d) => toYaml(d))
    .join('---\n');
}
