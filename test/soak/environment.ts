/**
 * What the soak runs against: real PostgreSQL and slapd, a Git server over
 * HTTPS, the control plane the caller gives, a fault proxy in front of each
 * of them, and kiln's controllers (apply mode, and git mode for one
 * namespace) and agent as child processes that reach every
 * dependency only through its proxy, so a fault on a proxy is a fault on
 * kiln's connections and on nobody else's (the driver's own API calls go
 * straight to the API server: it must see what is true while kiln is cut off).
 */
import { mkdirSync, readFileSync, writeFileSync, createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { KubeClient } from '../../kube/client.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import type { ControlPlaneClient } from '../harness/connect.js';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';
import { startPostgres, type PostgresServer } from '../harness/postgres.js';
import { startSlapd, type SlapdServer } from '../harness/slapd.js';
import { initBareRepo, plainGit } from '../harness/git.js';
import { startKiln, type KilnProcess } from '../integration/install-support.js';
import { startGitHttps } from './git-https.js';
import { directoryAccounts, type SoakLayout } from './templates.js';

export type Target = 'apiserver' | 'postgres' | 'slapd' | 'git';

export interface SoakEnvironment {
  cp: ControlPlaneClient;
  /** Admin client straight to the API server (no proxy). */
  client: KubeClient;
  postgres: PostgresServer;
  slapd: SlapdServer;
  proxies: Record<Target, FaultProxy>;
  controller: KilnProcess;
  /** the git-mode controller, for layout.gitNamespace */
  gitController: KilnProcess;
  agent: KilnProcess;
  /** the bare repository the git-mode controller pushes to (through the proxy and the HTTPS server) */
  bareRepo: string;
  /** Where the children's logs go (one JSON line per entry). */
  logDir: string;
  stop(): Promise<void>;
}

/** The admin kubeconfig with the server replaced by the proxy's address (the certificate names 127.0.0.1, so TLS still verifies). */
function proxiedKubeconfig(cp: ControlPlaneClient, proxy: FaultProxy, file: string): string {
  const kc = parseYaml(readFileSync(cp.kubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
  for (const c of kc.clusters) c.cluster.server = proxy.url('https');
  writeFileSync(file, toYaml(kc), { mode: 0o600 });
  return file;
}

function logTo(p: KilnProcess, file: string): WriteStream {
  const out = createWriteStream(file);
  p.child.stderr!.on('data', (d: Buffer) => out.write(d));
  p.child.stdout!.on('data', (d: Buffer) => out.write(d));
  return out;
}

export async function startEnvironment(
  cp: ControlPlaneClient,
  layout: SoakLayout,
  workDir: string,
  beforeKiln: (postgres: PostgresServer, slapd: SlapdServer) => Promise<void>,
): Promise<SoakEnvironment> {
  mkdirSync(workDir, { recursive: true });
  const logDir = join(workDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const [postgres, slapd] = await Promise.all([startPostgres(), startSlapd({ accounts: directoryAccounts(layout).map((dn) => ({ dn, password: 'initial-wrong-value' })) })]);
  await beforeKiln(postgres, slapd);
  const gitRoot = join(workDir, 'git');
  mkdirSync(gitRoot, { recursive: true });
  const bareRepo = join(gitRoot, 'deploy.git');
  initBareRepo(bareRepo, workDir);
  plainGit(bareRepo, ['config', 'http.receivepack', 'true']);
  const gitServer = await startGitHttps(gitRoot, workDir);
  const apiUrl = new URL(cp.server);
  const ldapsUrl = new URL(slapd.ldapsUrl);
  const proxies: Record<Target, FaultProxy> = {
    apiserver: await startFaultProxy({ host: apiUrl.hostname, port: Number(apiUrl.port) }),
    postgres: await startFaultProxy({ host: postgres.host, port: postgres.port }),
    slapd: await startFaultProxy({ host: ldapsUrl.hostname, port: Number(ldapsUrl.port) }),
    git: await startFaultProxy({ host: gitServer.host, port: gitServer.port }),
  };
  const kubeconfig = proxiedKubeconfig(cp, proxies.apiserver, join(workDir, 'kubeconfig-proxied'));
  const client = new KubeClient(loadKubeConfig({ kubeconfig: cp.kubeconfig }), { qps: 0, burst: 0 });

  const namespaces = layout.namespaces.join(',');
  const common = ['--kubeconfig', kubeconfig, '-n', namespaces, '--metrics-bind-address', '0', '--health-probe-bind-address', '0', '--log-format', 'json'];
  const env = { ...process.env, KUBECONFIG: '', POD_NAMESPACE: undefined };
  const controller = startKiln(['controller', ...common, '--resync', '60'], { env });
  const gitController = startKiln(
    [
      'controller',
      '--mode',
      'git',
      '--repo',
      `${proxies.git.url('https')}/deploy.git`,
      '--branch',
      'main',
      '--cluster',
      'soak',
      '--work-dir',
      join(workDir, 'git-clone'),
      '--debounce',
      '500',
      '--max-wait',
      '5000',
      ...common.map((a) => (a === namespaces ? layout.gitNamespace : a)),
      '--resync',
      '60',
    ],
    { env: { ...env, GIT_SSL_CAINFO: gitServer.caFile } },
  );
  const endpoints = layout.namespaces.flatMap((ns) => [
    ...layout.pools.DirectoryService.map((n) => `--endpoint=DirectoryService/${ns}/${n}=${proxies.slapd.url('ldaps')}`),
    ...layout.pools.PostgresInstance.map((n) => `--endpoint=PostgresInstance/${ns}/${n}=${proxies.postgres.host}:${proxies.postgres.port}`),
  ]);
  const agent = startKiln(['agent', ...common, '--password-interval', '30', '--database-check-interval', '10', ...endpoints], { env });
  const streams = [logTo(controller, join(logDir, 'controller.log')), logTo(gitController, join(logDir, 'git-controller.log')), logTo(agent, join(logDir, 'agent.log'))];
  await Promise.all([controller, gitController, agent].map((p) => p.waitForLine(/"msg":"starting"/, 60_000)));

  return {
    cp,
    client,
    postgres,
    slapd,
    proxies,
    controller,
    gitController,
    agent,
    bareRepo,
    logDir,
    async stop() {
      await Promise.all([controller.stop(), gitController.stop(), agent.stop()]);
      for (const s of streams) s.end();
      await Promise.all(Object.values(proxies).map((p) => p.close()));
      await client.close();
      await Promise.all([postgres.destroy(), slapd.destroy(), gitServer.close()]);
    },
  };
}
