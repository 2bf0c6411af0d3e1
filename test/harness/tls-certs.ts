/** A throwaway CA and a server certificate for given DNS names, made with the openssl CLI. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from './run.js';

export interface TestCa {
  ca: string;
  /** A server certificate (and its key) signed by this CA for `dnsNames` (and 127.0.0.1). */
  issue(dnsNames: string[]): Promise<{ cert: string; key: string }>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
}

export async function makeCa(commonName = 'kiln test CA'): Promise<TestCa> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-ca-'));
  try {
    await openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        'ca.key',
        '-out',
        'ca.crt',
        '-days',
        '2',
        '-subj',
        `/CN=${commonName}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      dir,
    );
    const ca = await readFile(path.join(dir, 'ca.crt'), 'utf8');
    const caKey = await readFile(path.join(dir, 'ca.key'), 'utf8');
    return {
      ca,
      async issue(dnsNames) {
        const d = await mkdtemp(path.join(os.tmpdir(), 'kiln-cert-'));
        try {
          await writeFile(path.join(d, 'ca.crt'), ca);
          await writeFile(path.join(d, 'ca.key'), caKey, { mode: 0o600 });
          await writeFile(path.join(d, 'ext.cnf'), `subjectAltName=${[...dnsNames.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',')}\nextendedKeyUsage=serverAuth\n`);
          await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${dnsNames[0]}`], d);
          await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf'], d);
          return { cert: await readFile(path.join(d, 'server.crt'), 'utf8'), key: await readFile(path.join(d, 'server.key'), 'utf8') };
        } finally {
          await rm(d, { recursive: true, force: true });
        }
      },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
