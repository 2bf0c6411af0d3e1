/**
 * /metrics, /healthz and /readyz of `kiln controller` (a child process, as it
 * runs in its Deployment), scraped while it reconciles: apply mode against the
 * control plane, git mode into a bare repository.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { KilnResource } from '../../charts/types.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { initBareRepo, plainGit } from '../harness/git.js';
import { waitFor } from '../harness/wait.js';
import { freePort, httpGet, sample, startKiln, suffix, type KilnProcess } from './install-support.js';

let cp: ControlPlaneClient;
const id = suffix();
const applyNs = `kiln-metrics-${id}`;
const gitNs = `kiln-metrics-git-${id}`;
const scratch = mkdtempSync(join(tmpdir(), 'kiln-metrics-'));
const running: KilnProcess[] = [];
const COUNT = 12;

const grid = (ns: string, n: string): KilnResource => ({
  apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: n, namespace: ns }, spec: { cache: 'session-cache', partitions: 13 },
});
const cache = (ns: string): KilnResource => ({
  apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', metadata: { name: 'session-cache', namespace: ns }, spec: { image: 'registry.example.com/cache:1', size: 2, catalogServers: 1 },
});

async function readyCount(ns: string): Promise<number> {
  const out = await cp.kubectl(['get', 'kiln', '-n', ns, '-o', 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}']);
  return out.stdout.split('\n').filter((l) => l === 'True').length;
}

async function controller(args: string[]): Promise<{ p: KilnProcess; metrics: number; health: number }> {
  const [metrics, health] = [await freePort(), await freePort()];
  const p = startKiln(['controller', '--kubeconfig', cp.kubeconfig, '--metrics-bind-address', `127.0.0.1:${metrics}`, '--health-probe-bind-address', `127.0.0.1:${health}`, ...args]);
  running.push(p);
  await waitFor('the metrics server', async () => (await httpGet(metrics, '/metrics').catch(() => undefined))?.status === 200, 60_000, () => p.lines.slice(-10).join('\n'));
  return { p, metrics, health };
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  for (const ns of [applyNs, gitNs]) await cp.kubectlOk(['create', 'namespace', ns]);
});

afterAll(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()));
  for (const ns of [applyNs, gitNs]) await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  rmSync(scratch, { recursive: true, force: true });
});

describe('metrics and probes of kiln controller', () => {
  it('apply mode: reconciles per kind with durations, queue depth, API requests, leader; probes answer while it reconciles', async () => {
    const { p, metrics, health } = await controller(['--mode', 'apply', '-n', applyNs]);
    await waitFor('/readyz', async () => (await httpGet(health, '/readyz')).status === 200, 30_000);
    expect(await httpGet(health, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect((await httpGet(health, '/metrics')).status).toBe(404); // probes and metrics on their own ports
    expect((await httpGet(metrics, '/healthz')).status).toBe(404);
    const objects = [cache(applyNs), ...Array.from({ length: COUNT }, (_, i) => grid(applyNs, `grid-${i}`))];
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });
    // Scrape while it works: every scrape answers, and some come before everything is Ready.
    const scrapes: { ready: number; depth: number | undefined; status: number; health: number }[] = [];
    await waitFor('all Ready', async () => {
      const [m, h, ready] = await Promise.all([httpGet(metrics, '/metrics'), httpGet(health, '/healthz'), readyCount(applyNs)]);
      scrapes.push({ ready, depth: sample(m.body, 'kiln_workqueue_depth{name="controller"}'), status: m.status, health: h.status });
      return ready === objects.length;
    }, 60_000, () => p.lines.slice(-10).join('\n'));
    expect(scrapes.every((s) => s.status === 200 && s.health === 200)).toBe(true);
    expect(scrapes.some((s) => s.ready < objects.length)).toBe(true);
    expect(scrapes.every((s) => s.depth !== undefined && s.depth >= 0)).toBe(true);
    const text = await waitFor('the queue drained', async () => {
      const m = (await httpGet(metrics, '/metrics')).body;
      return sample(m, 'kiln_workqueue_depth{name="controller"}') === 0 ? m : undefined;
    });
    expect(sample(text, 'kiln_reconcile_total{kind="DataGrid",outcome="success"}')).toBeGreaterThanOrEqual(COUNT);
    expect(sample(text, 'kiln_reconcile_total{kind="CacheCluster",outcome="success"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'kiln_reconcile_duration_seconds_count{kind="DataGrid",outcome="success"}')).toBeGreaterThanOrEqual(COUNT);
    expect(sample(text, 'kiln_reconcile_duration_seconds_sum{kind="DataGrid",outcome="success"}')).toBeGreaterThan(0);
    expect(sample(text, 'kiln_reconcile_duration_seconds_bucket{le="+Inf",kind="DataGrid",outcome="success"}')).toBeGreaterThanOrEqual(COUNT);
    expect(sample(text, 'kiln_workqueue_adds_total{name="controller"}')).toBeGreaterThanOrEqual(objects.length);
    // Server-side applies that created objects (201) and status writes (200); the informers' lists and watches.
    expect(sample(text, 'kiln_api_requests_total{verb="PATCH",code="201"}')).toBeGreaterThanOrEqual(COUNT);
    expect(sample(text, 'kiln_api_requests_total{verb="PATCH",code="200"}')).toBeGreaterThanOrEqual(COUNT);
    expect(sample(text, 'kiln_api_requests_total{verb="LIST",code="200"}')).toBeGreaterThan(0);
    expect(sample(text, 'kiln_api_requests_total{verb="WATCH",code="200"}')).toBeGreaterThan(0);
    expect(sample(text, 'kiln_leader')).toBe(1);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    // No series per resource: the labels name kinds, never resources.
    expect(text).not.toContain('grid-0');
    expect(await p.stop()).toBe(0);
  }, 180_000);

  it('git mode: commits and pushes', async () => {
    const bare = join(scratch, 'deploy.git');
    initBareRepo(bare, scratch);
    const { p, metrics } = await controller(['--mode', 'git', '-n', gitNs, '--repo', bare, '--branch', 'main', '--cluster', 'metrics', '--debounce', '200', '--work-dir', join(scratch, 'clone')]);
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [cache(gitNs), grid(gitNs, 'sessions')] }) });
    await waitFor('both Ready (committed)', async () => (await readyCount(gitNs)) === 2, 60_000, () => p.lines.slice(-10).join('\n'));
    const text = (await httpGet(metrics, '/metrics')).body;
    const commits = Number(plainGit(scratch, ['--git-dir', bare, 'rev-list', '--count', 'main']).trim()) - 1; // less the seed commit
    expect(commits).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'kiln_git_commits_total')).toBe(commits);
    expect(sample(text, 'kiln_git_pushes_total{outcome="success"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'kiln_git_pushes_total{outcome="error"}') ?? 0).toBe(0);
    expect(sample(text, 'kiln_reconcile_total{kind="DataGrid",outcome="success"}')).toBeGreaterThanOrEqual(1);
    // Git mode applies nothing: its only writes are status patches.
    expect(sample(text, 'kiln_api_requests_total{verb="PATCH",code="201"}') ?? 0).toBe(0);
    await p.stop();
  }, 180_000);
});
