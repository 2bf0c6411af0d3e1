/**
 * What Ready means, on the real control plane: a kind with members is Ready
 * only when its StatefulSet's rollout is complete; until then Reconciling
 * (Progressing) with the members in the message; a rollout without progress
 * for spec.progressDeadlineSeconds is Stalled; backups and restores follow
 * their Job. Synced answers "applied and in sync" on its own.
 *
 * The namespace is left alone by the stand-in kubelet: this test writes pod
 * status itself, one member at a time, as a kubelet would. The StatefulSet
 * and job controllers of kube-controller-manager do the rest.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Manager } from '../../controller/manager.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { kstatus } from '../harness/kstatus.js';
import { MANUAL_LABEL, setPodFailed, setPodReady, setPodSucceeded, startStandInKubelet } from '../harness/stand-in-kubelet.js';
import { waitFor as waitUntil } from '../harness/wait.js';

let cp: ControlPlaneClient;
let manager: Manager;
const ns = `kiln-ready-${randomBytes(3).toString('hex')}`;
const logs: string[] = [];
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000) => waitUntil(what, fn, timeoutMs, () => logs.slice(-20).join('\n'));

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface Live {
  metadata: { generation: number };
  status?: { observedGeneration?: number; conditions?: Cond[]; readyReplicas?: number; rollout?: { members: string; lastProgressTime: string }; result?: string };
}

async function get(resource: string, name: string): Promise<Live | undefined> {
  const r = await cp.kubectl(['get', '-n', ns, resource, name, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as Live) : undefined;
}
const cond = (o: Live | undefined, type: string) => o?.status?.conditions?.find((c) => c.type === type);
/** The resource's conditions for its current generation, once they say `type=status` (and `reason`). */
function until(resource: string, name: string, type: string, status: string, reason?: string, timeoutMs?: number) {
  return waitFor(
    `${resource}/${name} ${type}=${status}${reason ? ` (${reason})` : ''}`,
    async () => {
      const o = await get(resource, name);
      const c = cond(o, type);
      return o && o.status?.observedGeneration === o.metadata.generation && c?.status === status && (!reason || c.reason === reason) ? o : undefined;
    },
    timeoutMs,
  );
}
/** Observed conditions, for the closing note: `Ready=False/Progressing "1/3 members ready"`. */
const transitions: string[] = [];
const record = (what: string, o: Live) => {
  const r = cond(o, 'Ready')!;
  transitions.push(
    `${what}: Ready=${r.status}/${r.reason} "${r.message}", Synced=${cond(o, 'Synced')?.status}, Reconciling=${cond(o, 'Reconciling')?.status}, Stalled=${cond(o, 'Stalled')?.status}, kstatus ${kstatus(o).status}`,
  );
};

async function podExists(name: string): Promise<boolean> {
  return (await cp.kubectl(['get', '-n', ns, 'pod', name, '-o', 'name'])).code === 0;
}
const makeReady = async (pod: string) => {
  await waitFor(`pod ${pod}`, () => podExists(pod));
  await setPodReady(cp, ns, pod);
};

/** The pod the job controller made for Job `job`. */
const jobPod = (job: string) =>
  waitFor(`Job ${job}'s pod`, async () => {
    const r = await cp.kubectl(['get', 'pods', '-n', ns, '-l', `job-name=${job}`, '-o', 'jsonpath={.items[0].metadata.name}']);
    return r.code === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
  });

const applyKiln = (kind: string, name: string, spec: Record<string, unknown>) =>
  cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kiln.dev/v1alpha1', kind, metadata: { name, namespace: ns }, spec }) });

const directory = (name: string, replicas: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    apiVersion: 'kiln.dev/v1alpha1',
    kind: 'DirectoryService',
    metadata: { name, namespace: ns },
    spec: { replicas, image: 'registry.example.com/forgerock/ds:7.5.1', ...extra },
  });

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  await cp.kubectlOk(['label', 'namespace', ns, `${MANUAL_LABEL}=manual`]);
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  manager = new Manager({ kc, namespaces: [ns], concurrency: 4, qps: 0, burst: 0, resyncSeconds: 0, version: 'test', log });
  await manager.start();
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  if (transitions.length) console.log(`[readiness] transitions observed:\n${transitions.join('\n')}`);
});

describe('readiness that means running', () => {
  it('a DirectoryService is Progressing until every member is ready; kubectl wait returns only then; a scale-up goes back to Progressing', async () => {
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: directory('ds', 3) });
    const applied = await until('dirsvc', 'ds', 'Synced', 'True');
    const progressing = await until('dirsvc', 'ds', 'Ready', 'False', 'Progressing');
    record('applied, no member ready', progressing);
    expect(cond(applied, 'Synced')).toMatchObject({ status: 'True', reason: 'Applied' });
    expect(cond(progressing, 'Reconciling')).toMatchObject({ status: 'True', reason: 'Progressing' });
    expect(cond(progressing, 'Ready')!.message).toMatch(/^0\/3 members ready/);
    expect(progressing.status?.rollout?.members).toMatch(/^0\/3 members ready/);
    expect(kstatus(progressing).status).toBe('InProgress');

    // kubectl wait, started now, must not return before the last member is ready.
    let waitedAt = 0;
    const waiting = new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(`${cp.binDir}/kubectl`, ['--kubeconfig', cp.kubeconfig, 'wait', '-n', ns, '--for=condition=Ready', 'dirsvc/ds', '--timeout=90s']);
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      p.on('close', (code) => {
        waitedAt = Date.now();
        resolve({ code, out });
      });
    });

    await makeReady('ds-0');
    const one = await waitFor('1/3 members ready', async () => {
      const o = await get('dirsvc', 'ds');
      return cond(o, 'Ready')?.message.startsWith('1/3 members ready') ? o : undefined;
    });
    record('member 0 ready', one);
    expect(cond(one, 'Ready')!.status).toBe('False');
    expect(kstatus(one).status).toBe('InProgress');
    await makeReady('ds-1');
    await new Promise((r) => setTimeout(r, 1_500));
    expect(waitedAt, 'kubectl wait returned before every member was ready').toBe(0);
    const lastReadyAt = Date.now();
    await makeReady('ds-2');
    const ready = await until('dirsvc', 'ds', 'Ready', 'True');
    record('all members ready', ready);
    expect(cond(ready, 'Ready')).toMatchObject({ reason: 'RolloutComplete', message: '3/3 members ready' });
    expect(cond(ready, 'Reconciling')!.status).toBe('False');
    expect(ready.status?.rollout).toBeUndefined();
    expect(ready.status?.readyReplicas).toBe(3);
    expect(kstatus(ready).status).toBe('Current');
    const waited = await waiting;
    expect(waited.code, waited.out).toBe(0);
    expect(waited.out).toContain('condition met');
    expect(waitedAt).toBeGreaterThanOrEqual(lastReadyAt);

    // Scale up through the scale subresource, as `kubectl scale` does.
    await cp.kubectlOk(['scale', '-n', ns, 'dirsvc/ds', '--replicas=4']);
    const scaling = await until('dirsvc', 'ds', 'Ready', 'False', 'Progressing');
    record('scaled to 4', scaling);
    expect(cond(scaling, 'Ready')!.message).toMatch(/^3\/4 members ready/);
    expect(cond(scaling, 'Synced')!.status).toBe('True');
    expect(kstatus(scaling).status).toBe('InProgress');
    // The member count is part of the directory's configuration, so a scale-up also rolls the
    // members onto the new revision, one at a time: let a kubelet run them from here.
    const kubelet = startStandInKubelet(cp, (m) => logs.push(m), ns);
    try {
      const scaled = await until('dirsvc', 'ds', 'Ready', 'True', undefined, 60_000);
      record('members ready on the new revision', scaled);
      expect(cond(scaled, 'Ready')!.message).toBe('4/4 members ready');
    } finally {
      kubelet.stop();
    }
  });

  it('a rollout without progress for progressDeadlineSeconds is Stalled (ProgressDeadlineExceeded), and recovers when members become ready', async () => {
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: directory('stuck', 1, { progressDeadlineSeconds: 3 }) });
    const progressing = await until('dirsvc', 'stuck', 'Ready', 'False', 'Progressing');
    const stalled = await until('dirsvc', 'stuck', 'Stalled', 'True', 'ProgressDeadlineExceeded', 20_000);
    record('no progress for 3 s', stalled);
    expect(cond(stalled, 'Ready')).toMatchObject({ status: 'False', reason: 'ProgressDeadlineExceeded' });
    expect(cond(stalled, 'Ready')!.message).toMatch(/^no progress for 3s: 0\/1 members ready/);
    expect(cond(stalled, 'Synced')!.status).toBe('True');
    expect(cond(stalled, 'Reconciling')!.status).toBe('False');
    // The deadline counts from the last progress, not from the resource's creation.
    expect(Date.parse(stalled.status!.rollout!.lastProgressTime)).toBeLessThanOrEqual(Date.parse(progressing.status!.rollout!.lastProgressTime) + 1_000);
    expect(kstatus(stalled).status).toBe('Failed');
    const events = await cp.kubectlOk(['get', 'events', '-n', ns, '--field-selector', 'involvedObject.name=stuck,reason=ProgressDeadlineExceeded', '-o', 'name']);
    expect(events.trim()).not.toBe('');

    await makeReady('stuck-0');
    const ready = await until('dirsvc', 'stuck', 'Ready', 'True');
    record('stuck member became ready', ready);
    expect(cond(ready, 'Stalled')!.status).toBe('False');
    expect(kstatus(ready).status).toBe('Current');
  });

  it('a DirectoryBackup is Ready when its Job succeeded', async () => {
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: directory('src', 1) });
    await applyKiln('DirectoryBackup', 'nightly', { directoryService: 'src', image: 'registry.example.com/forgerock/ds:7.5.1' });
    const pending = await until('dsbackup', 'nightly', 'Ready', 'False', 'Progressing');
    record('backup Job created', pending);
    expect(kstatus(pending).status).toBe('InProgress');
    const pod = await jobPod('nightly-backup');
    await setPodSucceeded(cp, ns, pod);
    const done = await until('dsbackup', 'nightly', 'Ready', 'True');
    record('backup Job succeeded', done);
    expect(cond(done, 'Ready')).toMatchObject({ reason: 'JobSucceeded', message: 'Job nightly-backup succeeded' });
    expect(done.status?.result).toBe('Succeeded');
    expect(kstatus(done).status).toBe('Current');
  });

  it("a DirectoryBackup whose Job failed is Stalled (JobFailed) with the Job's message", async () => {
    await applyKiln('DirectoryBackup', 'broken', { directoryService: 'src', image: 'registry.example.com/forgerock/ds:7.5.1' });
    const pod = await jobPod('broken-backup');
    await setPodFailed(cp, ns, pod);
    // The job controller retries a failed pod with backoff (10 s, 20 s, 40 s) until backoffLimit (3): give
    // it its final verdict directly, as it would write it, instead of waiting 70 s for the retries.
    await waitFor('job controller saw the failed pod', async () => {
      const r = await cp.kubectl(['get', 'job', '-n', ns, 'broken-backup', '-o', 'jsonpath={.status.failed}']);
      return r.stdout.trim() === '1';
    });
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await cp.kubectlOk([
      'patch',
      'job',
      '-n',
      ns,
      'broken-backup',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          conditions: [
            { type: 'FailureTarget', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit', lastTransitionTime: now, lastProbeTime: now },
            { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit', lastTransitionTime: now, lastProbeTime: now },
          ],
        },
      }),
    ]);
    const failed = await until('dsbackup', 'broken', 'Stalled', 'True', 'JobFailed');
    record('backup Job failed', failed);
    expect(cond(failed, 'Ready')).toMatchObject({ status: 'False', reason: 'JobFailed', message: 'Job broken-backup failed: Job has reached the specified backoff limit' });
    expect(failed.status?.result).toBe('Failed');
    expect(kstatus(failed).status).toBe('Failed');
  });

  it('a DirectoryRestore holds its snapshot until its Job completes (Progressing), then is Ready', async () => {
    await applyKiln('DirectoryRestore', 'back', { backup: 'nightly', image: 'registry.example.com/forgerock/ds:7.5.1' });
    const waiting = await until('dsrestore', 'back', 'Ready', 'False', 'Progressing');
    record('restore Job created', waiting);
    expect(cond(waiting, 'Synced')).toMatchObject({ status: 'False', reason: 'Waiting' });
    expect(cond(waiting, 'Synced')!.message).toContain('VolumeSnapshot/back-restore waits for batch/v1/Job/back-restore:Complete');
    expect((await cp.kubectl(['get', '-n', ns, 'volumesnapshot', 'back-restore'])).code).not.toBe(0);
    const pod = await jobPod('back-restore');
    await setPodSucceeded(cp, ns, pod);
    const ready = await until('dsrestore', 'back', 'Ready', 'True');
    record('restore Job succeeded, snapshot applied', ready);
    expect(cond(ready, 'Synced')!.status).toBe('True');
    expect((await cp.kubectl(['get', '-n', ns, 'volumesnapshot', 'back-restore'])).code).toBe(0);
  });

  it('printer columns show Synced, Ready and the members', async () => {
    const out = await cp.kubectlOk(['get', '-n', ns, 'dirsvc', 'ds']);
    const [header, row] = out.trim().split('\n');
    expect(header).toMatch(/NAME\s+REPLICAS\s+READY-REPLICAS\s+SYNCED\s+READY\s+STATUS\s+AGE/);
    expect(row).toMatch(/^ds\s+4\s+4\s+True\s+True\s+4\/4 members ready\s+/);
  });
});
