/**
 * Log formats (lib/log.ts, --log-format): JSON lines with level names and ISO
 * times; pino-pretty's console lines for a terminal, the default on one; and
 * the fields of the reconcile a line is logged in.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultLogFormat, logFieldsOf, loggerOptions, reconcileFields, withLogFields } from '../../lib/log.js';

const root = join(import.meta.dirname, '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'kiln-log-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// A cluster nobody answers at: the controller logs "starting", then gives up after --startup-timeout.
const kubeconfig = join(tmp, 'kubeconfig');
writeFileSync(
  kubeconfig,
  `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: not-a-secret}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`,
);
const args = ['controller', '--kubeconfig', kubeconfig, '--startup-timeout', '1', '--metrics-bind-address', '0', '--health-probe-bind-address', '0'];

function controller(extra: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'bin', 'kiln.js'), ...args, ...extra], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr });
    });
  });
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('kiln controller --log-format', () => {
  it('json (the default when stderr is not a terminal): level names and ISO 8601 times', async () => {
    for (const extra of [[], ['--log-format', 'json']]) {
      const r = await controller(extra);
      const starting = r.stderr.split('\n').find((l) => l.includes('"msg":"starting"'));
      expect(starting, r.stderr).toBeDefined();
      expect(starting).toContain('"level":"info"');
      const line = JSON.parse(starting!) as { level: string; time: string; logger: string };
      expect(line.time).toMatch(ISO);
      expect(Math.abs(Date.parse(line.time) - Date.now())).toBeLessThan(60_000);
      expect(line.logger).toBe('kiln-controller');
    }
  });

  it('console: one readable line per entry, no JSON', async () => {
    const r = await controller(['--log-format', 'console']);
    const starting = r.stderr.split('\n').find((l) => l.includes('starting'));
    expect(starting, r.stderr).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: starting /);
    expect(r.stderr).not.toMatch(/^\{/m);
  });

  it('console is the default on a terminal (a pty from script(1))', () => {
    const command = [process.execPath, join(root, 'bin', 'kiln.js'), ...args].map((a) => `'${a}'`).join(' ');
    const r = spawnSync('script', ['-qec', command, '/dev/null'], { cwd: tmp, encoding: 'utf8', timeout: 40_000, env: { ...process.env, NO_COLOR: '1' } });
    if (r.error) throw r.error;
    // stdout and stderr both reach the pty: script prints what the terminal showed.
    // eslint-disable-next-line no-control-regex
    const shown = r.stdout.replace(/\x1b\[[0-9;]*m/g, '');
    expect(shown).toMatch(/\] INFO: starting /);
    expect(shown).not.toContain('"level"');
  });

  it('defaultLogFormat: console on a terminal, json otherwise', () => {
    expect(defaultLogFormat({ isTTY: true })).toBe('console');
    expect(defaultLogFormat({ isTTY: false })).toBe('json');
    expect(defaultLogFormat({})).toBe('json');
  });

  it('refuses another format (exit 2)', async () => {
    const r = await controller(['--log-format', 'xml']);
    expect(r.stderr).toMatch(/argument 'xml' is invalid\. Allowed choices are console, json/);
    expect(r.status).toBe(2);
  });
});

/** A logger as newLogger makes it, writing JSON lines into an array. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const logger = pino(loggerOptions('info', 'kiln-controller', 'json'), sink);
  const log = (msg: string, fields: Record<string, unknown> = {}) => logger.info(fields, msg);
  return { lines, log };
}

describe('reconcile fields', () => {
  it('every line logged during a reconcile has its kind, namespace, name and reconcileID; none outside', async () => {
    const { lines, log } = capture();
    const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
    log('before');
    // Two reconciles at once: each line keeps its own.
    await Promise.all([
      withLogFields(reconcileFields('DataGrid/web/sessions'), async () => {
        log('applying');
        await tick(40);
        log('reconciled', { applied: 1 });
      }),
      withLogFields(reconcileFields('PostgresInstance/shop/orders-db'), async () => {
        await tick(5);
        log('applying');
      }),
    ]);
    log('after');
    expect(lines.map((l) => [l.msg, l.kind, l.namespace, l.name])).toEqual([
      ['before', undefined, undefined, undefined],
      ['applying', 'DataGrid', 'web', 'sessions'],
      ['applying', 'PostgresInstance', 'shop', 'orders-db'],
      ['reconciled', 'DataGrid', 'web', 'sessions'],
      ['after', undefined, undefined, undefined],
    ]);
    const ids = lines.filter((l) => l.reconcileID).map((l) => `${String(l.name)}:${String(l.reconcileID)}`);
    expect(ids.every((id) => /:[0-9a-f-]{36}$/.test(id))).toBe(true);
    // One id per reconcile.
    expect(new Set(ids).size).toBe(2);
    expect(lines[3]!.applied).toBe(1);
  });

  it('a failed reconcile hands its fields to the line that reports the failure', async () => {
    const fields = reconcileFields('CacheCluster/web/session-cache');
    const err = await withLogFields(fields, () => Promise.reject(new Error('conflict'))).catch((e: unknown) => e);
    expect(logFieldsOf(err)).toEqual(fields);
    expect(logFieldsOf(new Error('other'))).toEqual({});
  });

  it('JSON lines: level names, ISO times, secrets redacted', () => {
    const { lines, log } = capture();
    log('hello', { token: 'abc' });
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'hello', logger: 'kiln-controller', token: '[redacted]' });
    expect(lines[0]).not.toHaveProperty('name');
    expect(lines[0]!.time).toMatch(ISO);
  });
});
