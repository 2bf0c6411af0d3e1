/**
 * A CacheCluster's grids through the running controller on the real control
 * plane, resync off (so what happens is the controller reacting to the change
 * through the kinds' `reads`, not a periodic pass): the members' StatefulSet
 * mounts each DataGrid's ConfigMap; a template edit re-renders the grid's
 * ConfigMap and rolls the members' digest; a deleted grid leaves the volume; a
 * DataGrid naming a missing template waits (condition naming spec.template)
 * until it is created. Then git mode: the committed render carries the same.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GRIDS_ANNOTATION, GRIDS_DIGEST_ANNOTATION } from '../../kinds/cache-cluster/chart.js';
import { Manager } from '../../controller/manager.js';
import { parseYamlStream } from '../../lib/yaml.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { initBareRepo, plainGit } from '../harness/git.js';
import { MANUAL_LABEL, setPodReady } from '../harness/stand-in-kubelet.js';
import { waitFor as waitUntil } from '../harness/wait.js';

let cp: ControlPlaneClient;
let manager: Manager;
const id = randomBytes(3).toString('hex');
const ns = `kiln-grids-${id}`;
const gitNs = `kiln-grids-git-${id}`;
/** Pods here are made ready by the test alone (a rollout stops at the first member it replaces). */
const manualNs = `kiln-grids-manual-${id}`;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-controller-grids-'));
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
/** What each reaction took, for the report. */
const figures: Record<string, number> = {};

const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-20).join('\n'));

const apply = (obj: unknown) => cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(obj) });
const cache = (namespace: string) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'CacheCluster', metadata: { name: 'c', namespace }, spec: { size: 2, catalogServers: 1, image: 'cache:1' } });
const template = (namespace: string, name: string, spec: Record<string, unknown>) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'GridTemplate', metadata: { name, namespace }, spec });
const grid = (namespace: string, name: string, spec: Record<string, unknown>) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name, namespace }, spec: { cache: 'c', ...spec } });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getJson(namespace: string, ...what: string[]): Promise<any> {
  const r = await cp.kubectl(['get', '-n', namespace, ...what, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

interface PodTemplate {
  metadata: { annotations?: Record<string, string> };
  spec: { volumes: { name: string; projected?: { sources: { configMap: { name: string; items: { key: string; path: string }[] } }[] } }[] };
}
const podTemplate = async (): Promise<PodTemplate | undefined> => (await getJson(ns, 'statefulset', 'c'))?.spec.template;
/** The ConfigMaps the members' grids volume projects, and the file each becomes. */
const mounted = (t: PodTemplate | undefined) => t?.spec.volumes.find((v) => v.name === 'grids')?.projected?.sources.map((s) => `${s.configMap.name}:${s.configMap.items[0]!.path}`) ?? [];
/** status.members, with each member's fields in one order. */
const membersOf = (o: { status?: { members?: { name: string; grids: string[] }[] } } | undefined) => o?.status?.members?.map((m) => ({ name: m.name, grids: m.grids }));
const gridFile = async (namespace: string, name: string) => {
  const cm = await getJson(namespace, 'configmap', `c-grid-${name}`);
  return cm ? (JSON.parse(cm.data['grid.json']) as Record<string, unknown>) : undefined;
};
async function conditionOf(namespace: string, kind: string, name: string, type: string) {
  const o = await getJson(namespace, `${kind}.kiln.dev`, name);
  const c = o?.status?.conditions?.find((x: { type: string }) => x.type === type);
  return c && c.observedGeneration === o.metadata.generation ? (c as { status: string; reason: string; message: string }) : undefined;
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  for (const n of [ns, gitNs, manualNs]) await cp.kubectlOk(['create', 'namespace', n]);
  await cp.kubectlOk(['label', 'namespace', manualNs, `${MANUAL_LABEL}=manual`]);
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({ kc, namespaces: [ns, manualNs], concurrency: 2, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
  await manager.start();
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  for (const n of [ns, gitNs, manualNs]) await cp?.kubectl(['delete', 'namespace', n, '--wait=false']);
  rmSync(tmp, { recursive: true, force: true });
  console.log(`controller-grids figures: ${JSON.stringify(figures)}`);
});

describe('apply mode', () => {
  it('the members mount the grid resolved with its template; the GridTemplate is Ready and owns nothing', async () => {
    await apply(cache(ns));
    await apply(template(ns, 'std', { gridType: 'Session', partitions: 31, timeToLiveSeconds: 600 }));
    await apply(grid(ns, 'g', { template: 'std', timeToLiveSeconds: 60 }));
    const t = await waitFor('the StatefulSet mounts c-grid-g', async () => {
      const p = await podTemplate();
      return mounted(p).length === 1 ? p : undefined;
    });
    expect(mounted(t)).toEqual(['c-grid-g:g.json']);
    expect(t.metadata.annotations?.[GRIDS_ANNOTATION]).toBe('g');
    expect(t.metadata.annotations?.[GRIDS_DIGEST_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/);
    expect(await gridFile(ns, 'g')).toMatchObject({ gridType: 'session', partitions: 31, timeToLiveSeconds: 60 });
    await waitFor('DataGrid g Ready', async () => (await conditionOf(ns, 'datagrid', 'g', 'Ready'))?.status === 'True');
    const ready = await waitFor('GridTemplate std Ready', async () => {
      const c = await conditionOf(ns, 'gridtemplate', 'std', 'Ready');
      return c?.status === 'True' ? c : undefined;
    });
    expect(ready.message).toBe('0 objects applied and in sync');
    expect((await getJson(ns, 'configmaps', '-l', 'app.kubernetes.io/managed-by=kiln')).items.map((o: { metadata: { name: string } }) => o.metadata.name).sort()).toEqual(['c-grid-g', 'c-members']);
  });

  it('status.members lists each member with the grids its pod serves, once the members roll', async () => {
    const started = Date.now();
    const members = await waitFor(
      'status.members with g on both members',
      async () => {
        const m = membersOf(await getJson(ns, 'cachecluster.kiln.dev', 'c'));
        return JSON.stringify(m) ===
          JSON.stringify([
            { name: 'c-0', grids: ['g'] },
            { name: 'c-1', grids: ['g'] },
          ])
          ? m
          : undefined;
      },
      30_000,
    );
    figures['members roll -> status.members (ms)'] = Date.now() - started;
    expect(members).toHaveLength(2);
  });

  it('a template edit re-renders the grid ConfigMap and changes the members digest within seconds', async () => {
    const before = (await podTemplate())!.metadata.annotations![GRIDS_DIGEST_ANNOTATION];
    const started = Date.now();
    await apply(template(ns, 'std', { gridType: 'Session', partitions: 37, timeToLiveSeconds: 600 }));
    await waitFor('grid.json partitions 37', async () => (await gridFile(ns, 'g'))?.['partitions'] === 37);
    figures['template edit -> ConfigMap (ms)'] = Date.now() - started;
    const after = await waitFor('a new digest', async () => {
      const d = (await podTemplate())?.metadata.annotations?.[GRIDS_DIGEST_ANNOTATION];
      return d !== before ? d : undefined;
    });
    figures['template edit -> StatefulSet digest (ms)'] = Date.now() - started;
    expect(after).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.now() - started).toBeLessThan(10_000);
    // The grid's own setting still wins over the template's.
    expect(await gridFile(ns, 'g')).toMatchObject({ timeToLiveSeconds: 60 });
  });

  it('a DataGrid naming a missing template waits, its condition naming spec.template; created, it is Ready and mounted', async () => {
    await apply(grid(ns, 'late', { template: 'later' }));
    const waiting = await waitFor('DataGrid late Reconciling', async () => {
      const c = await conditionOf(ns, 'datagrid', 'late', 'Reconciling');
      return c?.status === 'True' ? c : undefined;
    });
    expect(waiting).toMatchObject({ reason: 'Waiting', message: `spec.template: GridTemplate ${ns}/later not found (or not valid)` });
    expect(await conditionOf(ns, 'datagrid', 'late', 'Ready')).toMatchObject({ status: 'False', reason: 'Waiting' });
    expect(await conditionOf(ns, 'datagrid', 'late', 'Stalled')).toMatchObject({ status: 'False' });
    expect(await gridFile(ns, 'late')).toBeUndefined();
    // The members do not mount what is not there (they would not start).
    expect(mounted(await podTemplate())).toEqual(['c-grid-g:g.json']);

    const started = Date.now();
    await apply(template(ns, 'later', { partitions: 7 }));
    await waitFor('DataGrid late Ready', async () => (await conditionOf(ns, 'datagrid', 'late', 'Ready'))?.status === 'True');
    figures['template created -> waiting DataGrid Ready (ms)'] = Date.now() - started;
    expect(await gridFile(ns, 'late')).toMatchObject({ partitions: 7 });
    const t = await waitFor('the members mount late too', async () => {
      const p = await podTemplate();
      return mounted(p).length === 2 ? p : undefined;
    });
    expect(mounted(t)).toEqual(['c-grid-g:g.json', 'c-grid-late:late.json']);
    expect(t.metadata.annotations?.[GRIDS_ANNOTATION]).toBe('g,late');
    // Well within the 60 s backstop recheck: the template's event queued its reader.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a deleted grid leaves the volume (and the last one takes the volume and annotations away)', async () => {
    const started = Date.now();
    await cp.kubectlOk(['delete', '-n', ns, 'datagrid.kiln.dev', 'late']);
    await waitFor('late unmounted', async () => {
      const p = await podTemplate();
      return mounted(p).length === 1;
    });
    figures['grid deleted -> unmounted (ms)'] = Date.now() - started;
    expect(mounted(await podTemplate())).toEqual(['c-grid-g:g.json']);
    await cp.kubectlOk(['delete', '-n', ns, 'datagrid.kiln.dev', 'g']);
    const t = await waitFor('no grids volume', async () => {
      const p = await podTemplate();
      return p && !p.spec.volumes.some((v) => v.name === 'grids') ? p : undefined;
    });
    expect(t.metadata.annotations?.[GRIDS_ANNOTATION]).toBeUndefined();
    expect(t.metadata.annotations?.[GRIDS_DIGEST_ANNOTATION]).toBeUndefined();
  });
});

describe('git mode', () => {
  it('commits the cache with its grids mounted, and the template edit re-renders both in a later commit', async () => {
    const bare = join(tmp, 'deploy.git');
    initBareRepo(bare, tmp);
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    const gitManager = new Manager({
      kc,
      namespaces: [gitNs],
      concurrency: 2,
      qps: 0,
      burst: 0,
      resyncSeconds: 0,
      version: 'test',
      log,
      sink: 'git',
      git: { repo: bare, branch: 'main', basePath: 'clusters', cluster: 'test', workDir: join(tmp, 'clone'), debounceMs: 300, maxWaitMs: 2000 },
    });
    await gitManager.start();
    try {
      const show = (path: string) => {
        try {
          return plainGit(bare, ['show', `main:clusters/test/${gitNs}/${path}`]);
        } catch {
          return undefined;
        }
      };
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const statefulSetIn = (manifest: string | undefined): any => parseYamlStream(manifest ?? '').find((d) => (d.value as { kind?: string }).kind === 'StatefulSet')?.value;
      const committedGrid = (name: string) => {
        const m = show(`datagrid/${name}/manifest.yaml`);
        const cm = m ? (parseYamlStream(m)[0]!.value as { data: Record<string, string> }) : undefined;
        return cm ? (JSON.parse(cm.data['grid.json']!) as Record<string, unknown>) : undefined;
      };
      await apply(cache(gitNs));
      await apply(template(gitNs, 'std', { partitions: 31 }));
      await apply(grid(gitNs, 'g', { template: 'std' }));
      const sts = await waitFor(
        'the committed StatefulSet mounts c-grid-g',
        () => {
          const s = statefulSetIn(show('cachecluster/c/manifest.yaml'));
          return s?.spec.template.metadata.annotations?.[GRIDS_ANNOTATION] === 'g' ? s : undefined;
        },
        20_000,
      );
      expect(mounted(sts.spec.template)).toEqual(['c-grid-g:g.json']);
      expect(committedGrid('g')).toMatchObject({ partitions: 31 });
      // A GridTemplate renders nothing: no directory of its own.
      expect(show('gridtemplate/std/manifest.yaml')).toBeUndefined();
      await waitFor('DataGrid g Ready (committed)', async () => (await conditionOf(gitNs, 'datagrid', 'g', 'Ready'))?.status === 'True', 20_000);

      const before = sts.spec.template.metadata.annotations[GRIDS_DIGEST_ANNOTATION];
      await apply(template(gitNs, 'std', { partitions: 37 }));
      await waitFor('the committed grid has partitions 37', () => committedGrid('g')?.['partitions'] === 37, 20_000);
      const after = await waitFor(
        'the committed digest changes',
        () => {
          const d = statefulSetIn(show('cachecluster/c/manifest.yaml'))?.spec.template.metadata.annotations?.[GRIDS_DIGEST_ANNOTATION];
          return d !== before ? d : undefined;
        },
        20_000,
      );
      expect(after).toMatch(/^[0-9a-f]{64}$/);

      // A grid whose template is missing: Reconciling in git mode too, and nothing committed for it.
      await apply(grid(gitNs, 'late', { template: 'later' }));
      const waiting = await waitFor('DataGrid late Reconciling', async () => {
        const c = await conditionOf(gitNs, 'datagrid', 'late', 'Reconciling');
        return c?.status === 'True' ? c : undefined;
      });
      expect(waiting).toMatchObject({ reason: 'Waiting', message: `spec.template: GridTemplate ${gitNs}/later not found (or not valid)` });
      expect(show('datagrid/late/manifest.yaml')).toBeUndefined();
    } finally {
      await gitManager.stop();
    }
  });
});

describe('status.members during a rollout', () => {
  it('a member still on the previous revision reports the grids it serves, the replaced one the new set', async () => {
    const members = async () => membersOf(await getJson(manualNs, 'cachecluster.kiln.dev', 'c'));
    const podAnnotation = async (name: string) => (await getJson(manualNs, 'pod', name))?.metadata.annotations?.[GRIDS_ANNOTATION] as string | undefined;
    await apply(cache(manualNs));
    await apply(grid(manualNs, 'a', {}));
    // The test is the members' kubelet: it makes every pod ready until both run the revision with grid a
    // (the cache may have been applied before the grid reached its render: then a first revision without it rolls).
    await waitFor(
      'both pods carry grid a, ready',
      async () => {
        for (const p of ['c-0', 'c-1']) if ((await getJson(manualNs, 'pod', p))?.metadata) await setPodReady(inject('controlPlane'), manualNs, p).catch(() => undefined);
        return (await podAnnotation('c-0')) === 'a' && (await podAnnotation('c-1')) === 'a';
      },
      30_000,
    );
    await waitFor(
      'both members serve a',
      async () =>
        JSON.stringify(await members()) ===
        JSON.stringify([
          { name: 'c-0', grids: ['a'] },
          { name: 'c-1', grids: ['a'] },
        ]),
      30_000,
    );

    // A second grid: the StatefulSet replaces c-1 first and waits for it to be ready, which it never is here.
    await apply(grid(manualNs, 'b', {}));
    await waitFor('c-1 replaced with grids a,b', async () => (await podAnnotation('c-1')) === 'a,b', 30_000);
    const during = await waitFor('status.members shows the rollout half done', async () => {
      const m = await members();
      return JSON.stringify(m) ===
        JSON.stringify([
          { name: 'c-0', grids: ['a'] },
          { name: 'c-1', grids: ['a', 'b'] },
        ])
        ? m
        : undefined;
    });
    expect(during).toHaveLength(2);
    expect(await conditionOf(manualNs, 'cachecluster', 'c', 'Ready')).toMatchObject({ status: 'False' });
  });
});
