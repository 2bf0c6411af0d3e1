/**
 * The small HTTP server `kiln controller` and `kiln agent` run for Prometheus
 * and the kubelet's probes:
 *
 * - `GET /metrics`: lib/metrics.ts's registry in Prometheus' text format;
 * - `GET /healthz`: 200 while the process is alive (and `healthy()`, when given, is true), else 503;
 * - `GET /readyz`: 200 once `ready()` is true, else 503.
 *
 * Addresses follow kubebuilder's flags and defaults: metrics on `:8080`
 * (`--metrics-bind-address`), probes on `:8081` (`--health-probe-bind-address`);
 * given the same address, one server answers all three paths; an address left
 * out turns that server off (startHttpServers); port 0 asks the kernel for a
 * free port (`HttpServer.port` says which).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Log } from './log.js';
import { enableProcessMetrics, registry } from './metrics.js';

export interface HttpServerOptions {
  /** Port to listen on; 0 picks a free one (see `HttpServer.port`). */
  port: number;
  /** Address to bind; default all interfaces. */
  host?: string;
  /** Readiness: /readyz answers 200 when this returns true. Default: always ready. */
  ready?: () => boolean;
  /** Liveness: /healthz answers 503 when this returns false. Default: always healthy. */
  healthy?: () => boolean;
  /** Serve /metrics (default true). */
  metrics?: boolean;
  /** Serve /healthz and /readyz (default true). */
  probes?: boolean;
  /** Labels of kiln_build_info. */
  info?: { version: string; component: string };
  log?: Log;
}

export interface HttpServer {
  /** The port it listens on (the one chosen when `port` was 0). */
  readonly port: number;
  close(): Promise<void>;
}

/** Starts one server; resolves once it listens, rejects if it cannot (port in use). */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const serveMetrics = opts.metrics ?? true;
  const serveProbes = opts.probes ?? true;
  if (serveMetrics) enableProcessMetrics(opts.info);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (serveMetrics && path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: unknown) => {
          opts.log?.('error', 'metrics failed', { error: err instanceof Error ? err.message : String(err) });
          res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics failed\n');
        },
      );
      return;
    }
    if (serveProbes && (path === '/healthz' || path === '/livez' || path === '/readyz')) {
      const check = path === '/readyz' ? opts.ready : opts.healthy;
      let ok: boolean;
      try {
        ok = check ? check() : true;
      } catch {
        ok = false;
      }
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'ok\n' : path === '/readyz' ? 'not ready\n' : 'unhealthy\n');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  });
  // A scrape or probe never keeps the process alive on shutdown.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.log?.('error', 'http server error', { error: err.message }));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Where a server listens (a parsed `--metrics-bind-address`); no host: every interface. */
export interface BindAddress {
  host?: string;
  /** 0: a free port the kernel picks. */
  port: number;
}

export interface HttpServersOptions {
  /** Where /metrics listens; absent: off. */
  metrics?: BindAddress;
  /** Where /healthz and /readyz listen; absent: off. The same address as metrics (and a port other than 0): one server for all. */
  health?: BindAddress;
  ready?: () => boolean;
  healthy?: () => boolean;
  info?: { version: string; component: string };
  log?: Log;
}

/** `host:port` as a user writes it (`:8080` for every interface). */
export function formatAddress(a: BindAddress, port = a.port): string {
  return `${a.host === undefined ? '' : a.host.includes(':') ? `[${a.host}]` : a.host}:${port}`;
}

/** The servers a long-running command starts from its --metrics-bind-address and --health-probe-bind-address. */
export async function startHttpServers(opts: HttpServersOptions): Promise<HttpServer[]> {
  const common = { ready: opts.ready, healthy: opts.healthy, info: opts.info, log: opts.log };
  const { metrics, health } = opts;
  const listening = (what: string, a: BindAddress, s: HttpServer) => opts.log?.('info', `serving ${what}`, { address: formatAddress(a, s.port) });
  if (metrics && health && metrics.port > 0 && metrics.port === health.port && metrics.host === health.host) {
    const s = await startHttpServer({ ...common, host: metrics.host, port: metrics.port });
    listening('/metrics, /healthz and /readyz', metrics, s);
    return [s];
  }
  const servers: HttpServer[] = [];
  try {
    if (metrics) {
      servers.push(await startHttpServer({ ...common, host: metrics.host, port: metrics.port, probes: false }));
      listening('/metrics', metrics, servers.at(-1)!);
    }
    if (health) {
      servers.push(await startHttpServer({ ...common, host: health.host, port: health.port, metrics: false }));
      listening('/healthz and /readyz', health, servers.at(-1)!);
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.close()));
    throw err;
  }
  return servers;
}
