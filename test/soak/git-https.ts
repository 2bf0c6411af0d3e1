/**
 * A Git server for the soak's git-mode controller: `git http-backend` (the
 * CGI program shipped with Git) behind node:https on 127.0.0.1 with a
 * self-signed certificate, serving bare repositories under `dir`. HTTPS, so
 * kiln runs as it would against a real host (its CA through GIT_SSL_CAINFO,
 * which kiln hands to git), and the fault proxy in front sees the same TLS
 * byte stream a network would carry.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { serveGitHttpBackend } from '../harness/git-http-backend.js';

export interface GitHttpsServer {
  host: string;
  port: number;
  /** PEM file of the server's certificate (its own CA). */
  caFile: string;
  requests: number;
  close(): Promise<void>;
}

/** Serves the bare repositories under `root`; `tlsDir` receives the key and certificate. */
export async function startGitHttps(root: string, tlsDir: string): Promise<GitHttpsServer> {
  const keyFile = join(tlsDir, 'git-key.pem');
  const caFile = join(tlsDir, 'git-cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      caFile,
    ],
    { stdio: 'ignore' },
  );
  let requests = 0;
  const server = https.createServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (req, res) => {
    requests++;
    serveGitHttpBackend(req, res, { root, user: 'soak' });
  });
  server.on('tlsClientError', () => undefined); // a reset during the handshake is the soak's doing
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    caFile,
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
