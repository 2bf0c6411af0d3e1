/**
 * The README's "Quick start", carried out on the test control plane, step by
 * step as a user runs it on a kind cluster, recording what kubectl prints for
 * the README. test/node/quickstart.test.ts runs the same steps on a real node
 * from kiln's image; this one runs on the stand-in kubelet, with these
 * stand-ins:
 *
 *  - the image is the production build assembled as
 *    production-build.test.ts does (the Dockerfile's runtime stage in a
 *    temporary directory: compiled JavaScript, `npm ci --omit=dev`, its ENV);
 *  - no kubelet here: the Deployments and the StatefulSet get their pods from
 *    kube-controller-manager, and the stand-in kubelet (global setup) marks
 *    them Running and Ready. The controller and the agent therefore run as
 *    processes outside the cluster, started with their Deployment's node
 *    flags, environment and arguments and a kubeconfig carrying a token of
 *    their ServiceAccount (never the admin);
 *  - no postgres:17 container here: Debian's PostgreSQL 15 on loopback (the agent
 *    reaches it with --endpoint). What the official image's entrypoint does
 *    with the Secret the agent generates (initdb --pwfile with
 *    POSTGRES_PASSWORD) the test does with ALTER ROLE.
 *
 * Steps: `kiln install --image kiln:dev | kubectl apply --server-side -f -`,
 * rollout status, `kubectl apply --server-side -f examples/quickstart/`,
 * `kubectl wait --for=condition=Ready` on the three resources, then what the
 * README promises: the database and its connection Secret work, the copies
 * are in team-a and team-b, and `kubectl get` shows what the README shows.
 * Nothing here is skipped: a step that cannot be carried out fails.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { refusedLine } from '../harness/refused.js';
import { startPostgres, type PostgresServer } from '../harness/postgres.js';
import { assembleImage } from '../harness/image.js';
import { waitFor } from '../harness/wait.js';
import { parseYamlStream } from '../../lib/yaml.js';
import { freePort, ROOT, removeKubeconfigs, serviceAccountKubeconfig, startKiln, type KilnProcess } from './install-support.js';

const run = promisify(execFile);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

/** The names the README and examples/quickstart/ use. */
const QS = 'quickstart';
const TARGETS = ['team-a', 'team-b'];
const INSTALL_NS = 'kiln-system';
const IMAGE = 'kiln:dev';
const NAMESPACES = [QS, ...TARGETS];

const work = mkdtempSync(join(tmpdir(), 'kiln-quickstart-'));
const app = join(work, 'app');
let env: NodeJS.ProcessEnv = {};
let cp: ControlPlaneClient;
let server: PostgresServer;
let installYaml = '';
const running: KilnProcess[] = [];
/** What the README shows, collected as the steps run (printed at the end). */
const transcript: string[] = [];

const kilnCli = (args: string[]) => run(process.execPath, [join(app, 'bin', 'kiln.js'), ...args], { cwd: app, env, timeout: 60_000, maxBuffer: 64 << 20 });

/** `kubectl <args>` as the admin, recorded for the README with its output. */
async function step(args: string[], opts: { input?: string; timeoutMs?: number; show?: string } = {}): Promise<string> {
  const r = await cp.kubectl(args, { input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000 });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}\n${logTail()}`);
  transcript.push(`$ ${opts.show ?? `kubectl ${args.join(' ')}`}\n${r.stdout.trimEnd()}`);
  return r.stdout;
}

function logTail(): string {
  return running.map((p, i) => `--- process ${i} (${p.child.spawnargs.slice(-12).join(' ')}):\n${p.lines.slice(-15).join('\n')}`).join('\n');
}

const getJson = async (args: string[]): Promise<Any> => {
  const r = await cp.kubectl(['get', ...args, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
};
const condition = (o: Any, type: string) => o?.status?.conditions?.find((c: { type: string }) => c.type === type);
const secretData = (s: Any): Record<string, string> => Object.fromEntries(Object.entries((s?.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));

// ------------------------------------------------------------ the image, without a container engine

/** `docker build -t kiln:dev .`, carried out into `app` (test/harness/image.ts). */
async function assembleProductionImage(): Promise<void> {
  ({ env } = await assembleImage(work));
}

// ------------------------------------------------------------ the Deployments, as processes

interface Container {
  command: string[];
  args: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
}

function deploymentContainer(name: string): Container {
  const d = parseYamlStream(installYaml)
    .map((x) => x.value as Any)
    .find((o) => o?.kind === 'Deployment' && o.metadata.name === name && o.metadata.namespace === INSTALL_NS);
  if (!d) throw new Error(`kiln install rendered no Deployment ${INSTALL_NS}/${name}`);
  return d.spec.template.spec.containers[0] as Container;
}

/**
 * Starts what the Deployment's container runs: its node flags and
 * entrypoint, its environment (POD_NAMESPACE from the downward API as the
 * kubelet fills it; HOME is the image's /tmp), its arguments with the bind
 * addresses moved to free ports (several tests share this machine), plus a
 * kubeconfig of its ServiceAccount and `extra`.
 */
async function startDeployment(name: string, extra: string[] = []): Promise<KilnProcess> {
  const c = deploymentContainer(name);
  expect(c.command[0], `${name} command`).toBe('node');
  expect(c.command.at(-1), `${name} entrypoint`).toBe('/app/bin/kiln.js');
  const containerEnv: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.name === 'HOME') continue;
    if (e.value !== undefined) containerEnv[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') containerEnv[e.name] = INSTALL_NS;
    else throw new Error(`${name}: env ${e.name} has a source this test does not stand in for`);
  }
  const args = [...c.args];
  for (const flag of ['--metrics-bind-address', '--health-probe-bind-address']) {
    const i = args.indexOf(flag);
    if (i >= 0) args[i + 1] = `127.0.0.1:${await freePort()}`;
  }
  const kubeconfig = await serviceAccountKubeconfig(cp, INSTALL_NS, name);
  const p = startKiln([...args, '--kubeconfig', kubeconfig, ...extra], { bin: join(app, 'bin', 'kiln.js'), cwd: app, env: { ...env, ...containerEnv }, nodeArgs: c.command.slice(1, -1) });
  running.push(p);
  await p.waitForLine(/"msg":"leading; starting workers"/, 90_000);
  return p;
}

// ------------------------------------------------------------ setup

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  // The quick start's names are fixed: a leftover of an earlier run (KILN_USE_CLUSTER=1) must go first.
  const leftovers = (await cp.kubectl(['get', 'namespace', ...NAMESPACES, INSTALL_NS, '--ignore-not-found', '-o', 'name'])).stdout.trim();
  if (leftovers) throw new Error(`the cluster already has ${leftovers.replace(/\n/g, ', ')}: the quick start needs a cluster without them`);
  [server] = await Promise.all([startPostgres(), assembleProductionImage()]);
}, 900_000);

afterAll(async () => {
  // The ConfigMapSync's finalizer is removed by the running controller: delete it while it runs.
  await cp?.kubectl(['-n', QS, 'delete', 'configmapsync', 'app-settings', '--ignore-not-found', '--timeout=60s'], { timeoutMs: 90_000 });
  await Promise.all(running.splice(0).map((p) => p.stop()));
  removeKubeconfigs();
  for (const o of parseYamlStream(installYaml).map((x) => x.value as Any)) {
    if (o?.kind === 'ClusterRole' || o?.kind === 'ClusterRoleBinding') await cp.kubectl(['delete', o.kind.toLowerCase(), o.metadata.name, '--ignore-not-found', '--wait=false']);
  }
  // The CRDs stay: every other test file uses them.
  await cp?.kubectl(['delete', 'namespace', ...NAMESPACES, INSTALL_NS, '--ignore-not-found', '--wait=false']);
  await server?.destroy();
  await run('chmod', ['-R', 'u+w', work]).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
  if (transcript.length) console.log(`[quickstart] what the README shows:\n\n${transcript.join('\n\n')}\n`);
}, 180_000);

// ------------------------------------------------------------ the steps

describe('the README quick start', () => {
  it('kiln install --image kiln:dev | kubectl apply --server-side -f -, then the Deployments roll out', async () => {
    installYaml = (await kilnCli(['install', '--image', IMAGE])).stdout;
    const objects = parseYamlStream(installYaml).map((x) => x.value as Any);
    expect(
      objects
        .filter((o) => o.kind === 'Deployment')
        .map((o) => `${o.metadata.namespace}/${o.metadata.name}`)
        .sort(),
    ).toEqual([`${INSTALL_NS}/kiln-agent`, `${INSTALL_NS}/kiln-controller`]);
    for (const d of objects.filter((o) => o.kind === 'Deployment')) {
      expect(d.spec.template.spec.containers[0].image).toBe(IMAGE);
      // `kind load docker-image` puts the image on the node: it must not be pulled.
      expect(d.spec.template.spec.containers[0].imagePullPolicy).toBe('IfNotPresent');
    }
    await step(['apply', '--server-side', '-f', '-'], { input: installYaml, timeoutMs: 120_000, show: 'npx kiln install --image kiln:dev | kubectl apply --server-side -f -' });
    // The stand-in kubelet makes the Deployments' pods ready; what runs them is started in the next step.
    await step(['-n', INSTALL_NS, 'rollout', 'status', 'deployment/kiln-controller', 'deployment/kiln-agent'], { timeoutMs: 150_000 });
  }, 300_000);

  it('the controller and the agent run as their Deployments run them, with their ServiceAccounts', async () => {
    expect(installYaml).not.toBe('');
    await startDeployment('kiln-controller');
    // Outside the cluster the agent reaches app-db-client.quickstart.svc:5432 through an endpoint (on kind: a port-forward).
    await startDeployment('kiln-agent', ['--endpoint', `PostgresInstance/${QS}/app-db=${server.host}:${server.port}`]);
  }, 240_000);

  it('kubectl apply -f examples/quickstart/, and every resource becomes Ready', async () => {
    expect(running).toHaveLength(2);
    await step(['apply', '--server-side', '-f', join(ROOT, 'examples', 'quickstart')], { show: 'kubectl apply --server-side -f examples/quickstart/' });

    // The official image initialises its data directory with the password the agent generated (POSTGRES_PASSWORD).
    const superuser = await waitFor(
      'the agent generates Secret app-db-superuser',
      async () => {
        const s = secretData(await getJson(['-n', QS, 'secret', 'app-db-superuser']));
        return s.password ? s : undefined;
      },
      60_000,
      logTail,
    );
    expect(superuser.username).toBe('postgres');
    expect(superuser.password).toMatch(/^[A-Za-z0-9]{32}$/);
    await server.sql(`ALTER ROLE postgres PASSWORD '${superuser.password}'`);

    await step(['-n', QS, 'wait', '--for=condition=Ready', 'postgresinstance/app-db', 'postgresdatabase/app', 'configmapsync/app-settings', '--timeout=5m'], { timeoutMs: 330_000 });
  }, 420_000);

  it("what the README promises: the members run, the database takes the connection Secret's credentials, the copies are in team-a and team-b", async () => {
    const pgi = await getJson(['-n', QS, 'postgresinstance', 'app-db']);
    expect(condition(pgi, 'Ready')).toMatchObject({ status: 'True' });
    expect(condition(pgi, 'Synced')).toMatchObject({ status: 'True' });
    expect(condition(pgi, 'SuperuserSecretReady')).toMatchObject({ status: 'True' });
    expect(pgi.status).toMatchObject({ replicas: 1, readyReplicas: 1, observedGeneration: pgi.metadata.generation });
    const sts = await getJson(['-n', QS, 'statefulset', 'app-db']);
    expect(sts.spec.template.spec.containers[0].image).toBe('docker.io/library/postgres:17');
    expect(sts.spec.volumeClaimTemplates[0].spec.storageClassName).toBeUndefined(); // the cluster's default class
    expect(sts.status).toMatchObject({ readyReplicas: 1 });

    const db = await getJson(['-n', QS, 'postgresdatabase', 'app']);
    expect(condition(db, 'DatabaseReady')).toMatchObject({ status: 'True' });
    expect(db.status).toMatchObject({ secretName: 'app-connection' });
    const conn = secretData(await getJson(['-n', QS, 'secret', 'app-connection']));
    expect(conn).toMatchObject({ username: 'app', dbname: 'app', host: `app-db-client.${QS}.svc`, port: '5432' });
    expect(conn.uri).toBe(`postgresql://app:${conn.password}@app-db-client.${QS}.svc:5432/app`);
    // The Service name resolves only inside a cluster: here the server is on loopback.
    const client = new pg.Client({ host: server.host, port: server.port, user: conn.username, password: conn.password, database: conn.dbname });
    await client.connect();
    try {
      await client.query('CREATE TABLE hello (id int PRIMARY KEY)');
      expect((await client.query('SELECT current_user AS u, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()')).rows).toEqual([{ u: 'app', owner: 'app' }]);
    } finally {
      await client.end();
    }

    const cms = await getJson(['-n', QS, 'configmapsync', 'app-settings']);
    expect(condition(cms, 'Ready')).toMatchObject({ status: 'True' });
    const source = await getJson(['-n', QS, 'configmap', 'app-settings']);
    for (const ns of TARGETS) {
      const copy = await getJson(['-n', ns, 'configmap', 'app-settings']);
      expect(copy?.data, `copy in ${ns}`).toEqual(source.data);
      expect(copy.metadata.labels).toMatchObject({ 'kiln.dev/owner-kind': 'ConfigMapSync', 'kiln.dev/owner-name': 'app-settings', 'kiln.dev/owner-namespace': QS });
    }
    // Written with settings-sync's token: its managedFields name kiln's field manager, and no request was refused.
    // (The controller watches every namespace, and the test control plane holds other tests' resources,
    // some refused on purpose: only lines about the quick start's namespaces count.)
    const ours = (l: string) => NAMESPACES.some((ns) => l.includes(`${ns}/`) || l.includes(`"${ns}"`) || l.includes(`\\"${ns}\\"`));
    for (const p of running) expect(p.lines.filter((l) => ours(l) && refusedLine(l))).toEqual([]);

    await step(['get', 'pgi,pgdb,cms', '-n', QS]);
    await step(['get', 'configmap', 'app-settings', '-n', 'team-a']);
    await step(['get', 'secret', 'app-connection', '-n', QS]);
  }, 120_000);

  it('the README runs these commands and shows this output', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = readme.match(/^## Quick start\n[\s\S]*?(?=^## )/m)?.[0] ?? '';
    expect(section, 'README has a "## Quick start" section').not.toBe('');
    const commands =
      section
        .match(/^```sh\n([\s\S]*?)^```/m)?.[1]
        ?.split('\n')
        .map((l) => l.replace(/\s+#.*$/, '').trim())
        .filter(Boolean) ?? [];
    // What the test cannot do without a container engine; every other command it ran.
    const standIns = ['kind create cluster', 'docker build -t kiln:dev .', 'kind load docker-image kiln:dev'];
    const ran = transcript.map((t) => t.split('\n')[0]!.slice(2));
    expect(commands.slice(0, standIns.length)).toEqual(standIns);
    expect(commands.slice(standIns.length), "the README's commands, as the test ran them").toEqual(ran.slice(0, commands.length - standIns.length));

    // The output shown: ages differ from run to run, a rollout may wait first; everything else is what the test saw.
    const shown = section.match(/^```console\n([\s\S]*?)^```/m)?.[1] ?? '';
    const blocks = new Map(shown.split(/^(?=\$ )/m).map((b) => [b.split('\n')[0]!.slice(2), b.split('\n').slice(1).join('\n')]));
    const normalise = (s: string) =>
      s
        .split('\n')
        .filter((l) => !l.startsWith('Waiting for '))
        .join('\n')
        .replace(/ +\d+(?:m\d+)?[smhd] *$/gm, ' <age>')
        .trimEnd();
    const checked = transcript.filter((t) => blocks.has(t.split('\n')[0]!.slice(2)));
    expect(
      checked.map((t) => t.split('\n')[0]),
      'outputs the README shows',
    ).toEqual(transcript.slice(1).map((t) => t.split('\n')[0]));
    for (const t of checked) {
      const [head, ...out] = t.split('\n');
      expect(normalise(blocks.get(head!.slice(2))!), head).toBe(normalise(out.join('\n')));
    }
  });
});
