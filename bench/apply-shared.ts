/**
 * What bench/apply.ts and bench/apply-replicas.ts share: the control plane's
 * CPU from /proc, a free port, an admin read of the API, and a summary of the
 * requests the audit log counted.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { ApiRequest } from '../test/harness/audit-log.js';
import type { ControlPlane } from '../test/harness/controlplane.js';

const API = 'kiln.dev/v1alpha1';

/** DirectoryService like examples/directory/directoryservice.yaml, with a distinct name. */
export function directoryService(i: number, namespace: string) {
  return {
    apiVersion: API,
    kind: 'DirectoryService',
    metadata: { name: `ds-${String(i).padStart(5, '0')}`, namespace },
    spec: {
      replicas: 3,
      image: 'registry.example.com/forgerock/ds:7.5.1',
      resources: { requests: { cpu: '1', memory: '3Gi' }, limits: { memory: '3Gi' } },
      env: [{ name: 'DS_JAVA_ARGS', value: '-XX:MaxRAMPercentage=75' }],
      storage: { size: '100Gi', storageClassName: 'fast', volumeSnapshotClassName: 'csi-snapshots' },
      secrets: { masterKeypair: 'ds-master-keypair', sslKeypair: 'ds-ssl-keypair', truststore: 'ds-truststore' },
      passwords: {
        'uid=admin': { secretName: 'ds-passwords', key: 'dirmanager.pw' },
        'uid=am-config,ou=admins,ou=am-config': { secretName: 'am-passwords', key: 'am-config.pw', create: true },
        'uid=am-identity-bind-account,ou=admins,ou=identities': { secretName: 'am-passwords', key: 'am-identity-bind.pw', create: true },
      },
      scheduling: { tolerateDedicatedNodes: true, antiAffinity: 'Soft' },
      service: { type: 'ClusterIP' },
    },
  };
}

export const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system) used so far by each control-plane server. */
export function serverCpu(pids: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[name] = (Number(fields[11]) + Number(fields[12])) / clockTicks;
    } catch {
      // not running
    }
  }
  return out;
}

export const cpuSince = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.keys(b).map((k) => [k, Number((b[k]! - (a[k] ?? 0)).toFixed(2))]));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export const VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] as const;
export const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

export function percentiles(xs: number[]): { p50: number; p90: number; max: number } | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
  return { p50: at(0.5), p90: at(0.9), max: Math.round(s[s.length - 1]!) };
}

/** The requests of a phase: totals, by verb and endpoint, writes repeated on one object, errors, server latency. */
export function summarize(reqs: ApiRequest[]) {
  const byVerb: Record<string, number> = Object.fromEntries(VERBS.map((v) => [v, 0]));
  const byEndpoint: Record<string, number> = {};
  const errorsByCode: Record<string, number> = {};
  // The same object written more than once (events have generated names: never repeated).
  const writesPerObject = new Map<string, number>();
  for (const r of reqs) {
    if (WRITE_VERBS.has(r.verb) && r.object) {
      const k = `${r.verb} ${r.endpoint} ${r.object}`;
      writesPerObject.set(k, (writesPerObject.get(k) ?? 0) + 1);
    }
    byVerb[r.verb] = (byVerb[r.verb] ?? 0) + 1;
    const key = `${r.verb} ${r.endpoint}`;
    byEndpoint[key] = (byEndpoint[key] ?? 0) + 1;
    if (r.code !== undefined && r.code >= 400) errorsByCode[r.code] = (errorsByCode[r.code] ?? 0) + 1;
  }
  return {
    total: reqs.length,
    writes: reqs.filter((r) => WRITE_VERBS.has(r.verb)).length,
    errors: Object.values(errorsByCode).reduce((a, b) => a + b, 0),
    serverLatencyMs: percentiles(reqs.map((r) => r.latencyMs).filter((l): l is number => l !== undefined)),
    serverLatencyMsByEndpoint: Object.fromEntries(
      [...new Set(reqs.filter((r) => r.latencyMs !== undefined).map((r) => `${r.verb} ${r.endpoint}`))].map((k) => [
        k,
        percentiles(reqs.filter((r) => `${r.verb} ${r.endpoint}` === k && r.latencyMs !== undefined).map((r) => r.latencyMs!)),
      ]),
    ),
    repeatedWrites: [...writesPerObject.values()].reduce((a, n) => a + n - 1, 0),
    repeatedWritesByEndpoint: [...writesPerObject]
      .filter(([, n]) => n > 1)
      .reduce<Record<string, number>>((acc, [k, n]) => {
        const endpoint = k.split(' ').slice(0, 2).join(' ');
        acc[endpoint] = (acc[endpoint] ?? 0) + n - 1;
        return acc;
      }, {}),
    byVerb,
    byEndpoint: Object.fromEntries(Object.entries(byEndpoint).sort(([, a], [, b]) => b - a)),
    errorsByCode,
  };
}

/** A GET with the harness's admin token (not audited). */
export function getJson<T>(cp: ControlPlane, path: string): Promise<T> {
  const ca = readFileSync(cp.caFile);
  return new Promise((resolve, reject) => {
    const req = https.get(`${cp.server}${path}`, { ca, headers: { Authorization: `Bearer ${cp.adminToken}`, Accept: 'application/json' }, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`GET ${path}: ${res.statusCode} ${text.slice(0, 500)}`));
        resolve(JSON.parse(text) as T);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', reject);
  });
}

/** The status /readyz on 127.0.0.1:`port` answers with; 0 when nothing answers within 2 s. */
export function readyzStatus(port: number): Promise<number> {
  return new Promise<number>((resolve) => {
    const req = http.get(`http://127.0.0.1:${port}/readyz`, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}
