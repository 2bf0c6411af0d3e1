/**
 * `kiln diff` against a real API server (the CLI as users run it, as a child
 * process): a fresh cluster (every object new), a cluster the apply-mode
 * controller converged (no output, exit 0), a child edited by hand while the
 * controller is stopped (its fields in the diff), a feature switched off (the
 * object the controller would prune listed), and the controller then doing
 * exactly that. Every apply kiln diff sends is a dry run: the tests check that
 * the cluster did not change.
 *
 * KILN_DIFF_NAMESPACE names the test's namespace (default: a random one);
 * KILN_DIFF_CAPTURE, a directory, receives the hand-edit case's output (the
 * README's "Previewing changes" shows it).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { render } from '../../kinds/render.js';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { applySetId, DESIRED_DIGEST, PART_OF } from '../../controller/apply/applyset.js';
import { diffName } from '../../controller/apply/diff.js';
import { Manager } from '../../controller/manager.js';
import { toYamlStream } from '../../lib/yaml.js';
import { validate } from '../../validate/index.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { run } from '../harness/run.js';
import { waitFor as waitUntil } from '../harness/wait.js';
import { exampleResources } from '../unit/fixtures.js';

const root = join(import.meta.dirname, '..', '..');
let cp: ControlPlaneClient;
let manager: Manager | undefined;
const ns = process.env['KILN_DIFF_NAMESPACE'] ?? `kiln-diff-${randomBytes(3).toString('hex')}`;
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-20).join('\n'));

const kinds = ['DirectoryService', 'PostgresInstance', 'CacheCluster', 'DataGrid', 'DirectoryBackup', 'DirectoryRestore'];
const examples = exampleResources()
  .map((e) => e.resource)
  .filter((r) => kinds.includes(r.kind))
  .map((r) => ({ ...r, metadata: { ...r.metadata, namespace: ns } }));
const plural: Record<string, string> = {
  DirectoryService: 'directoryservices',
  PostgresInstance: 'pgi',
  CacheCluster: 'cache',
  DataGrid: 'grid',
  DirectoryBackup: 'dsbackup',
  DirectoryRestore: 'dsrestore',
};
const ds = examples.find((r) => r.kind === 'DirectoryService')!;

function rendered(r: KilnResource): K8sObject[] {
  const v = validate(r);
  if (!v.ok) throw new Error(`example ${r.kind} invalid`);
  return render(v.resource);
}
/** The objects the controller applies now: a restore's snapshot waits for its Job to complete (it never does here: no kubelet). */
const appliedNow = (r: KilnResource) => rendered(r).filter((o) => !o.metadata.annotations?.['kiln.dev/apply-after']);

let inputs: string;
let scratch: string;

async function kilnDiff(...args: string[]) {
  return run(process.execPath, [join(root, 'bin', 'kiln.js'), 'diff', ...args, '--kubeconfig', cp.kubeconfig], { cwd: root, timeoutMs: 120_000 });
}

/** With KILN_DIFF_CAPTURE set: the command and what it printed, for the README. */
function capture(file: string, r: { stdout: string; stderr: string; code: number }): void {
  const dir = process.env['KILN_DIFF_CAPTURE'];
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, file), `$ kiln diff --from-cluster -n ${ns}\n${r.stdout}${r.stderr}$ echo $?\n${r.code}\n`);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getJson<T = any>(args: string[]): Promise<T | undefined> {
  const r = await cp.kubectl(['get', ...args, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

/** The objects of one diff section, by header name. */
function sections(stdout: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of stdout.split('\n')) {
    const m = /^diff -u -N LIVE\/(\S+) MERGED\/(\S+)$/.exec(line);
    if (m) {
      expect(m[1]).toBe(m[2]);
      current = [];
      out.set(m[1]!, current);
    } else if (line) {
      current!.push(line);
    }
  }
  return out;
}
const changedLines = (lines: string[]) => lines.filter((l) => /^[-+]/.test(l) && !/^(---|\+\+\+) /.test(l));

async function managedObjects(): Promise<string[]> {
  const l = await getJson([
    '-n',
    ns,
    'configmaps,services,statefulsets,jobs,poddisruptionbudgets,persistentvolumeclaims,volumesnapshots.snapshot.storage.k8s.io',
    '-l',
    'app.kubernetes.io/managed-by=kiln',
  ]);
  return (l?.items ?? []).map((o: K8sObject) => `${o.kind}/${o.metadata.name}`).sort();
}

async function startController(): Promise<Manager> {
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  const m = new Manager({ kc, namespaces: [ns], concurrency: 4, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
  await m.start();
  return m;
}

/** Stops the controller once its queue has drained (watch events of its own writes included). */
async function stopController(): Promise<void> {
  const m = manager!;
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 500));
    await m.queue.idle();
  }
  await m.stop();
  manager = undefined;
}

/**
 * Converged: every resource's status.inventory lists what it renders, for its
 * generation, and the objects applied now exist. (Not Ready: it also waits
 * for members to run, and nothing runs without a kubelet.)
 */
async function converged(): Promise<void> {
  const want: string[] = [];
  for (const r of examples) {
    const live = await waitFor(`${r.kind}/${r.metadata.name} applied`, async () => {
      const o = await getJson(['-n', ns, plural[r.kind]!, r.metadata.name]);
      const inventory = (o?.status?.inventory ?? []).map((i: { kind: string; name: string }) => `${i.kind}/${i.name}`);
      const names = rendered({ ...r, spec: o?.spec ?? r.spec }).map((c) => `${c.kind}/${c.metadata.name}`);
      return o?.status?.observedGeneration === o?.metadata.generation && JSON.stringify(inventory) === JSON.stringify(names) ? o : undefined;
    });
    want.push(...appliedNow({ ...r, spec: live.spec }).map((o) => `${o.kind}/${o.metadata.name}`));
  }
  const present = await managedObjects();
  for (const o of want) expect(present, o).toContain(o);
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  // The harness's stand-in kubelet leaves pods in a namespace labelled so alone: no pod runs and no Job
  // completes here, so a restore's snapshot keeps waiting for its Job and nothing changes under the diffs.
  await cp.kubectlOk(['label', 'namespace', ns, 'kiln.dev/stand-in-kubelet=manual']);
  scratch = mkdtempSync(join(tmpdir(), 'kiln-diff-test-'));
  inputs = join(scratch, 'resources.yaml');
  writeFileSync(inputs, toYamlStream(examples));
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('kiln diff', () => {
  it('a fresh cluster: every object is new, diffed against nothing, exit 1; nothing is written', async () => {
    // The resources are not in the cluster yet: from the files.
    const fromFiles = await kilnDiff(inputs);
    expect(fromFiles.code, fromFiles.stderr).toBe(1);
    const files = sections(fromFiles.stdout);
    const expected = examples.flatMap((r) => appliedNow(r).map((o) => diffName({ ...o, metadata: { ...o.metadata, namespace: ns } })));
    expect([...files.keys()].sort()).toEqual([...expected].sort());
    for (const [name, lines] of files) {
      expect(lines[2], name).toMatch(/^@@ -0,0 \+1,\d+ @@$/);
      expect(
        lines.slice(3).every((l) => l.startsWith('+')),
        name,
      ).toBe(true);
      // Without a live resource there is no UID to own the objects by.
      expect(lines.join('\n'), name).not.toContain('ownerReferences');
    }
    expect(fromFiles.stderr).toContain(`DirectoryService ${ns}/ds-idrepo: not in the cluster yet`);
    expect(fromFiles.stderr).toContain(`DirectoryRestore ${ns}/idrepo-restore: VolumeSnapshot/idrepo-restore-restore waits for batch/v1/Job/idrepo-restore-restore:Complete`);
    expect(fromFiles.stderr).toContain(
      `\nDirectoryService ${ns}/ds-idrepo: would create ${appliedNow(ds)
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .join(', ')}\n`,
    );

    // Created (kubectl apply) but not yet reconciled: from the cluster, with the ownerReference to each resource's UID.
    for (const r of examples) await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(r) });
    const live = await getJson(['-n', ns, 'directoryservice', 'ds-idrepo']);
    const fromCluster = await kilnDiff('--from-cluster', '-n', ns);
    expect(fromCluster.code, fromCluster.stderr).toBe(1);
    const objects = sections(fromCluster.stdout);
    expect([...objects.keys()].sort()).toEqual([...expected].sort());
    const sts = objects.get(`apps.v1.StatefulSet.${ns}.ds-idrepo`)!.join('\n');
    expect(sts).toContain(`+    ${PART_OF}: ${applySetId(live)}`);
    expect(sts).toContain(`+    ${DESIRED_DIGEST}: `);
    // The emitter quotes a UID only when a YAML reader could take it for another type (e.g. 123e4567-...: a number).
    const uid = (text: string) =>
      [`+      uid: ${live.metadata.uid}`, `+      uid: "${live.metadata.uid}"`].some((line) =>
        text.includes(
          [
            '+  ownerReferences:',
            '+    - apiVersion: kiln.dev/v1alpha1',
            '+      kind: DirectoryService',
            '+      name: ds-idrepo',
            line,
            '+      controller: true',
            '+      blockOwnerDeletion: true',
          ].join('\n'),
        ),
      );
    expect(uid(sts), sts).toBe(true);
    // What the server added (defaults) is in it; what it owns is not.
    expect(sts).toContain('+  podManagementPolicy: ');
    for (const field of ['managedFields', 'resourceVersion', 'creationTimestamp', 'generation']) expect(sts).not.toContain(field);
    expect(sts).not.toMatch(/^\+ {2}uid: /m);
    expect(sts).not.toMatch(/^\+status:/m);

    // Dry runs only.
    expect(await managedObjects()).toEqual([]);
    expect((await getJson(['-n', ns, 'directoryservice', 'ds-idrepo'])).metadata.resourceVersion).toBe(live.metadata.resourceVersion);
  });

  it('a converged cluster: no output, exit 0 (from the cluster and from the files)', async () => {
    manager = await startController();
    await converged();
    await stopController();
    const fromCluster = await kilnDiff('--from-cluster', '-n', ns);
    expect(fromCluster.stdout).toBe('');
    // The restore's snapshot still waits for its Job: a note, not a change.
    expect(fromCluster.stderr).toBe(
      `DirectoryRestore ${ns}/idrepo-restore: VolumeSnapshot/idrepo-restore-restore waits for batch/v1/Job/idrepo-restore-restore:Complete: the controller applies it once that holds\n`,
    );
    expect(fromCluster.code, fromCluster.stderr).toBe(0);
    const fromFiles = await kilnDiff(inputs);
    expect(fromFiles.stdout).toBe('');
    expect(fromFiles.code, fromFiles.stderr).toBe(0);
  });

  it('a child edited by hand while the controller is stopped: the fields kiln owns show in the diff, exit 1', async () => {
    const sts = rendered(ds).find((o) => o.kind === 'StatefulSet') as K8sObject & { spec: { template: { spec: { containers: { name: string; image: string }[] } } } };
    const container = sts.spec.template.spec.containers[0]!;
    await cp.kubectlOk([
      'patch',
      '-n',
      ns,
      'statefulset',
      'ds-idrepo',
      '-p',
      JSON.stringify({ spec: { replicas: 5, template: { spec: { containers: [{ name: container.name, image: `${container.image}-hotfix` }] } } } }),
    ]);
    const before = await getJson(['-n', ns, 'statefulset', 'ds-idrepo', '--show-managed-fields']);

    const r = await kilnDiff('--from-cluster', '-n', ns);
    capture('hand-edit.txt', r);
    expect(r.code, r.stderr).toBe(1);
    const objects = sections(r.stdout);
    // Only the edited object, and only the edited fields.
    expect([...objects.keys()]).toEqual([`apps.v1.StatefulSet.${ns}.ds-idrepo`]);
    expect(changedLines(objects.get(`apps.v1.StatefulSet.${ns}.ds-idrepo`)!)).toEqual([
      '-  replicas: 5',
      '+  replicas: 3',
      `-          image: ${container.image}-hotfix`,
      `+          image: ${container.image}`,
    ]);
    expect(r.stderr).toContain(`DirectoryService ${ns}/ds-idrepo: would change StatefulSet/ds-idrepo\n`);
    // The dry run changed nothing (the StatefulSet controller writes its status meanwhile: the spec is compared).
    const after = await getJson(['-n', ns, 'statefulset', 'ds-idrepo', '--show-managed-fields']);
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(after.spec).toEqual(before.spec);
    const kilnEntry = (o: { metadata: { managedFields: { manager: string }[] } }) => o.metadata.managedFields.find((f) => f.manager === 'kiln');
    expect(kilnEntry(after)).toEqual(kilnEntry(before));
  });

  it('a feature switched off: the object the controller would prune is listed; objects it must not prune are not', async () => {
    const live = await getJson(['-n', ns, 'directoryservice', 'ds-idrepo']);
    // Labelled as a member, but not applied by kiln's field manager: the reconciler keeps it.
    await cp.kubectlOk(['create', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'handmade', namespace: ns, labels: { [PART_OF]: applySetId(live), 'app.kubernetes.io/managed-by': 'kiln' } },
        data: { a: 'b' },
      }),
    });
    await cp.kubectlOk(['patch', '-n', ns, 'directoryservice', 'ds-idrepo', '--type=merge', '-p', JSON.stringify({ spec: { service: { type: 'None' } } })]);

    const r = await kilnDiff('--from-cluster', '-n', ns);
    capture('feature-off.txt', r);
    expect(r.code, r.stderr).toBe(1);
    const objects = sections(r.stdout);
    const client = objects.get(`v1.Service.${ns}.ds-idrepo-client`)!;
    expect(client, r.stdout).toBeDefined();
    expect(client[2]).toMatch(/^@@ -1,\d+ \+0,0 @@$/);
    expect(client.slice(3).every((l) => l.startsWith('-'))).toBe(true);
    expect(client).toContain('-kind: Service');
    expect(client).toContain('-  name: ds-idrepo-client');
    expect(r.stderr).toMatch(new RegExp(`^DirectoryService ${ns}/ds-idrepo: would change StatefulSet/ds-idrepo; would prune Service/ds-idrepo-client$`, 'm'));
    // Not the hand-made member, not the headless Service, never a claim.
    expect([...objects.keys()].sort()).toEqual([`apps.v1.StatefulSet.${ns}.ds-idrepo`, `v1.Service.${ns}.ds-idrepo-client`]);
    expect(await getJson(['-n', ns, 'service', 'ds-idrepo-client'])).toBeDefined();

    // The same from the changed file.
    const changed = join(scratch, 'ds-no-client-service.yaml');
    writeFileSync(changed, toYamlStream([{ ...ds, spec: { ...ds.spec, service: { type: 'None' } } }]));
    const fromFile = await kilnDiff(changed);
    expect(fromFile.code, fromFile.stderr).toBe(1);
    expect(fromFile.stderr).toContain('would prune Service/ds-idrepo-client');
  });

  it('the controller then does what the diff showed, and the diff is empty again', async () => {
    manager = await startController();
    await waitFor('client Service pruned', async () => (await getJson(['-n', ns, 'service', 'ds-idrepo-client'])) === undefined);
    await waitFor('StatefulSet repaired', async () => {
      const sts = await getJson(['-n', ns, 'statefulset', 'ds-idrepo']);
      return sts?.spec.replicas === 3 && !sts.spec.template.spec.containers[0].image.endsWith('-hotfix');
    });
    await converged();
    await stopController();
    expect(await getJson(['-n', ns, 'configmap', 'handmade'])).toBeDefined();
    const r = await kilnDiff('--from-cluster', '-n', ns);
    expect(r.stdout).toBe('');
    expect(r.code, r.stderr).toBe(0);
  });

  it('an error (here: a namespace that does not exist) exits 2', async () => {
    const missing = join(scratch, 'elsewhere.yaml');
    writeFileSync(missing, toYamlStream([{ ...ds, metadata: { ...ds.metadata, namespace: `${ns}-missing` } }]));
    const r = await kilnDiff(missing);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`DirectoryService ${ns}-missing/ds-idrepo: error: StatefulSet/ds-idrepo: namespaces "${ns}-missing" not found`);
  });
});
