import { createServer } from 'node:http';
import type { Command } from 'commander';
import type { LogLevel } from '../lib/log.js';

const int = (v: string) => Number.parseInt(v, 10);
const collect = (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)];

export function registerController(program: Command, version: string): void {
  program
    .command('controller')
    .description('Run the kiln controller: watch kiln resources and keep the cluster (apply mode) or a Git repository (git mode) equal to what kiln renders.')
    .option('--mode <mode>', 'apply (server-side apply into the cluster) or git (commit to a repository)', 'apply')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)')
    .option('--context <name>', 'kubeconfig context')
    .option('-n, --namespace <ns>', 'watch only this namespace (repeatable, or comma-separated); default all', collect, [])
    .option('--concurrency <n>', 'resources reconciled at once', int, 4)
    .option('--qps <n>', 'average API requests per second (0: no limit)', int, 20)
    .option('--burst <n>', 'API request burst', int, 30)
    .option('--resync <seconds>', 'reconcile every resource again this often', int, 300)
    .option('--no-leader-elect', 'run without a Lease (only one replica may run then)')
    .option('--leader-election-namespace <ns>', 'namespace of the Lease', process.env['POD_NAMESPACE'] ?? 'kiln-system')
    .option('--leader-election-id <name>', 'name of the Lease', 'kiln-controller')
    .option('--lease-duration <seconds>', 'how long a lease is valid without renewal', int, 15)
    .option('--renew-deadline <seconds>', 'a leader that cannot renew for this long stops', int, 10)
    .option('--retry-period <seconds>', 'how often to try to acquire or renew', int, 2)
    .option('--health-port <port>', 'port of /healthz and /readyz (0: off)', int, 8081)
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (opts) => {
      // Loaded here, not at the top: `kiln --help` and `kiln synth` need none of it.
      const { loadKubeConfig, NoClusterConfigError } = await import('../controller/kubeconfig.js');
      const { Manager } = await import('../controller/manager.js');
      const { newLogger } = await import('../lib/log.js');
      const log = newLogger(opts.logLevel as LogLevel, 'kiln-controller');
      if (opts.mode !== 'apply') {
        log('error', `--mode ${opts.mode} is not available yet: only apply mode is implemented`);
        process.exit(2);
      }
      let kc;
      try {
        kc = loadKubeConfig({ kubeconfig: opts.kubeconfig, context: opts.context });
      } catch (err) {
        if (err instanceof NoClusterConfigError) {
          process.stderr.write(`kiln controller: ${err.message}\n`);
          process.exit(2);
        }
        throw err;
      }
      const manager = new Manager({
        kc,
        namespaces: opts.namespace,
        concurrency: opts.concurrency,
        qps: opts.qps,
        burst: opts.burst,
        resyncSeconds: opts.resync,
        leaderElection: opts.leaderElect
          ? { namespace: opts.leaderElectionNamespace, name: opts.leaderElectionId, leaseDurationSeconds: opts.leaseDuration, renewDeadlineSeconds: opts.renewDeadline, retryPeriodSeconds: opts.retryPeriod }
          : undefined,
        version,
        log,
        // A replica that lost its lease exits; its Deployment restarts it as a standby.
        onLostLeadership: () => void manager.stop({ release: false }).finally(() => process.exit(1)),
      });
      if (opts.healthPort > 0) {
        createServer((req, res) => {
          const ok = req.url === '/healthz' || (req.url === '/readyz' && manager.hasSynced());
          res.writeHead(ok ? 200 : req.url === '/readyz' ? 503 : 404, { 'Content-Type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
        }).listen(opts.healthPort);
      }
      const shutdown = async (signal: string) => {
        log('info', 'shutting down', { signal });
        await manager.stop();
        process.exit(0);
      };
      process.once('SIGTERM', () => void shutdown('SIGTERM'));
      process.once('SIGINT', () => void shutdown('SIGINT'));
      log('info', 'starting', { mode: 'apply', server: kc.getCurrentCluster()?.server, namespaces: opts.namespace.length ? opts.namespace : 'all', version });
      await manager.start();
    });
}
