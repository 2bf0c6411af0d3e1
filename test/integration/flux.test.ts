/**
 * Git mode end to end with a real Flux: kiln (the command, in git mode)
 * commits what it renders to a repository served over smart HTTP on loopback;
 * `kiln gitops bootstrap --flux` is applied; Flux's source-controller fetches
 * the branch and its kustomize-controller applies the tree kiln wrote. Nothing
 * here stands in for Flux: both controllers are built from Flux's Go modules
 * (scripts/build-flux.sh) and run as processes against the test control plane.
 * The pods behind the StatefulSets are the stand-in kubelet's (no images here),
 * so Flux's health checks (`wait: true`) see them become ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { buildFlux, FLUX_NAMESPACE, startFlux, type Flux } from '../harness/flux.js';
import { serveGitHttpBackend } from '../harness/git-http-backend.js';
import { initBareRepo, plainGit } from '../harness/git.js';
import { waitFor } from '../harness/wait.js';
import { exampleResources } from '../unit/fixtures.js';

const root = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-flux-'));
const id = randomBytes(3).toString('hex');
const ns = `kiln-flux-${id}`;
const CLUSTER = `e2e-${id}`;
const NAME = `kiln-${CLUSTER}`;
const TOKEN = `kiln-flux-token-${randomBytes(12).toString('hex')}`;
const FLUX_LABELS = { 'kustomize.toolkit.fluxcd.io/name': NAME, 'kustomize.toolkit.fluxcd.io/namespace': FLUX_NAMESPACE };

let cp: ControlPlaneClient;
let flux: Flux;
let fluxDir: string | undefined;
let http: Server;
let repoUrl: string;
const bare = join(tmp, 'repos', 'deploy.git');
const git = (...args: string[]) => plainGit(tmp, ['--git-dir', bare, ...args]).trim();
const figures: Record<string, number> = {};

// ---------------------------------------------------------------- Git over HTTP, token required for every request

function startGitServer(): Promise<string> {
  const expected = `Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}`;
  http = createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="deploy"' }).end();
      return;
    }
    serveGitHttpBackend(req, res, { root: join(tmp, 'repos'), user: 'kiln' });
  });
  return new Promise((resolve) => http.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(http.address() as AddressInfo).port}/deploy.git`)));
}

// ---------------------------------------------------------------- kiln, the command

interface Kiln {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

function startKiln(extra: string[] = []): Kiln {
  let out = '';
  const tokenFile = join(tmp, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GIT_') && k !== 'KILN_GIT_TOKEN'));
  const child = spawn(
    process.execPath,
    [
      join(root, 'bin/kiln.js'),
      'controller',
      '--mode=git',
      `--kubeconfig=${cp.kubeconfig}`,
      `--namespace=${ns}`,
      `--repo=${repoUrl}`,
      '--allow-insecure-http',
      '--branch=main',
      `--cluster=${CLUSTER}`,
      `--git-token-file=${tokenFile}`,
      `--work-dir=${join(tmp, `clone-${randomBytes(2).toString('hex')}`)}`,
      '--debounce=300',
      `--flux=${FLUX_NAMESPACE}/${NAME}`,
      '--health-probe-bind-address=0',
      '--metrics-bind-address=0',
      ...extra,
    ],
    { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  return { child, output: () => out, stop };
}

let kiln: Kiln | undefined;

// ---------------------------------------------------------------- cluster reads

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
interface KustomizationStatus {
  conditions?: Condition[];
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  inventory?: { entries?: { id: string; v: string }[] };
}

async function getJson<T>(args: string[]): Promise<T | undefined> {
  const r = await cp.kubectl(['get', ...args, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

const kustomization = () => getJson<{ status?: KustomizationStatus }>(['kustomization.kustomize.toolkit.fluxcd.io', NAME, '-n', FLUX_NAMESPACE]);
const ready = (conditions: Condition[] | undefined) => conditions?.find((c) => c.type === 'Ready');
const context = () => `kiln:\n${kiln?.output().slice(-2500) ?? ''}\nkustomize-controller:\n${flux?.log('kustomize-controller').slice(-2500) ?? ''}`;

/** Flux applied `sha` (its lastAppliedRevision is `main@sha1:<sha>`) and says Ready. */
async function fluxApplied(sha: string, timeoutMs = 120_000): Promise<KustomizationStatus> {
  return waitFor(
    `Flux Kustomization ${NAME} Ready at ${sha.slice(0, 12)}`,
    async () => {
      const k = await kustomization();
      return k?.status?.lastAppliedRevision === `main@sha1:${sha}` && ready(k.status.conditions)?.status === 'True' ? k.status : undefined;
    },
    timeoutMs,
    context,
  );
}

interface Live {
  metadata: { generation: number };
  status?: { commit?: string; observedGeneration?: number; conditions?: Condition[] };
}
const liveOf = (kind: string, name: string) => getJson<Live>([`${kind.toLowerCase()}.kiln.dev/${name}`, '-n', ns]);

/** kiln's resource says Ready with `reason` for its current generation. */
async function kilnReady(kind: string, name: string, reason = 'Applied', timeoutMs = 120_000): Promise<Live> {
  return waitFor(
    `${kind}/${name} Ready (${reason})`,
    async () => {
      const o = await liveOf(kind, name);
      const c = ready(o?.status?.conditions);
      return c?.status === 'True' && c.reason === reason && o!.status!.observedGeneration === o!.metadata.generation ? o : undefined;
    },
    timeoutMs,
    context,
  );
}

const headOf = (branch: string): string | undefined => {
  try {
    return git('rev-parse', `refs/heads/${branch}`);
  } catch {
    return undefined;
  }
};

const resources = exampleResources()
  .map((e) => e.resource)
  .filter((r) => ['DirectoryService', 'CacheCluster', 'DataGrid', 'PostgresInstance'].includes(r.kind))
  .map((r) => ({ ...r, metadata: { ...r.metadata, namespace: ns } }));
const directory = resources.find((r) => r.kind === 'DirectoryService')!;

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  fluxDir = await buildFlux();
  flux = await startFlux(cp, { fluxDir, dir: join(tmp, 'flux') });
  mkdirSync(join(tmp, 'repos'), { recursive: true });
  initBareRepo(bare, tmp);
  repoUrl = await startGitServer();
  await cp.kubectlOk(['create', 'namespace', ns]);
  // Flux reads the repository with its own credential, a Secret named by --secret-ref.
  await cp.kubectlOk(['create', 'secret', 'generic', `${NAME}-git`, '-n', FLUX_NAMESPACE, '--from-literal=username=x-access-token', `--from-literal=password=${TOKEN}`]);
}, 20 * 60_000);

afterAll(async () => {
  await kiln?.stop();
  // Flux's objects go while Flux still runs, so its finalizers are honoured (it prunes what it applied);
  // then its CRDs, so the next file finds the cluster as this one did (gitops-bootstrap.test.ts removes them itself).
  const fluxObjects = ['kustomization.kustomize.toolkit.fluxcd.io,gitrepository.source.toolkit.fluxcd.io', NAME, '-n', FLUX_NAMESPACE];
  await cp?.kubectl(['delete', ...fluxObjects, '--ignore-not-found', '--wait=true', '--timeout=60s'], { timeoutMs: 90_000 });
  await flux?.stop();
  for (const kind of ['kustomization.kustomize.toolkit.fluxcd.io', 'gitrepository.source.toolkit.fluxcd.io']) {
    await cp?.kubectl(['patch', kind, NAME, '-n', FLUX_NAMESPACE, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
  }
  await cp?.kubectl(['delete', 'secret', `${NAME}-git`, '-n', FLUX_NAMESPACE, '--wait=false']);
  if (fluxDir) await cp?.kubectl(['delete', '-f', join(fluxDir, 'crds'), '--ignore-not-found', '--wait=true', '--timeout=60s'], { timeoutMs: 90_000 });
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  http?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('git mode with a real Flux', () => {
  it('Flux applies the examples kiln committed, with its labels; its Kustomization and kiln resources become Ready', async () => {
    kiln = startKiln();
    const started = Date.now();
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: resources.map((r) => JSON.stringify(r)).join('\n---\n') });
    const committed = await waitFor(
      'kiln to commit every example',
      () => {
        const sha = headOf('main');
        if (!sha) return undefined;
        const files = git('ls-tree', '-r', '--name-only', sha).split('\n');
        return resources.every((r) => files.includes(`clusters/${CLUSTER}/${ns}/${r.kind.toLowerCase()}/${r.metadata.name}/manifest.yaml`)) ? sha : undefined;
      },
      60_000,
      context,
    );
    // Committed, but no Flux applies it yet: kiln says it is waiting, not Ready.
    const waiting = await waitFor('DirectoryService waiting for Flux', async () => {
      const c = ready((await liveOf('DirectoryService', directory.metadata.name))?.status?.conditions);
      return c?.reason === 'WaitingForFlux' ? c : undefined;
    });
    expect(waiting.status).toBe('False');
    expect(waiting.message).toContain(`waiting for Flux Kustomization ${FLUX_NAMESPACE}/${NAME}`);

    const bootstrap = await new Promise<string>((resolve, reject) => {
      const c = spawn(process.execPath, [join(root, 'bin/kiln.js'), 'gitops', 'bootstrap', '--flux', `--repo=${repoUrl}`, '--branch=main', `--cluster=${CLUSTER}`, `--secret-ref=${NAME}-git`], {
        cwd: root,
      });
      let out = '';
      let err = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (err += d.toString()));
      c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`kiln gitops bootstrap exited ${code}: ${err}`))));
    });
    expect(bootstrap).toContain('kind: GitRepository');
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: bootstrap });

    const status = await fluxApplied(committed, 180_000);
    figures['examples applied -> Flux Ready (s)'] = (Date.now() - started) / 1000;

    // Every object kiln rendered is in the cluster, labelled by Flux, and in Flux's inventory.
    const inventory = (status.inventory?.entries ?? []).map((e) => e.id);
    const listed = JSON.parse(await cp.kubectlOk(['get', 'statefulsets,services,poddisruptionbudgets,configmaps', '-n', ns, '-l', `kustomize.toolkit.fluxcd.io/name=${NAME}`, '-o', 'json'])) as {
      items: { kind: string; metadata: { name: string; labels?: Record<string, string> } }[];
    };
    expect([...new Set(listed.items.map((o) => o.kind))].sort()).toEqual(['ConfigMap', 'PodDisruptionBudget', 'Service', 'StatefulSet']);
    for (const o of listed.items) {
      expect(o.metadata.labels).toMatchObject(FLUX_LABELS);
      expect(o.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('kiln');
      const group = o.kind === 'StatefulSet' ? 'apps' : o.kind === 'PodDisruptionBudget' ? 'policy' : '';
      expect(inventory).toContain(`${ns}_${o.metadata.name}_${group}_${o.kind}`);
    }
    expect(listed.items.filter((o) => o.kind === 'StatefulSet').map((o) => o.metadata.name)).toContain(directory.metadata.name);

    // kiln's resources say Ready only now: Flux applied the commit holding them and its health checks passed.
    for (const r of resources) {
      const live = await kilnReady(r.kind, r.metadata.name);
      expect(git('merge-base', '--is-ancestor', live.status!.commit!, committed)).toBe('');
      expect(ready(live.status?.conditions)?.message).toContain(`applied by Flux Kustomization ${FLUX_NAMESPACE}/${NAME} at ${committed.slice(0, 12)}`);
    }
    figures['examples applied -> kiln resources Ready (s)'] = (Date.now() - started) / 1000;
    // What the README's "Using kiln with Flux" shows.
    console.log(await cp.kubectlOk(['get', 'gitrepository,kustomization', '-n', FLUX_NAMESPACE, NAME]));
    console.log(await cp.kubectlOk(['get', 'directoryservice,postgresinstance', '-n', ns]));
    console.log(await cp.kubectlOk(['get', 'statefulsets', '-n', ns, '-L', 'kustomize.toolkit.fluxcd.io/name']));
  });

  it('a spec change reaches the StatefulSet through Git and Flux in seconds: kiln asks Flux to fetch (its interval is 1m)', async () => {
    const before = headOf('main')!;
    const t0 = Date.now();
    await cp.kubectlOk(['patch', `directoryservice.kiln.dev/${directory.metadata.name}`, '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { replicas: 2 } })]);
    const sha = await waitFor('kiln to commit the change', () => {
      const h = headOf('main');
      return h && h !== before ? h : undefined;
    });
    const tCommit = Date.now();
    await fluxApplied(sha, 50_000);
    await waitFor('the StatefulSet at 2 replicas', async () => {
      const s = await getJson<{ spec: { replicas: number } }>(['statefulset', directory.metadata.name, '-n', ns]);
      return s?.spec.replicas === 2;
    });
    const tApplied = Date.now();
    const live = await kilnReady('DirectoryService', directory.metadata.name);
    expect(live.status!.commit).toBe(sha);
    const tReady = Date.now();
    figures['change -> commit (s)'] = (tCommit - t0) / 1000;
    figures['commit -> Flux applied (s)'] = (tApplied - tCommit) / 1000;
    figures['change -> Flux applied (s)'] = (tApplied - t0) / 1000;
    figures['change -> kiln Ready (s)'] = (tReady - t0) / 1000;
    // Well inside the GitRepository's 1m interval: the fetch came from kiln's request.
    expect(tApplied - tCommit).toBeLessThan(45_000);
  });

  it('a commit Flux cannot apply: the Kustomization says why, and so does the kiln resource it came from', async () => {
    // A policy of the cluster's refuses one StatefulSet kiln renders (as Kyverno or Gatekeeper might).
    const policy = `kiln-flux-${id}`;
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name: policy },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: { resourceRules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['statefulsets'] }] },
          validations: [{ expression: "object.metadata.name != 'blocked'", message: 'StatefulSets named blocked are refused here' }],
        },
      }),
    });
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name: policy },
        spec: { policyName: policy, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } } },
      }),
    });
    try {
      const blocked = { ...directory, metadata: { name: 'blocked', namespace: ns } };
      await waitFor('the policy in force', async () => {
        const r = await cp.kubectl(['create', '--dry-run=server', '-f', '-'], {
          input: JSON.stringify({
            apiVersion: 'apps/v1',
            kind: 'StatefulSet',
            metadata: { name: 'blocked', namespace: ns },
            spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
          }),
        });
        return r.code !== 0 && r.stderr.includes('refused here');
      });
      await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(blocked) });
      const failed = await waitFor(
        'the Kustomization to fail',
        async () => {
          const k = await kustomization();
          const c = ready(k?.status?.conditions);
          return c?.status === 'False' && c.message?.includes('blocked') ? c : undefined;
        },
        60_000,
        context,
      );
      expect(failed.message).toContain('refused here');
      const stalled = await waitFor(
        'kiln resource blocked Stalled FluxFailed',
        async () => {
          const o = await liveOf('DirectoryService', 'blocked');
          const c = o?.status?.conditions?.find((x) => x.type === 'Stalled');
          return c?.status === 'True' && c.reason === 'FluxFailed' ? o : undefined;
        },
        30_000,
        context,
      );
      expect(ready(stalled.status?.conditions)?.status).toBe('False');
      console.log(`kiln: ${ready(stalled.status?.conditions)?.message}\nFlux: ${failed.message}`);
      expect(ready(stalled.status?.conditions)?.message).toContain('StatefulSets named blocked are refused here');
      // What Flux applied before stays applied, and kiln says so.
      await kilnReady('DataGrid', resources.find((r) => r.kind === 'DataGrid')!.metadata.name);
      const events = await cp.kubectlOk(['get', 'events', '-n', ns, '--field-selector', 'involvedObject.name=blocked,reason=FluxFailed', '-o', 'name']);
      expect(events.trim()).not.toBe('');

      // Removing the resource removes the commit Flux could not apply: Flux is Ready again.
      await cp.kubectlOk(['delete', 'directoryservice.kiln.dev/blocked', '-n', ns]);
      await waitFor('Flux Ready again', async () => ready((await kustomization())?.status?.conditions)?.status === 'True', 60_000, context);
    } finally {
      await cp.kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', policy]);
    }
  });

  it('deleting the resource removes its directory and Flux prunes its objects', async () => {
    const before = headOf('main')!;
    await cp.kubectlOk(['delete', `directoryservice.kiln.dev/${directory.metadata.name}`, '-n', ns]);
    const sha = await waitFor('kiln to commit the removal', () => {
      const h = headOf('main');
      return h && h !== before ? h : undefined;
    });
    expect(git('ls-tree', '-r', '--name-only', sha)).not.toContain(`/directoryservice/${directory.metadata.name}/`);
    await fluxApplied(sha, 50_000);
    await waitFor(
      'Flux to prune the StatefulSet, Services and PodDisruptionBudget',
      async () =>
        (await cp.kubectlOk(['get', 'statefulsets,services,poddisruptionbudgets', '-n', ns, '-o', 'name']))
          .split('\n')
          .every((l) => !l.endsWith(`/${directory.metadata.name}`) && !l.includes(`/${directory.metadata.name}-`)),
      60_000,
      context,
    );
    // The other examples stay.
    expect((await cp.kubectlOk(['get', 'statefulsets', '-n', ns, '-o', 'name'])).trim()).not.toBe('');
  });

  it('review mode: kiln pushes to main-next, and Flux applies the change only after the merge', async () => {
    await kiln!.stop();
    kiln = startKiln(['--review', '--pull-request-api=none']);
    const pg = resources.find((r) => r.kind === 'PostgresInstance')!;
    const mainBefore = headOf('main')!;
    const stsCpu = async () =>
      (await getJson<{ spec: { template: { spec: { containers: { resources?: { requests?: { cpu?: string } } }[] } } } }>(['statefulset', pg.metadata.name, '-n', ns]))?.spec.template.spec
        .containers[0]?.resources?.requests?.cpu;
    expect(await stsCpu()).toBe('500m');
    await cp.kubectlOk(['patch', `postgresinstance.kiln.dev/${pg.metadata.name}`, '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { resources: { requests: { cpu: '750m' } } } })]);
    const next = await waitFor(
      'kiln to push the change to main-next',
      () => {
        const h = headOf('main-next');
        return h && h !== mainBefore ? h : undefined;
      },
      30_000,
      context,
    );
    expect(headOf('main')).toBe(mainBefore);

    // Flux fetches (as a push webhook would make it) and finds main unchanged: nothing applied, kiln waits.
    const fetchNow = async () => {
      const at = new Date().toISOString();
      await cp.kubectlOk(['annotate', '--overwrite', '-n', FLUX_NAMESPACE, `gitrepository/${NAME}`, `reconcile.fluxcd.io/requestedAt=${at}`]);
      await waitFor(
        'Flux to handle the fetch request',
        async () => (await getJson<{ status?: { lastHandledReconcileAt?: string } }>(['gitrepository', NAME, '-n', FLUX_NAMESPACE]))?.status?.lastHandledReconcileAt === at,
        30_000,
        context,
      );
    };
    await fetchNow();
    expect((await kustomization())?.status?.lastAppliedRevision).toBe(`main@sha1:${mainBefore}`);
    expect(await stsCpu()).toBe('500m');
    const waiting = await waitFor(
      'PostgresInstance waiting for Flux',
      async () => {
        const o = await liveOf('PostgresInstance', pg.metadata.name);
        return o?.status?.commit === next && ready(o.status.conditions)?.reason === 'WaitingForFlux' ? o : undefined;
      },
      30_000,
      context,
    );
    expect(ready(waiting.status?.conditions)?.status).toBe('False');

    // The pull request is merged (as a forge merges: a merge commit on main); Flux applies it, and kiln says so.
    const work = mkdtempSync(join(tmp, 'merge-'));
    plainGit(tmp, ['clone', '--quiet', bare, work]);
    plainGit(work, ['merge', '--no-ff', '--quiet', '-m', 'Merge main-next', 'origin/main-next']);
    plainGit(work, ['push', '--quiet', 'origin', 'HEAD:main']);
    const merged = headOf('main')!;
    await fetchNow();
    await fluxApplied(merged, 60_000);
    await waitFor('the StatefulSet asking for 750m', async () => (await stsCpu()) === '750m');
    const live = await kilnReady('PostgresInstance', pg.metadata.name);
    expect(live.status!.commit).toBe(next);
    expect(ready(live.status?.conditions)?.message).toContain(`applied by Flux Kustomization ${FLUX_NAMESPACE}/${NAME} at ${merged.slice(0, 12)}`);
  });

  afterAll(() => {
    console.log(`flux end-to-end figures: ${JSON.stringify(figures)}`);
  });
});
