/**
 * Directory backups that mean what they say, on the real control plane:
 *
 * - apply mode: a DirectoryBackup that names no snapshot class gets its
 *   DirectoryService's spec.storage.volumeSnapshotClassName on the
 *   VolumeSnapshot kiln applies; one that names its own keeps it;
 * - git mode, against a real bare repository: the same class is committed;
 *   a DirectoryRestore's claim and Job are committed, its VolumeSnapshot is
 *   not (Flux would snapshot the empty volume at once) until the Job, applied
 *   here as Flux would apply it from the repository, is Complete in the
 *   cluster: then the snapshot is committed within seconds and the status says
 *   so; it stays committed when the Job is deleted.
 *
 * Both namespaces are left to this test's own pod writes (the stand-in
 * kubelet's manual label): the Job's pod succeeds when the test says so, and
 * kube-controller-manager's job controller marks the Job Complete.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Manager } from '../../controller/manager.js';
import { parseYamlStream } from '../../lib/yaml.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { refusedLine } from '../harness/refused.js';
import { initBareRepo, plainGit } from '../harness/git.js';
import { run } from '../harness/run.js';
import { MANUAL_LABEL, setPodSucceeded } from '../harness/stand-in-kubelet.js';
import { waitFor as waitUntil } from '../harness/wait.js';

let cp: ControlPlaneClient;
let applyManager: Manager | undefined;
let gitManager: Manager | undefined;
const id = randomBytes(3).toString('hex');
const applyNs = `kiln-snap-apply-${id}`;
const gitNs = `kiln-snap-git-${id}`;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-directory-snapshots-'));
const bare = join(tmp, 'deploy.git');
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-20).join('\n'));

const IMAGE = 'registry.example.com/forgerock/ds:7.5.1';
const CLASS = 'csi-directory-snapshots';

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface Live {
  metadata: { generation: number };
  status?: { observedGeneration?: number; conditions?: Cond[]; commit?: string };
}

const applyKiln = (ns: string, kind: string, name: string, spec: Record<string, unknown>) =>
  cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kiln.dev/v1alpha1', kind, metadata: { name, namespace: ns }, spec }) });
async function getJson<T>(ns: string, resource: string, name: string): Promise<T | undefined> {
  const r = await cp.kubectl(['get', '-n', ns, resource, name, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}
const cond = (o: Live | undefined, type: string) => o?.status?.conditions?.find((c) => c.type === type);
const snapshotClass = (o: { spec?: { volumeSnapshotClassName?: string } } | undefined) => o?.spec?.volumeSnapshotClassName;

const git = (...args: string[]) => plainGit(tmp, ['--git-dir', bare, ...args]);
const mainSha = () => git('rev-parse', 'main').trim();
/** The objects the branch holds for a resource, as Flux reads them. */
function committed(kind: string, name: string): { apiVersion: string; kind: string; metadata: { name: string }; spec?: Record<string, unknown> }[] | undefined {
  const path = `clusters/test/${gitNs}/${kind.toLowerCase()}/${name}/manifest.yaml`;
  let text: string;
  try {
    text = git('show', `main:${path}`);
  } catch {
    return undefined;
  }
  return parseYamlStream(text).map((d) => d.value as never);
}

function newManager(sink: 'apply' | 'git', ns: string): Manager {
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  return new Manager({
    kc,
    namespaces: [ns],
    concurrency: 4,
    qps: 0,
    burst: 0,
    resyncSeconds: 0,
    version: 'test',
    log,
    sink,
    ...(sink === 'git'
      ? { git: { repo: bare, branch: 'main', basePath: 'clusters', cluster: 'test', workDir: join(tmp, 'clone'), debounceMs: 300, maxWaitMs: 2000, retryDelayMs: { base: 20, max: 200 } } }
      : {}),
  });
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  initBareRepo(bare, tmp);
  for (const ns of [applyNs, gitNs]) {
    await cp.kubectlOk(['create', 'namespace', ns]);
    await cp.kubectlOk(['label', 'namespace', ns, `${MANUAL_LABEL}=manual`]);
  }
}, 60_000);

afterAll(async () => {
  await applyManager?.stop();
  await gitManager?.stop();
  for (const ns of [applyNs, gitNs]) await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  rmSync(tmp, { recursive: true, force: true });
});

describe('apply mode: the snapshot class of a backup', () => {
  it("a DirectoryBackup naming no class gets its DirectoryService's; one naming its own keeps it", async () => {
    applyManager = newManager('apply', applyNs);
    await applyManager.start();
    await applyKiln(applyNs, 'DirectoryService', 'ds', { replicas: 1, image: IMAGE, storage: { size: '1Gi', volumeSnapshotClassName: CLASS } });
    // The StatefulSet controller makes the member's claim, which the backup snapshots.
    await waitFor('claim data-ds-0', () => getJson(applyNs, 'pvc', 'data-ds-0'), 60_000);
    await applyKiln(applyNs, 'DirectoryBackup', 'inherit', { directoryService: 'ds', image: IMAGE });
    await applyKiln(applyNs, 'DirectoryBackup', 'own', { directoryService: 'ds', image: IMAGE, volumeSnapshotClassName: 'csi-own' });
    const inherited = await waitFor('VolumeSnapshot inherit-source', () => getJson<{ spec?: { volumeSnapshotClassName?: string } }>(applyNs, 'volumesnapshot', 'inherit-source'));
    expect(snapshotClass(inherited)).toBe(CLASS);
    const own = await waitFor('VolumeSnapshot own-source', () => getJson<{ spec?: { volumeSnapshotClassName?: string } }>(applyNs, 'volumesnapshot', 'own-source'));
    expect(snapshotClass(own)).toBe('csi-own');
    // kiln diff --from-cluster reads the DirectoryService as the controller does: no change to the inherited class.
    const root = new URL('../../', import.meta.url).pathname;
    const diff = await run(process.execPath, [join(root, 'bin', 'kiln.js'), 'diff', '--from-cluster', '-n', applyNs, '--kubeconfig', cp.kubeconfig], { cwd: root, timeoutMs: 120_000 });
    expect(diff.stderr).not.toMatch(/DirectoryBackup [^:]+\/inherit: would change VolumeSnapshot/);
    expect(diff.stdout).not.toContain(`VolumeSnapshot.${applyNs}.inherit-source`);
    await applyManager.stop();
    applyManager = undefined;
  }, 120_000);
});

describe("git mode: the snapshot class, and a restore's snapshot held back until its Job completes in the cluster", () => {
  it('commits the class, holds the snapshot, commits it once the Job is Complete, and keeps it when the Job goes', async () => {
    gitManager = newManager('git', gitNs);
    await gitManager.start();
    expect([...gitManager.waited.keys()]).toEqual(['batch/v1/Job']);
    await applyKiln(gitNs, 'DirectoryService', 'ds', { replicas: 1, image: IMAGE, storage: { size: '1Gi', volumeSnapshotClassName: CLASS } });
    await applyKiln(gitNs, 'DirectoryBackup', 'inherit', { directoryService: 'ds', image: IMAGE });
    const backup = await waitFor('the backup committed', () => committed('DirectoryBackup', 'inherit'));
    expect(snapshotClass(backup.find((o) => o.kind === 'VolumeSnapshot') as never)).toBe(CLASS);

    await applyKiln(gitNs, 'DirectoryRestore', 'back', { backup: 'inherit', image: IMAGE });
    const held = await waitFor('the restore committed', () => committed('DirectoryRestore', 'back'));
    expect(held.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['Job/back-restore', 'PersistentVolumeClaim/back-restore']);
    const waiting = await waitFor('the restore Reconciling, Waiting', async () => {
      const o = await getJson<Live>(gitNs, 'dsrestore', 'back');
      return cond(o, 'Reconciling')?.reason === 'Waiting' && o!.status!.commit === mainSha() ? o : undefined;
    });
    expect(cond(waiting, 'Ready')!.status).toBe('False');
    expect(cond(waiting, 'Reconciling')!.message).toContain('VolumeSnapshot/back-restore waits for batch/v1/Job/back-restore:Complete in the cluster: committed once that holds');
    // Nothing else happens while the Job is not in the cluster.
    await new Promise((r) => setTimeout(r, 1500));
    expect(committed('DirectoryRestore', 'back')!.some((o) => o.kind === 'VolumeSnapshot')).toBe(false);

    // Flux applies the committed Job (its own field manager); the job controller makes its pod.
    const job = held.find((o) => o.kind === 'Job')!;
    await cp.kubectlOk(['apply', '--server-side', '--field-manager', 'kustomize-controller', '-n', gitNs, '-f', '-'], { input: JSON.stringify(job) });
    const pod = await waitFor("the Job's pod", async () => {
      const r = await cp.kubectl(['get', 'pods', '-n', gitNs, '-l', 'job-name=back-restore', '-o', 'jsonpath={.items[0].metadata.name}']);
      return r.code === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
    });
    expect(committed('DirectoryRestore', 'back')!.some((o) => o.kind === 'VolumeSnapshot')).toBe(false);

    // The pod succeeds; the job controller marks the Job Complete; kiln commits the snapshot.
    await setPodSucceeded(cp, gitNs, pod);
    await waitFor('Job Complete', async () => {
      const j = await getJson<{ status?: { conditions?: { type: string; status: string }[] } }>(gitNs, 'job', 'back-restore');
      return j?.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True');
    });
    const completeAt = performance.now();
    const released = await waitFor('the snapshot committed', () => committed('DirectoryRestore', 'back')?.find((o) => o.kind === 'VolumeSnapshot'), 15_000);
    const seconds = (performance.now() - completeAt) / 1000;
    console.log(`[directory-snapshots] Job Complete -> VolumeSnapshot committed: ${seconds.toFixed(2)} s`);
    expect(seconds).toBeLessThan(10);
    expect(released.metadata.name).toBe('back-restore');
    const ready = await waitFor('the restore Ready', async () => {
      const o = await getJson<Live>(gitNs, 'dsrestore', 'back');
      return cond(o, 'Ready')?.status === 'True' && o!.status!.commit === mainSha() ? o : undefined;
    });
    expect(cond(ready, 'Ready')!.reason).toBe('Committed');
    expect(cond(ready, 'Reconciling')!.status).toBe('False');

    // The Job is deleted: the snapshot stays committed (Flux would prune it otherwise).
    const head = mainSha();
    await cp.kubectlOk(['delete', 'job', '-n', gitNs, 'back-restore', '--cascade=background']);
    await waitFor('the Job gone', async () => (await getJson(gitNs, 'job', 'back-restore')) === undefined);
    gitManager.queue.add(`DirectoryRestore/${gitNs}/back`);
    await new Promise((r) => setTimeout(r, 1500));
    await gitManager.queue.idle();
    await gitManager.git!.flush();
    expect(mainSha()).toBe(head);
    expect(committed('DirectoryRestore', 'back')!.some((o) => o.kind === 'VolumeSnapshot')).toBe(true);
    expect(logs.filter((l) => refusedLine(l))).toEqual([]);
  }, 120_000);
});
