/**
 * Proxies, as client-go chooses them: the cluster's `proxy-url` when the
 * kubeconfig names one (http, https or socks5), else the environment as Go's
 * http.ProxyFromEnvironment reads it (HTTPS_PROXY/https_proxy for an https
 * server, HTTP_PROXY/http_proxy for http, NO_PROXY/no_proxy; a server on
 * localhost or a loopback address is never proxied from the environment).
 *
 * The connection to the API server goes through the proxy as a tunnel (HTTP
 * CONNECT, or SOCKS5 CONNECT), and TLS to the API server runs inside it, so the
 * proxy sees neither credentials nor traffic. Credentials in the proxy URL
 * (user:password@) go to the proxy (Proxy-Authorization: Basic, or SOCKS5
 * username/password) and nowhere else. Built on node:net/tls only.
 */
import http from 'node:http';
import https from 'node:https';
import net, { isIP } from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { redact } from './redact.js';

export class ProxyConfigError extends Error {}

/** Parses a proxy URL as Go does: no scheme means http. */
export function parseProxyUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    throw new ProxyConfigError(`invalid proxy URL ${redactProxy(raw)}`);
  }
  if (!['http:', 'https:', 'socks5:'].includes(u.protocol)) throw new ProxyConfigError(`proxy URL ${redactProxy(raw)}: scheme ${u.protocol.slice(0, -1)} is not supported (http, https or socks5)`);
  if (!u.hostname) throw new ProxyConfigError(`proxy URL ${redactProxy(raw)} has no host`);
  return u;
}

/** A proxy URL for messages: without its password. */
export function redactProxy(raw: string): string {
  return redact(raw);
}

const envAny = (env: NodeJS.ProcessEnv, ...names: string[]) => {
  for (const n of names) if (env[n]) return env[n];
  return undefined;
};

/**
 * The proxy for requests to `server`: `proxyUrl` (the kubeconfig's) if set, else
 * the environment's; undefined for a direct connection.
 */
export function proxyFor(server: string, proxyUrl?: string, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  if (proxyUrl) return parseProxyUrl(proxyUrl);
  const target = new URL(server);
  const https = target.protocol === 'https:';
  const raw = https ? envAny(env, 'HTTPS_PROXY', 'https_proxy') : envAny(env, 'HTTP_PROXY', 'http_proxy');
  if (!raw) return undefined;
  const host = target.hostname.replace(/^\[|\]$/g, '');
  const port = target.port || (https ? '443' : '80');
  if (!useProxy(host, port, envAny(env, 'NO_PROXY', 'no_proxy') ?? '')) return undefined;
  return parseProxyUrl(raw);
}

/** Go's httpproxy rules: localhost and loopback never; `*` nothing; entries are IPs, CIDRs, domains (with or without a leading dot) and host:port. */
export function useProxy(host: string, port: string, noProxy: string): boolean {
  host = host.toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return false;
  const ipVersion = isIP(host);
  if (ipVersion && isLoopback(host)) return false;
  for (let entry of noProxy.split(',')) {
    entry = entry.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return false;
    if (entry.includes('/')) {
      if (ipVersion && inCidr(host, entry)) return false;
      continue;
    }
    let entryPort = '';
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m && isIP(entry) !== 6) {
      entry = m[1]!;
      entryPort = m[2]!;
    }
    entry = entry.replace(/^\[|\]$/g, '');
    if (entryPort && entryPort !== port) continue;
    if (isIP(entry)) {
      if (ipVersion && sameIp(entry, host)) return false;
      continue;
    }
    if (entry.startsWith('*.')) entry = entry.slice(1);
    if (entry.startsWith('.')) {
      // ".example.com" matches subdomains only
      if (host.endsWith(entry)) return false;
    } else if (host === entry || host.endsWith(`.${entry}`)) {
      return false;
    }
  }
  return true;
}

function isLoopback(ip: string): boolean {
  if (isIP(ip) === 4) return ip.startsWith('127.');
  const n = expand(ip);
  return n === '::1' || n.startsWith('::ffff:127.');
}

function sameIp(a: string, b: string): boolean {
  return isIP(a) === isIP(b) && expand(a) === expand(b);
}

/** The canonical text form of an address (IPv6 compressed as inet_ntop writes it). */
function expand(ip: string): string {
  if (isIP(ip) === 4) return ip;
  return new net.SocketAddress({ address: ip, family: 'ipv6' }).address.toLowerCase();
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const family = isIP(base!);
  if (!family || family !== isIP(ip)) return false;
  const list = new net.BlockList();
  try {
    list.addSubnet(base!, Number(bits), family === 6 ? 'ipv6' : 'ipv4');
  } catch {
    return false;
  }
  return list.check(ip, family === 6 ? 'ipv6' : 'ipv4');
}

/** Opens a tunnel to host:port through `proxy` (HTTP CONNECT, or SOCKS5). */
export function openTunnel(proxy: URL, host: string, port: number, timeoutMs = 30_000): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const proxyPort = Number(proxy.port) || (proxy.protocol === 'https:' ? 443 : proxy.protocol === 'socks5:' ? 1080 : 80);
    const proxyHost = proxy.hostname.replace(/^\[|\]$/g, '');
    const socket: net.Socket =
      proxy.protocol === 'https:'
        ? tls.connect({ host: proxyHost, port: proxyPort, servername: isIP(proxyHost) ? undefined : proxyHost, ALPNProtocols: ['http/1.1'] })
        : net.connect({ host: proxyHost, port: proxyPort });
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`proxy ${proxy.host}: no answer within ${timeoutMs} ms`)));
    socket.once('error', (err) => fail(new Error(`proxy ${proxy.host}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
    const done = () => {
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      socket.removeAllListeners('data');
      // From here the tunnel's errors end it: whoever reads it (TLS, or http) sees it close.
      socket.on('error', () => socket.destroy());
      resolve(socket);
    };
    const user = decodeURIComponent(proxy.username);
    const pass = decodeURIComponent(proxy.password);
    const target = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
    if (proxy.protocol === 'socks5:') {
      socks5(socket, host, port, user, pass, done, fail);
      return;
    }
    socket.once(proxy.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      const auth = user || pass ? `Proxy-Authorization: Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}\r\n` : '';
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
    });
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16_384) fail(new Error(`proxy ${proxy.host}: answer to CONNECT too long`));
        return;
      }
      socket.off('data', onData);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, end).toString('latin1'));
      if (!status || status[1] !== '200') {
        fail(new Error(`proxy ${proxy.host} refused CONNECT ${target}: ${head.subarray(0, head.indexOf('\r\n')).toString('latin1') || 'no status line'}`));
        return;
      }
      const rest = head.subarray(end + 4);
      if (rest.length) socket.unshift(rest);
      done();
    };
    socket.on('data', onData);
  });
}

function socks5(socket: net.Socket, host: string, port: number, user: string, pass: string, done: () => void, fail: (e: Error) => void): void {
  let stage = 0;
  let buf = Buffer.alloc(0);
  const methods = user || pass ? [0x00, 0x02] : [0x00];
  socket.once('connect', () => socket.write(Buffer.from([0x05, methods.length, ...methods])));
  const request = () => {
    const ipv = isIP(host);
    const addr =
      ipv === 4
        ? Buffer.from([0x01, ...host.split('.').map(Number)])
        : ipv === 6
          ? Buffer.concat([Buffer.from([0x04]), ipv6Bytes(host)])
          : Buffer.concat([Buffer.from([0x03, Buffer.byteLength(host)]), Buffer.from(host)]);
    socket.write(Buffer.concat([Buffer.from([0x05, 0x01, 0x00]), addr, Buffer.from([port >> 8, port & 0xff])]));
    stage = 2;
  };
  socket.on('data', function onData(chunk: Buffer) {
    buf = Buffer.concat([buf, chunk]);
    if (stage === 0) {
      if (buf.length < 2) return;
      const method = buf[1];
      buf = buf.subarray(2);
      if (method === 0x02) {
        socket.write(Buffer.concat([Buffer.from([0x01, Buffer.byteLength(user)]), Buffer.from(user), Buffer.from([Buffer.byteLength(pass)]), Buffer.from(pass)]));
        stage = 1;
      } else if (method === 0x00) request();
      else return fail(new Error('SOCKS5 proxy accepts none of the offered authentication methods'));
    }
    if (stage === 1) {
      if (buf.length < 2) return;
      if (buf[1] !== 0x00) return fail(new Error('SOCKS5 proxy refused the username and password'));
      buf = buf.subarray(2);
      request();
    }
    if (stage === 2) {
      if (buf.length < 5) return;
      if (buf[1] !== 0x00) return fail(new Error(`SOCKS5 proxy refused CONNECT ${host}:${port} (reply ${buf[1]})`));
      const len = buf[3] === 0x01 ? 10 : buf[3] === 0x04 ? 22 : 7 + buf[4]!;
      if (buf.length < len) return;
      socket.off('data', onData);
      if (buf.length > len) socket.unshift(buf.subarray(len));
      done();
    }
  });
}

function ipv6Bytes(ip: string): Buffer {
  const full = expand(ip);
  const [head, tail] = full.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined ? (tail ? tail.split(':') : []) : [];
  const groups = tail !== undefined ? [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

type ConnectCallback = (err: Error | null, stream: Duplex) => void;

/** An https.Agent whose connections are tunnels through `proxy`, TLS to the API server inside. */
export class HttpsProxyAgent extends https.Agent {
  constructor(
    private readonly proxy: URL,
    opts: https.AgentOptions,
  ) {
    super(opts);
  }

  override createConnection(options: http.ClientRequestArgs, cb?: ConnectCallback): Duplex | undefined {
    const host = (options.host ?? 'localhost').replace(/^\[|\]$/g, '');
    openTunnel(this.proxy, host, Number(options.port) || 443).then(
      (socket) => {
        const o = options as tls.ConnectionOptions;
        const servername = o.servername ?? (isIP(host) ? undefined : host);
        const secure = tls.connect({ ...o, socket, ...(servername ? { servername } : {}) });
        cb?.(null, secure);
      },
      (err: Error) => cb?.(err, undefined as never),
    );
    return undefined;
  }
}

/** The same for a plain-http server (the tunnel carries the HTTP directly). */
export class HttpProxyAgent extends http.Agent {
  constructor(
    private readonly proxy: URL,
    opts: http.AgentOptions,
  ) {
    super(opts);
  }

  override createConnection(options: http.ClientRequestArgs, cb?: ConnectCallback): Duplex | undefined {
    openTunnel(this.proxy, (options.host ?? 'localhost').replace(/^\[|\]$/g, ''), Number(options.port) || 80).then(
      (s) => cb?.(null, s),
      (err: Error) => cb?.(err, undefined as never),
    );
    return undefined;
  }
}
