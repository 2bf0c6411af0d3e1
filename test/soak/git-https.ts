/**
 * A Git server for the soak's git-mode controller: `git http-backend` (the
 * CGI program shipped with Git) behind node:https on 127.0.0.1 with a
 * self-signed certificate, serving bare repositories under `dir`. HTTPS, so
 * kiln runs as it would against a real host (its CA through GIT_SSL_CAINFO,
 * which kiln hands to git), and the fault proxy in front sees the same TLS
 * byte stream a network would carry.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { plainGitEnv } from '../harness/git.js';

export interface GitHttpsServer {
  host: string;
  port: number;
  /** PEM file of the server's certificate (its own CA). */
  caFile: string;
  requests: number;
  close(): Promise<void>;
}

const httpBackend = () => join(execFileSync('git', ['--exec-path'], { encoding: 'utf8', env: plainGitEnv }).trim(), 'git-http-backend');

/** One request through git http-backend: environment per RFC 3875, the body piped in, the CGI headers parsed out. */
function cgi(backend: string, root: string, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'https://localhost');
  const env: NodeJS.ProcessEnv = {
    ...plainGitEnv,
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REQUEST_METHOD: req.method ?? 'GET',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.replace(/^\?/, ''),
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    // http-backend serves receive-pack (push) only to an authenticated user; the soak's server trusts everyone on loopback.
    REMOTE_USER: 'soak',
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
  };
  if (req.headers['content-length']) env['CONTENT_LENGTH'] = req.headers['content-length'];
  if (req.headers['content-encoding']) env['HTTP_CONTENT_ENCODING'] = req.headers['content-encoding'];
  if (req.headers['git-protocol']) env['HTTP_GIT_PROTOCOL'] = String(req.headers['git-protocol']);
  const child = spawn(backend, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  req.pipe(child.stdin);
  child.stdin.on('error', () => undefined);
  // A client that goes away mid-request (a reset, a half-close) must not leave the CGI process behind.
  res.on('close', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let head = Buffer.alloc(0);
  let headersDone = false;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    if (headersDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const crlf = head.indexOf('\r\n\r\n');
    const lf = head.indexOf('\n\n');
    const end = crlf >= 0 && (lf < 0 || crlf < lf) ? { at: crlf, len: 4 } : lf >= 0 ? { at: lf, len: 2 } : undefined;
    if (!end) return;
    headersDone = true;
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of head.subarray(0, end.at).toString('latin1').split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    res.write(head.subarray(end.at + end.len));
  });
  child.on('close', (code) => {
    if (!headersDone) {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`git http-backend exited ${code}: ${stderr}\n`);
      return;
    }
    res.end();
  });
}

/** Serves the bare repositories under `root`; `tlsDir` receives the key and certificate. */
export async function startGitHttps(root: string, tlsDir: string): Promise<GitHttpsServer> {
  const keyFile = join(tlsDir, 'git-key.pem');
  const caFile = join(tlsDir, 'git-cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', keyFile, '-out', caFile,
  ], { stdio: 'ignore' });
  const backend = httpBackend();
  let requests = 0;
  const server = https.createServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (req, res) => {
    requests++;
    cgi(backend, root, req, res);
  });
  server.on('tlsClientError', () => undefined); // a reset during the handshake is the soak's doing
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    host: '127.0.0.1', port, caFile,
    get requests() {
      return requests;
    },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
