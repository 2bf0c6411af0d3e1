/**
 * Shared by the install, RBAC, metrics and production-build tests: apply the
 * install manifests, make a kubeconfig for one of their ServiceAccounts (a
 * TokenRequest, never admin), run `kiln` as a child process and read its JSON
 * logs, scrape its HTTP endpoints.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { K8sObject } from '../../kinds/types.js';
import { toYaml } from '../../lib/yaml.js';
import type { ControlPlaneClient } from '../harness/connect.js';

export const ROOT = join(import.meta.dirname, '..', '..');

export const suffix = () => randomBytes(3).toString('hex');

/** `kubectl apply --server-side` of objects (admin), with extra flags such as --dry-run=server. */
export async function applyObjects(cp: ControlPlaneClient, objects: unknown[], extra: string[] = []) {
  return cp.kubectl(['apply', '--server-side', '--force-conflicts', ...extra, '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }), timeoutMs: 120_000 });
}

/** Removes what an installation created outside its namespace, then the namespace. */
export async function uninstall(cp: ControlPlaneClient, objects: K8sObject[]): Promise<void> {
  for (const o of objects) {
    if (o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding') await cp.kubectl(['delete', o.kind.toLowerCase(), o.metadata.name, '--ignore-not-found', '--wait=false']);
  }
  for (const o of objects) if (o.kind === 'Namespace') await cp.kubectl(['delete', 'namespace', o.metadata.name, '--ignore-not-found', '--wait=false']);
}

const tokenDirs: string[] = [];

/**
 * A kubeconfig file (mode 0600, in a fresh temporary directory) that
 * authenticates as the ServiceAccount with a bound token; the token is never
 * printed. removeKubeconfigs() deletes them.
 */
export async function serviceAccountKubeconfig(cp: ControlPlaneClient, namespace: string, name: string): Promise<string> {
  const token = (await cp.kubectlOk(['create', 'token', name, '-n', namespace, '--duration', '2h'])).trim();
  const dir = mkdtempSync(join(tmpdir(), 'kiln-sa-'));
  tokenDirs.push(dir);
  const file = join(dir, 'kubeconfig');
  writeFileSync(
    file,
    toYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: cp.server, 'certificate-authority-data': readFileSync(cp.caFile).toString('base64') } }],
      users: [{ name: `system:serviceaccount:${namespace}:${name}`, user: { token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: `system:serviceaccount:${namespace}:${name}` } }],
      'current-context': 'test',
    }),
    { mode: 0o600 },
  );
  return file;
}

/** Deletes every kubeconfig serviceAccountKubeconfig() wrote in this process. */
export function removeKubeconfigs(): void {
  for (const d of tokenDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface KilnProcess {
  child: ChildProcess;
  /** stderr lines (JSON logs, and anything else the process printed). */
  lines: string[];
  stdout: () => string;
  exited: Promise<number | null>;
  /** Resolves with the first line matching, or rejects after timeoutMs (with the last lines). */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<number | null>;
}

/** Runs `node <bin> args...` (bin/kiln.js by default); env replaces nothing unless given. */
export function startKiln(args: string[], opts: { bin?: string; cwd?: string; env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {}): KilnProcess {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), opts.bin ?? join(ROOT, 'bin', 'kiln.js'), ...args], {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? { ...process.env, KUBECONFIG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let out = '';
  let partial = '';
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      for (const w of [...waiters])
        if (w.re.test(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
    }
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      if (partial) lines.push(partial);
      resolve(code);
    }),
  );
  return {
    child,
    lines,
    stdout: () => out,
    exited,
    waitForLine(re, timeoutMs = 30_000) {
      const found = lines.find((l) => re.test(l));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = {
          re,
          resolve: (l: string) => {
            clearTimeout(t);
            resolve(l);
          },
        };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no line matching ${re} within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        const code = await exited;
        clearTimeout(t);
        return code;
      }
      return exited;
    },
  };
}

export async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' } });
  return { status: res.status, body: await res.text() };
}

/** The value of one Prometheus sample (`name{labels}`) in a scrape, or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}
