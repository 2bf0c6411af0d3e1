/**
 * Static sharding (issue #21 item 1), as Flux's: controllers and an agent with
 * --watch-label-selector on the real control plane.
 *
 * - apply mode: three Managers in one namespace, `kiln.dev/shard=a`,
 *   `kiln.dev/shard=b` and `!kiln.dev/shard`; each reconciles only its
 *   resources, caches only them, and labels their members with the shard; a
 *   resource relabelled moves to the other shard with its members.
 * - git mode: two shards on one repository; each writes its own directory and
 *   neither deletes the other's files, at start-up or later.
 * - the command: a wrong selector exits 2 naming it; `--leader-elect` shards
 *   hold one Lease each, and replicas of one shard elect one leader.
 * - the agent: a resource outside its selector is not touched.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { Manager } from '../../controller/manager.js';
import { installObjects } from '../../install/install.js';
import { isNotFound } from '../../kube/client.js';
import { loadKubeConfig } from '../../kube/kubeconfig.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { initBareRepo, plainGit } from '../harness/git.js';
import { startPostgres, type PostgresServer as TestPostgres } from '../harness/postgres.js';
import { refusedLine } from '../harness/refused.js';
import { waitFor } from '../harness/wait.js';
import { freePort, startKiln, type KilnProcess } from './install-support.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

let cp: ControlPlaneClient;
const ns = `kiln-shard-${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-sharding-'));
const stops: (() => Promise<unknown>)[] = [];

const apply = (obj: unknown) => cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(obj) });
const memcached = (name: string, shard: string | undefined, size = 1) => ({
  apiVersion: 'kiln.dev/v1alpha1',
  kind: 'Memcached',
  metadata: { name, namespace: ns, ...(shard ? { labels: { 'kiln.dev/shard': shard } } : {}) },
  spec: { size },
});
async function getJson(args: string[]): Promise<Any> {
  const r = await cp.kubectl(['get', '-n', ns, ...args, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

interface Shard {
  selector: string;
  manager: Manager;
  logs: string[];
}

function newManager(selector: string, logs: string[], extra: Partial<ConstructorParameters<typeof Manager>[0]> = {}): Manager {
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  const m = new Manager({
    kc,
    namespaces: [ns],
    concurrency: 2,
    qps: 0,
    burst: 0,
    resyncSeconds: 0,
    version: 'test',
    log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
    watchLabelSelector: selector,
    ...extra,
  });
  stops.push(() => m.stop().catch(() => undefined));
  return m;
}

/** The keys a shard's log says it reconciled (applied, pruned or wrote status for). */
const reconciled = (s: Shard, name: string, kind = 'Memcached') => s.logs.filter((l) => l.startsWith('info reconciled ') && l.includes(`"key":"${kind}/${ns}/${name}"`)).length;
const cached = (s: Shard) =>
  s.manager.resources
    .get('Memcached')!
    .list()
    .map((o) => o.metadata.name)
    .sort();
/** The shard label of the Deployment and the Service kiln rendered for `name` (null: not there). */
async function memberShards(name: string): Promise<(string | null | undefined)[]> {
  const out: (string | null | undefined)[] = [];
  for (const kind of ['deployment', 'service']) {
    const o = await getJson([kind, name]);
    out.push(o ? (o.metadata.labels?.['kiln.dev/shard'] ?? null) : undefined);
  }
  return out;
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
});

afterAll(async () => {
  await Promise.all(stops.map((s) => s()));
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

describe('apply mode: three shards in one namespace', () => {
  const shards: Record<'a' | 'b' | 'rest', Shard> = {} as Record<'a' | 'b' | 'rest', Shard>;
  const context = () =>
    Object.entries(shards)
      .map(([k, s]) => `${k}: ${s.logs.slice(-6).join('\n  ')}`)
      .join('\n');

  beforeAll(async () => {
    for (const [k, selector] of [
      ['a', 'kiln.dev/shard=a'],
      ['b', 'kiln.dev/shard=b'],
      ['rest', '!kiln.dev/shard'],
    ] as const) {
      const logs: string[] = [];
      shards[k] = { selector, logs, manager: newManager(selector, logs) };
    }
    await Promise.all(Object.values(shards).map((s) => s.manager.start()));
  });

  it('each resource is reconciled and cached by its shard only, and its members carry its shard label', async () => {
    await apply(memcached('mc-a', 'a'));
    await apply(memcached('mc-b', 'b'));
    await apply(memcached('mc-rest', undefined));
    const want: Record<string, (string | null)[]> = { 'mc-a': ['a', 'a'], 'mc-b': ['b', 'b'], 'mc-rest': [null, null] };
    for (const [name, labels] of Object.entries(want)) {
      await waitFor(`${name}'s members, labelled ${JSON.stringify(labels)}`, async () => JSON.stringify(await memberShards(name)) === JSON.stringify(labels), 30_000, context);
    }
    // Members are applied before the reconcile writes status and logs "reconciled"; once Ready, nothing more
    // comes for them (a later count that must not grow starts from a settled one).
    for (const name of Object.keys(want)) {
      await waitFor(
        `${name} Ready`,
        async () => {
          const m = await getJson(['memcached', name]);
          const c = (m?.status?.conditions as { type: string; status: string }[] | undefined)?.find((x) => x.type === 'Ready');
          return c?.status === 'True' && m.status.observedGeneration === m.metadata.generation;
        },
        60_000,
        context,
      );
    }
    await waitFor('each shard logged its reconcile', () => reconciled(shards.a, 'mc-a') > 0 && reconciled(shards.b, 'mc-b') > 0 && reconciled(shards.rest, 'mc-rest') > 0, 10_000, context);
    expect(cached(shards.a)).toEqual(['mc-a']);
    expect(cached(shards.b)).toEqual(['mc-b']);
    expect(cached(shards.rest)).toEqual(['mc-rest']);
    expect([reconciled(shards.a, 'mc-a'), reconciled(shards.b, 'mc-a'), reconciled(shards.rest, 'mc-a')].map((n) => n > 0)).toEqual([true, false, false]);
    expect([reconciled(shards.a, 'mc-b'), reconciled(shards.b, 'mc-b'), reconciled(shards.rest, 'mc-b')].map((n) => n > 0)).toEqual([false, true, false]);
    expect([reconciled(shards.a, 'mc-rest'), reconciled(shards.b, 'mc-rest'), reconciled(shards.rest, 'mc-rest')].map((n) => n > 0)).toEqual([false, false, true]);
    // Each child cache holds its shard's members only.
    const children = (s: Shard) =>
      s.manager.children
        .get('apps/v1/Deployment')!
        .list()
        .map((o) => o.metadata.name)
        .sort();
    expect([children(shards.a), children(shards.b), children(shards.rest)]).toEqual([['mc-a'], ['mc-b'], ['mc-rest']]);
    for (const s of Object.values(shards)) expect(s.logs.filter((l) => l.startsWith('error') || refusedLine(l))).toEqual([]);
  }, 60_000);

  it('relabelled from a to b, the resource moves: b takes it over with its members, a stops touching it', async () => {
    const aBefore = reconciled(shards.a, 'mc-a');
    await cp.kubectlOk(['label', '-n', ns, 'memcached', 'mc-a', 'kiln.dev/shard=b', '--overwrite']);
    await waitFor("mc-a's members labelled b", async () => JSON.stringify(await memberShards('mc-a')) === JSON.stringify(['b', 'b']), 30_000, context);
    await waitFor('a no longer caches mc-a', () => cached(shards.a).length === 0, 10_000, context);
    expect(cached(shards.b)).toEqual(['mc-a', 'mc-b']);
    // A change now is b's alone.
    await cp.kubectlOk(['patch', '-n', ns, 'memcached', 'mc-a', '--type', 'merge', '-p', '{"spec":{"size":2}}']);
    await waitFor('mc-a scaled to 2 by b', async () => (await getJson(['deployment', 'mc-a']))?.spec.replicas === 2, 30_000, context);
    expect(reconciled(shards.a, 'mc-a')).toBe(aBefore);
    expect(reconciled(shards.b, 'mc-a')).toBeGreaterThan(0);
    expect(reconciled(shards.rest, 'mc-a')).toBe(0);
    // The Deployment's labels and replicas have one field manager: kiln (b's apply took a's fields over).
    const d = await getJson(['deployment', 'mc-a']);
    expect(d.metadata.labels['kiln.dev/shard']).toBe('b');
    expect(d.metadata.ownerReferences.map((o: Any) => o.name)).toEqual(['mc-a']);
  }, 60_000);

  it('unlabelled, the resource moves to the rest, and its members lose the shard label', async () => {
    await cp.kubectlOk(['label', '-n', ns, 'memcached', 'mc-b', 'kiln.dev/shard-']);
    await waitFor("mc-b's members without a shard label", async () => JSON.stringify(await memberShards('mc-b')) === JSON.stringify([null, null]), 30_000, context);
    expect(cached(shards.rest)).toEqual(['mc-b', 'mc-rest']);
    await waitFor('b no longer caches mc-b', () => JSON.stringify(cached(shards.b)) === JSON.stringify(['mc-a']), 10_000, context);
    for (const s of Object.values(shards)) expect(s.logs.filter((l) => l.startsWith('error') || refusedLine(l))).toEqual([]);
  }, 60_000);

  it("ConfigMapSync: its copies carry its shard label and follow a move; only its shard's watches carry a source edit", async () => {
    const target = `${ns}-t`;
    await cp.kubectlOk(['create', 'namespace', target]);
    stops.push(() => cp.kubectl(['delete', 'namespace', target, '--wait=false']));
    await cp.kubectlOk(['create', 'serviceaccount', 'tenant', '-n', ns]);
    const role = (namespace: string, verbs: string[]) => [
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'tenant-sync', namespace }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs }] },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'tenant-sync', namespace },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tenant-sync' },
        subjects: [{ kind: 'ServiceAccount', name: 'tenant', namespace: ns }],
      },
    ];
    for (const o of [...role(ns, ['get', 'list', 'watch']), ...role(target, ['get', 'list', 'create', 'patch', 'delete'])]) await apply(o);
    await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: ns }, data: { colour: 'blue' } });
    await apply({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'ConfigMapSync',
      metadata: { name: 'sync', namespace: ns, labels: { 'kiln.dev/shard': 'a' } },
      spec: { source: { name: 'settings' }, targets: { namespaces: [target] }, serviceAccountName: 'tenant' },
    });
    const copy = () => getJson(['configmap', 'settings', '-n', target]);
    const copyIs = (colour: string, shard: string | null) => async () => {
      const c = await copy();
      return c?.data?.colour === colour && (c.metadata.labels?.['kiln.dev/shard'] ?? null) === shard;
    };
    await waitFor('the copy, labelled a', copyIs('blue', 'a'), 30_000, context);
    // The copy is written before the reconcile ends (its status write) and logs "reconciled".
    await waitFor('a logged the reconcile', () => reconciled(shards.a, 'sync', 'ConfigMapSync') > 0, 10_000, context);
    expect([reconciled(shards.b, 'sync', 'ConfigMapSync'), reconciled(shards.rest, 'sync', 'ConfigMapSync')]).toEqual([0, 0]);
    // A source edit, with resync off: carried by a's watch of the source.
    await cp.kubectlOk(['-n', ns, 'patch', 'configmap', 'settings', '--type=merge', '-p', '{"data":{"colour":"green"}}']);
    await waitFor('the copy updated by a', copyIs('green', 'a'), 10_000, context);

    await cp.kubectlOk(['label', '-n', ns, 'configmapsync', 'sync', 'kiln.dev/shard=b', '--overwrite']);
    await waitFor('the copy relabelled b', copyIs('green', 'b'), 30_000, context);
    const aAfterMove = reconciled(shards.a, 'sync', 'ConfigMapSync');
    await cp.kubectlOk(['-n', ns, 'patch', 'configmap', 'settings', '--type=merge', '-p', '{"data":{"colour":"red"}}']);
    await waitFor('the copy updated by b', copyIs('red', 'b'), 10_000, context);
    expect(reconciled(shards.a, 'sync', 'ConfigMapSync')).toBe(aAfterMove);

    // To the unlabelled rest: the copy loses the label (kiln's apply releases it).
    await cp.kubectlOk(['label', '-n', ns, 'configmapsync', 'sync', 'kiln.dev/shard-']);
    await waitFor('the copy without a shard label', copyIs('red', null), 30_000, context);
    for (const s of Object.values(shards)) expect(s.logs.filter((l) => l.startsWith('error') || refusedLine(l))).toEqual([]);
  }, 90_000);
});

describe('git mode: two shards on one repository', () => {
  const bare = join(tmp, 'deploy.git');
  const git = (...args: string[]) => plainGit(tmp, ['-C', bare, ...args]);
  const files = () =>
    git('ls-tree', '-r', '--name-only', 'main')
      .trim()
      .split('\n')
      .filter((f) => f.endsWith('/manifest.yaml'));
  let clones = 0;
  const shard = (selector: string, logs: string[]) =>
    newManager(selector, logs, {
      namespaces: [gns],
      sink: 'git',
      git: { repo: bare, branch: 'main', basePath: 'clusters', cluster: 'test', workDir: join(tmp, `clone-${++clones}`), debounceMs: 300, maxWaitMs: 2000, retryDelayMs: { base: 20, max: 200 } },
    });
  const gns = `${ns}-git`;
  const gitMemcached = (name: string, s: string | undefined) => ({ ...memcached(name, s), metadata: { ...memcached(name, s).metadata, namespace: gns } });
  const aFile = (name: string) => `clusters-g1/test/${gns}/memcached/${name}/manifest.yaml`;
  const restFile = (name: string) => `clusters/test/${gns}/memcached/${name}/manifest.yaml`;

  beforeAll(async () => {
    initBareRepo(bare, tmp);
    await cp.kubectlOk(['create', 'namespace', gns]);
    stops.push(() => cp.kubectl(['delete', 'namespace', gns, '--wait=false']));
  });

  it('each shard writes under its own directory, carries its label, and neither deletes the other files, at start-up or later', async () => {
    const logsA: string[] = [];
    const logsRest: string[] = [];
    const context = () => `a:\n${logsA.slice(-8).join('\n')}\nrest:\n${logsRest.slice(-8).join('\n')}`;
    const a = shard('kiln.dev/shard=g1', logsA);
    const rest = shard('!kiln.dev/shard', logsRest);
    for (const name of ['one', 'two']) await apply(gitMemcached(`${name}-a`, 'g1'));
    for (const name of ['one', 'two']) await apply(gitMemcached(`${name}-rest`, undefined));
    await Promise.all([a.start(), rest.start()]);
    const all = [aFile('one-a'), aFile('two-a'), restFile('one-rest'), restFile('two-rest')].sort();
    await waitFor('both shards committed their resources', () => JSON.stringify(files().sort()) === JSON.stringify(all), 30_000, context);
    const manifest = git('show', `main:${aFile('one-a')}`);
    expect(manifest).toMatch(/kiln\.dev\/shard: g1/);
    expect(git('show', `main:${restFile('one-rest')}`)).not.toMatch(/kiln\.dev\/shard/);

    // A restart of each, one after the other: start-up prunes only its own directory, which holds only its own.
    await a.stop();
    const a2 = shard('kiln.dev/shard=g1', logsA);
    await a2.start();
    await rest.stop();
    const rest2 = shard('!kiln.dev/shard', logsRest);
    await rest2.start();
    // One more change in each, so each pushes again on top of the other's commits.
    await apply({ ...gitMemcached('three-a', 'g1') });
    await apply({ ...gitMemcached('three-rest', undefined) });
    const more = [...all, aFile('three-a'), restFile('three-rest')].sort();
    await waitFor('both shards committed the new ones', () => JSON.stringify(files().sort()) === JSON.stringify(more), 30_000, context);
    expect(logsA.filter((l) => /removed resources that no longer exist/.test(l))).toEqual([]);
    expect(logsRest.filter((l) => /removed resources that no longer exist/.test(l))).toEqual([]);

    // A resource deleted is removed by its own shard only.
    await cp.kubectlOk(['delete', '-n', gns, 'memcached', 'two-a']);
    await waitFor('two-a removed', () => !files().includes(aFile('two-a')), 30_000, context);
    expect(files().sort()).toEqual(more.filter((f) => f !== aFile('two-a')));
    for (const l of [...logsA, ...logsRest]) expect(l.startsWith('error') || refusedLine(l) ? l : '').toBe('');
  }, 120_000);
});

describe('kiln controller --watch-label-selector, as a process', () => {
  const running: KilnProcess[] = [];
  afterAll(async () => {
    await Promise.all(running.map((p) => p.stop()));
  });

  async function controller(selector: string): Promise<KilnProcess> {
    const p = startKiln([
      'controller',
      '--kubeconfig',
      cp.kubeconfig,
      '-n',
      ns,
      '--log-format',
      'json',
      '--watch-label-selector',
      selector,
      '--leader-elect',
      '--leader-election-namespace',
      ns,
      '--lease-duration',
      '5',
      '--renew-deadline',
      '3',
      '--retry-period',
      '1',
      '--metrics-bind-address',
      `127.0.0.1:${await freePort()}`,
      '--health-probe-bind-address',
      `127.0.0.1:${await freePort()}`,
    ]);
    running.push(p);
    return p;
  }

  it('a wrong selector exits 2, naming it', async () => {
    const p = startKiln(['controller', '--kubeconfig', cp.kubeconfig, '--watch-label-selector', 'bad selector']);
    expect(await p.exited).toBe(2);
    expect(p.lines.join('\n')).toMatch(/--watch-label-selector <selector>' argument 'bad selector' is invalid\. invalid label selector "bad selector"/);
    const q = startKiln(['agent', '--kubeconfig', cp.kubeconfig, '--watch-label-selector', 'app.kubernetes.io/name=x']);
    expect(await q.exited).toBe(2);
    expect(q.lines.join('\n')).toMatch(/"app.kubernetes.io\/name" cannot select a shard/);
  }, 30_000);

  it('two shards both lead, each on its own Lease; two replicas of one shard elect one leader', async () => {
    const x1 = await controller('kiln.dev/shard=x');
    const x2 = await controller('kiln.dev/shard=x');
    const y = await controller('kiln.dev/shard=y');
    await y.waitForLine(/leading; starting workers/, 30_000);
    await Promise.race([x1.waitForLine(/leading; starting workers/, 30_000), x2.waitForLine(/leading; starting workers/, 30_000)]);
    // The other x stays a standby for more than a lease duration.
    await new Promise((r) => setTimeout(r, 6000));
    const leadingX = [x1, x2].filter((p) => p.lines.some((l) => /leading; starting workers/.test(l)));
    expect(leadingX).toHaveLength(1);
    const lease = async (name: string) => (await getJson(['lease', name]))?.spec.holderIdentity as string | undefined;
    const [lx, ly] = [await lease('kiln-controller-x'), await lease('kiln-controller-y')];
    expect(lx).toBeTruthy();
    expect(ly).toBeTruthy();
    expect(lx).not.toBe(ly);
    expect(await getJson(['lease', 'kiln-controller'])).toBeUndefined();
  }, 60_000);
});

describe('kiln install --shards: RBAC', () => {
  it("the install's Lease Role lets each shard use its own Lease, and no other", async () => {
    const objs = installObjects({ mode: 'apply', version: 'test', namespace: ns, shards: ['x', 'y'], crds: 'skip' });
    const leaseRbac = objs.filter((o) => (o.kind === 'Role' || o.kind === 'RoleBinding') && o.metadata.name.endsWith('-leader-election'));
    expect(leaseRbac).toHaveLength(4);
    await cp.kubectlOk(['create', 'serviceaccount', 'kiln-controller', '-n', ns]);
    for (const o of leaseRbac) await apply(o);
    const can = async (verb: string, lease: string) =>
      (await cp.kubectl(['auth', 'can-i', verb, `leases.coordination.k8s.io/${lease}`, '-n', ns, '--as', `system:serviceaccount:${ns}:kiln-controller`])).stdout.trim();
    await waitFor('the Role in force', async () => (await can('update', 'kiln-controller')) === 'yes', 10_000);
    for (const lease of ['kiln-controller', 'kiln-controller-x', 'kiln-controller-y']) {
      expect(await can('update', lease), lease).toBe('yes');
      expect(await can('get', lease), lease).toBe('yes');
    }
    expect(await can('update', 'kiln-controller-z')).toBe('no');
    expect(await can('update', 'kiln-agent-x')).toBe('no');
  }, 30_000);
});

describe('kiln agent --watch-label-selector', () => {
  let server: TestPostgres;
  let agent: Agent;
  const logs: string[] = [];
  const get = async (kind: string, name: string): Promise<Any> => {
    try {
      return await agent.client.get({ apiVersion: kind === 'Secret' ? 'v1' : 'kiln.dev/v1alpha1', kind, namespace: ns, name });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  const database = (name: string, shard: string) => ({
    apiVersion: 'kiln.dev/v1alpha1',
    kind: 'PostgresDatabase',
    metadata: { name, namespace: ns, labels: { 'kiln.dev/shard': shard } },
    spec: { instance: 'pg', name },
  });

  beforeAll(async () => {
    server = await startPostgres();
    stops.push(() => server.destroy());
    await cp.kubectlOk(['-n', ns, 'create', 'secret', 'generic', 'pg-superuser', `--from-literal=password=${server.password}`]);
    await apply({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'PostgresInstance',
      metadata: { name: 'pg', namespace: ns, labels: { 'kiln.dev/shard': 'p' } },
      spec: { superuserSecret: { name: 'pg-superuser' } },
    });
    agent = new Agent({
      kc: loadKubeConfig({ kubeconfig: cp.kubeconfig }),
      namespaces: [ns],
      concurrency: 2,
      qps: 0,
      burst: 0,
      passwordIntervalSeconds: 5,
      databaseCheckSeconds: 10,
      endpoints: { [`PostgresInstance/${ns}/pg`]: `${server.host}:${server.port}` },
      log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
      watchLabelSelector: 'kiln.dev/shard=p',
    });
    stops.push(() => agent.stop());
    await agent.start();
  }, 120_000);

  it('a resource outside the selector is not touched: no database, no Secret, no finalizer, no agent condition', async () => {
    await apply(database('inside', 'p'));
    await apply(database('outside', 'q'));
    await waitFor(
      'inside DatabaseReady',
      async () => (await get('PostgresDatabase', 'inside'))?.status?.conditions?.some((c: Any) => c.type === 'DatabaseReady' && c.status === 'True'),
      30_000,
      () => logs.slice(-10).join('\n'),
    );
    // More than one check interval after: still nothing for the other shard's.
    await new Promise((r) => setTimeout(r, 3000));
    const outside = await get('PostgresDatabase', 'outside');
    expect(outside.status).toBeUndefined();
    expect(outside.metadata.finalizers ?? []).toEqual([]);
    expect(await get('Secret', 'outside-connection')).toBeUndefined();
    expect(await get('Secret', 'inside-connection')).toBeDefined();
    expect((await server.sql("SELECT datname FROM pg_database WHERE datname IN ('inside', 'outside') ORDER BY 1")).trim()).toBe('inside');
    expect(logs.filter((l) => l.includes('outside'))).toEqual([]);
  }, 60_000);
});
