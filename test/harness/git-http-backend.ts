/**
 * git http-backend as a CGI program, one process per request: the Git smart-HTTP
 * server of the tests (plain HTTP, HTTPS, behind a fault proxy). Environment per
 * RFC 3875, the body piped in, the CGI headers parsed out.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { plainGitEnv } from './git.js';

let backend: string | undefined;
const httpBackend = () => (backend ??= join(execFileSync('git', ['--exec-path'], { encoding: 'utf8', env: plainGitEnv }).trim(), 'git-http-backend'));

export interface GitCgiOptions {
  /** Directory holding the bare repositories (GIT_PROJECT_ROOT). */
  root: string;
  /** REMOTE_USER: http-backend serves receive-pack (push) only to an authenticated user. */
  user: string;
  /** Told the HTTP status the request ends with (502 when http-backend wrote no headers). */
  onStatus?: (status: number) => void;
}

export function serveGitHttpBackend(req: IncomingMessage, res: ServerResponse, opts: GitCgiOptions): void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const env: NodeJS.ProcessEnv = {
    ...plainGitEnv,
    GIT_PROJECT_ROOT: opts.root,
    GIT_HTTP_EXPORT_ALL: '1',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REQUEST_METHOD: req.method ?? 'GET',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.replace(/^\?/, ''),
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    REMOTE_USER: opts.user,
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
  };
  // Git sends large request bodies chunked (no Content-Length): http-backend then reads to EOF.
  if (req.headers['content-length']) env['CONTENT_LENGTH'] = req.headers['content-length'];
  if (req.headers['content-encoding']) env['HTTP_CONTENT_ENCODING'] = req.headers['content-encoding'];
  if (req.headers['git-protocol']) env['HTTP_GIT_PROTOCOL'] = String(req.headers['git-protocol']);
  const child = spawn(httpBackend(), [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  req.pipe(child.stdin);
  child.stdin.on('error', () => undefined);
  res.on('error', () => undefined);
  // A client that goes away mid-request (a reset, a half-close) must not leave the CGI process behind.
  res.on('close', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
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
    opts.onStatus?.(status);
    res.writeHead(status, headers);
    res.write(head.subarray(end.at + end.len));
  });
  child.on('close', (code) => {
    if (!headersDone) {
      opts.onStatus?.(502);
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`git http-backend exited ${code}: ${stderr}\n`);
      return;
    }
    res.end();
  });
}
