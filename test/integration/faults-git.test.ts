/**
 * kiln's Git writer (gitops/repo.ts) pushing to a real Git smart-HTTP server
 * (git http-backend) through a fault proxy, beside a writer that reaches the
 * same server directly. For each fault (open connections included):
 *  - the faulted push fails within the writer's limits (shortened here: a
 *    transfer under 1 KiB/s for 3 s, a silent command after 10 s), with an
 *    error that says what failed;
 *  - the direct writer pushes meanwhile;
 *  - when the fault ends, the faulted writer's next push lands.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layoutTree, type RenderedResource } from '../../gitops/layout.js';
import { GitRepoWriter, type GitRepoWriterOptions } from '../../gitops/repo.js';
import { startFaultProxy, type Fault, type FaultProxy } from '../harness/fault-proxy.js';
import { initBareRepo, plainGit } from '../harness/git.js';
import { serveGitHttpBackend } from '../harness/git-http-backend.js';

const FAULTS: Fault[] = [{ kind: 'blackhole' }, { kind: 'half-close' }, { kind: 'reset' }, { kind: 'delay', ms: 100 }];
const LOW_SPEED_S = 3;
const COMMAND_TIMEOUT_MS = 10_000;
/** The low-speed limit plus git's start-up, well under the command timeout. */
const FAIL_WITHIN_MS = COMMAND_TIMEOUT_MS + 3_000;

const tmp = mkdtempSync(join(tmpdir(), 'kiln-faults-git-'));
const served = join(tmp, 'served');
mkdirSync(served);
const AUTHOR = { name: 'kiln bot', email: 'kiln-bot@example.com' };
let server: Server;
let serverUrl: string;
let proxy: FaultProxy;
const logs: string[] = [];

function servedRepo(name: string): void {
  const bare = join(served, name);
  initBareRepo(bare, tmp);
  plainGit(bare, ['config', 'http.receivepack', 'true']);
}

const resource = (name: string, value: string): RenderedResource => ({
  kind: 'ConfigMapSync',
  namespace: 'faults',
  name,
  generation: 1,
  objects: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'faults' }, data: { value } }],
});

function writerOptions(url: string, name: string): GitRepoWriterOptions {
  return {
    url,
    allowInsecureHttp: true,
    branch: 'main',
    workDir: join(tmp, `clone-${name}`),
    basePath: 'clusters',
    lowSpeedSeconds: LOW_SPEED_S,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    maxPushAttempts: 1,
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
  };
}

/** Writes one changed file, commits and pushes; the error if it failed, and how long it took. */
async function pushChange(writer: GitRepoWriter, value: string): Promise<{ error?: Error; ms: number; sha?: string }> {
  const started = Date.now();
  try {
    await writer.writeTree(layoutTree([resource('app', value)], { basePath: 'clusters', cluster: 'dev' }).files);
    await writer.commit(`kiln: app ${value}`, AUTHOR);
    const { sha } = await writer.push();
    return { ms: Date.now() - started, sha };
  } catch (err) {
    return { error: err as Error, ms: Date.now() - started };
  }
}

const remoteHead = (name: string) => plainGit(join(served, name), ['rev-parse', 'main']).trim();

let faulted: GitRepoWriter;
let direct: GitRepoWriter;

beforeAll(async () => {
  server = createServer((req, res) => serveGitHttpBackend(req, res, { root: served, user: 'kiln' }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy = await startFaultProxy({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  servedRepo('faulted.git');
  servedRepo('direct.git');
  faulted = await GitRepoWriter.open(writerOptions(`${proxy.url('http')}/faulted.git`, 'faulted'));
  direct = await GitRepoWriter.open(writerOptions(`${serverUrl}/direct.git`, 'direct'));
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

describe('Git smart-HTTP server behind a faulty network', () => {
  let round = 0;
  for (const fault of FAULTS) {
    it(`${fault.kind}: the faulted push fails in bounded time saying why, another repository's push goes on, and the next push lands when the fault ends`, async () => {
      round++;
      proxy.setFault(fault, { existing: true });
      try {
        const [bad, good] = await Promise.all([pushChange(faulted, `${fault.kind}-${round}`), pushChange(direct, `${fault.kind}-${round}`)]);
        expect(good.error).toBeUndefined();
        expect(remoteHead('direct.git')).toBe(good.sha);
        if (fault.kind === 'delay') {
          expect(bad.error).toBeUndefined();
          expect(remoteHead('faulted.git')).toBe(bad.sha);
        } else {
          console.log(`[faults-git] ${fault.kind}: push failed after ${bad.ms} ms: ${bad.error?.message.split('\n').slice(0, 3).join(' | ')}`);
          expect(bad.error?.message).toMatch(/git push|push/);
          expect(bad.ms).toBeLessThan(FAIL_WITHIN_MS);
        }
      } finally {
        proxy.setFault({ kind: 'none' });
      }
      if (fault.kind === 'delay') return;
      const healed = Date.now();
      const again = await pushChange(faulted, `${fault.kind}-${round}-after`);
      expect(again.error).toBeUndefined();
      expect(remoteHead('faulted.git')).toBe(again.sha);
      console.log(`[faults-git] ${fault.kind}: pushed ${Date.now() - healed} ms after the fault ended`);
    });
  }

  it('blackhole: a fetch (sync) fails within the low-speed limit too, and works again after', async () => {
    proxy.setFault({ kind: 'blackhole' }, { existing: true });
    const started = Date.now();
    try {
      const err = await faulted.sync().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      console.log(`[faults-git] blackhole: sync failed after ${Date.now() - started} ms: ${err?.message.split('\n')[0]}`);
      expect(err?.message).toMatch(/Operation too slow/);
      expect(Date.now() - started).toBeLessThan(FAIL_WITHIN_MS);
    } finally {
      proxy.setFault({ kind: 'none' });
    }
    await faulted.sync();
  });
});
