/**
 * What the container image runs, without a container engine: the Dockerfile's
 * runtime stage is read and carried out in a temporary directory (its COPY
 * lines, its `npm ci --omit=dev`, its ENV), from JavaScript compiled with
 * tsconfig.build.json as the build stage does. Then, with no TypeScript
 * toolchain reachable and the application directory read-only (as the image's
 * root filesystem is), `kiln version`, `kiln controller --help`, `kiln agent
 * --help` work and `kiln controller --mode apply` converges an example
 * against the real control plane with the install manifests' ServiceAccount;
 * `kiln agent` with its own ServiceAccount fills its caches and leads.
 */
import { execFile } from 'node:child_process';
import { existsSync, globSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { installObjects } from '../../install/install.js';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { refusedLine } from '../harness/refused.js';
import { assembleImage } from '../harness/image.js';
import { waitFor } from '../harness/wait.js';
import { exampleResources } from '../unit/fixtures.js';
import { applyObjects, freePort, httpGet, ROOT, removeKubeconfigs, serviceAccountKubeconfig, startKiln, suffix, uninstall, type KilnProcess } from './install-support.js';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'kiln-image-'));
const app = join(work, 'app');
let env: NodeJS.ProcessEnv = {};
let cp: ControlPlaneClient;
let installed: K8sObject[] = [];
const id = suffix();
const ns = `kiln-image-${id}`;
const installNs = `kiln-image-system-${id}`;
const running: KilnProcess[] = [];

const kiln = (args: string[]) => run(process.execPath, [join(app, 'bin', 'kiln.js'), ...args], { cwd: app, env, timeout: 60_000 });

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  ({ env } = await assembleImage(work));
}, 600_000);

afterAll(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()));
  removeKubeconfigs();
  if (installed.length) await uninstall(cp, installed);
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  await run('chmod', ['-R', 'u+w', work]).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

describe('the production build (what the image runs)', () => {
  it('holds compiled JavaScript and production dependencies only', () => {
    expect(existsSync(join(app, 'build', 'cli', 'kiln.js'))).toBe(true);
    expect(existsSync(join(app, 'cli'))).toBe(false);
    expect(globSync('**/*.ts', { cwd: join(app, 'build') }).filter((f) => !f.endsWith('.d.ts'))).toEqual([]);
    for (const dev of ['typescript', 'tsx', 'vitest', 'cdk8s-cli', 'esbuild', 'node']) expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false);
    for (const dep of Object.keys(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).dependencies)) expect(existsSync(join(app, 'node_modules', dep)), dep).toBe(true);
    expect(existsSync(join(app, 'build', 'bench'))).toBe(false);
    expect(existsSync(join(app, 'build', 'test'))).toBe(false);
  });

  it('kiln version, --help, controller --help, agent --help, install --help', async () => {
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
    expect((await kiln(['version'])).stdout.trim()).toBe(version);
    expect((await kiln(['--version'])).stdout.trim()).toBe(version);
    const help = (await kiln(['--help'])).stdout;
    for (const c of ['synth', 'controller', 'agent', 'gitops', 'install', 'version']) expect(help).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    const controller = (await kiln(['controller', '--help'])).stdout;
    for (const f of [
      '--mode',
      '--kubeconfig',
      '--metrics-bind-address',
      '--health-probe-bind-address',
      '--leader-elect',
      '--startup-timeout',
      '--log-level',
      '--leader-election-namespace',
      '--repo',
      '--git-token-file',
    ])
      expect(controller).toContain(f);
    const agent = (await kiln(['agent', '--help'])).stdout;
    for (const f of ['--kubeconfig', '--metrics-bind-address', '--health-probe-bind-address', '--leader-elect', '--startup-timeout', '--log-level', '--leader-election-namespace'])
      expect(agent).toContain(f);
    expect((await kiln(['install', '--help'])).stdout).toContain('--mode');
  });

  it("kiln controller --mode apply, with the install manifests' ServiceAccount, converges an example and answers its probes and /metrics", async () => {
    installed = installObjects({ mode: 'apply', version: 'test', namespace: installNs, name: `kp-${id}`, crds: 'skip' });
    expect((await applyObjects(cp, installed)).code).toBe(0);
    await cp.kubectlOk(['create', 'namespace', ns]);
    const kubeconfig = await serviceAccountKubeconfig(cp, installNs, `kp-${id}-controller`);
    const [metricsPort, healthPort] = [await freePort(), await freePort()];
    // Started as its Deployment starts it: the container's node flags and environment.
    const runtime = containerRuntime(installed, `kp-${id}-controller`);
    const p = startKiln(
      [
        'controller',
        '--mode',
        'apply',
        '--kubeconfig',
        kubeconfig,
        '-n',
        ns,
        '--leader-elect',
        '--leader-election-namespace',
        installNs,
        '--leader-election-id',
        `kp-${id}-controller`,
        '--metrics-bind-address',
        `:${metricsPort}`,
        '--health-probe-bind-address',
        `:${healthPort}`,
      ],
      { bin: join(app, 'bin', 'kiln.js'), cwd: app, env: { ...env, ...runtime.env }, nodeArgs: runtime.nodeArgs },
    );
    running.push(p);
    await p.waitForLine(/"msg":"leading; starting workers"/, 60_000);
    // --leader-elect, as its Deployment passes it: it holds its Lease with the install's Role.
    expect(p.lines.some((l) => l.includes('"msg":"leader election: became leader"'))).toBe(true);
    const example = exampleResources()
      .map((e) => e.resource)
      .find((r) => r.kind === 'DirectoryService')!;
    const ds: KilnResource = { ...example, metadata: { name: example.metadata.name, namespace: ns } };
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(ds) });
    await waitFor(
      'DirectoryService Ready',
      async () => {
        const r = await cp.kubectl(['get', '-n', ns, 'directoryservice', ds.metadata.name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
        return r.stdout === 'True';
      },
      60_000,
      () => p.lines.slice(-10).join('\n'),
    );
    expect((await cp.kubectl(['get', '-n', ns, 'statefulset', ds.metadata.name])).code).toBe(0);
    expect((await httpGet(healthPort, '/healthz')).status).toBe(200);
    expect((await httpGet(healthPort, '/readyz')).status).toBe(200);
    const metrics = (await httpGet(metricsPort, '/metrics')).body;
    expect(metrics).toMatch(/^controller_runtime_reconcile_total\{controller="directoryservice",result="(success|requeue_after)"\} [1-9]/m);
    expect(metrics).toContain(`kiln_build_info{version="${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version}",component="controller"} 1`);
    // JSON logs, nothing on stdout, no TypeScript loader anywhere.
    expect(p.lines.filter((l) => l.startsWith('{')).length).toBeGreaterThan(0);
    expect(p.lines.join('\n')).not.toMatch(/tsx|\.ts:\d/);
    expect(await p.stop()).toBe(0);
    expect(p.lines.some((l) => l.includes('"msg":"shutting down"'))).toBe(true);
  }, 180_000);

  it("kiln agent, with the install manifests' ServiceAccount, fills its caches, leads and answers its probes and /metrics", async () => {
    expect(installed.length).toBeGreaterThan(0); // installed by the previous test
    const kubeconfig = await serviceAccountKubeconfig(cp, installNs, `kp-${id}-agent`);
    const [metricsPort, healthPort] = [await freePort(), await freePort()];
    const runtime = containerRuntime(installed, `kp-${id}-agent`);
    const p = startKiln(
      [
        'agent',
        '--kubeconfig',
        kubeconfig,
        '-n',
        ns,
        '--leader-elect',
        '--leader-election-namespace',
        installNs,
        '--leader-election-id',
        `kp-${id}-agent`,
        '--metrics-bind-address',
        `:${metricsPort}`,
        '--health-probe-bind-address',
        `:${healthPort}`,
      ],
      { bin: join(app, 'bin', 'kiln.js'), cwd: app, env: { ...env, ...runtime.env }, nodeArgs: runtime.nodeArgs },
    );
    running.push(p);
    await p.waitForLine(/"msg":"leading; starting workers"/, 60_000);
    // --leader-elect, as its Deployment passes it: it holds its Lease with the install's Role.
    expect(p.lines.some((l) => l.includes('"msg":"leader election: became leader"'))).toBe(true);
    expect((await httpGet(healthPort, '/readyz')).status).toBe(200);
    expect((await httpGet(healthPort, '/healthz')).status).toBe(200);
    expect((await httpGet(metricsPort, '/metrics')).body).toContain('kiln_build_info{version=');
    expect(p.lines.filter((l) => refusedLine(l))).toEqual([]);
    expect(await p.stop()).toBe(0);
  }, 120_000);
});

/**
 * The node flags and plain environment values of a Deployment's container,
 * checked to start the image's entrypoint script with the image's node.
 */
function containerRuntime(objects: { kind: string; metadata: { name: string } }[], deployment: string): { nodeArgs: string[]; env: Record<string, string> } {
  const d = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === deployment) as unknown as
    { spec: { template: { spec: { containers: { command?: string[]; env?: { name: string; value?: string }[] }[] } } } } | undefined;
  const container = d?.spec.template.spec.containers[0];
  const command = container?.command ?? [];
  expect(command[0], `${deployment} command`).toBe('node');
  expect(command.at(-1), `${deployment} entrypoint`).toBe('/app/bin/kiln.js');
  const env = Object.fromEntries((container?.env ?? []).filter((e) => e.value !== undefined && e.name !== 'HOME').map((e) => [e.name, e.value!]));
  return { nodeArgs: command.slice(1, -1), env };
}
