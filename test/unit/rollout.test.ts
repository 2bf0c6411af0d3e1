import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../kube/informer.js';
import { deploymentRollout, jobHealth, progressDeadline, statefulSetRollout } from '../../kube/rollout.js';

const sts = (generation: number, status: Record<string, unknown>): KubeObject => ({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'ds', namespace: 'n', generation }, status });

describe('StatefulSet rollout (kstatus rules)', () => {
  it('is complete only when every member is ready and updated and the controller saw the spec', () => {
    expect(statefulSetRollout(sts(2, { observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 3 }), 3, false)).toEqual({ complete: true, members: '3/3 members ready', ready: 3 });
    // Members not yet ready.
    expect(statefulSetRollout(sts(2, { observedGeneration: 2, replicas: 3, readyReplicas: 2, updatedReplicas: 3 }), 3, false)).toMatchObject({ complete: false, members: '2/3 members ready' });
    // All ready but still on the old revision.
    expect(statefulSetRollout(sts(2, { observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 1, currentRevision: 'a', updateRevision: 'b' }), 3, false)).toMatchObject({
      complete: false,
      members: '3/3 members ready, 1/3 updated',
    });
    // The StatefulSet controller has not seen the new spec.
    expect(statefulSetRollout(sts(3, { observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 3 }), 3, false).complete).toBe(false);
    // kiln has just written it: the cached copy is older than the change.
    expect(statefulSetRollout(sts(2, { observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 3 }), 3, true).complete).toBe(false);
    // Scale-down in progress.
    expect(statefulSetRollout(sts(3, { observedGeneration: 3, replicas: 3, readyReplicas: 3, updatedReplicas: 3 }), 2, false)).toMatchObject({
      complete: false,
      members: '3/2 members ready, 1 leaving',
    });
    // No StatefulSet yet.
    expect(statefulSetRollout(undefined, 1, false).complete).toBe(false);
    // OnDelete: the controller never moves currentRevision; every member updated and ready is the whole rollout.
    const onDelete = { observedGeneration: 2, replicas: 3, readyReplicas: 3, currentRevision: 'a', updateRevision: 'b' };
    expect(statefulSetRollout(sts(2, { ...onDelete, updatedReplicas: 3 }), 3, false, { onDelete: true })).toEqual({ complete: true, members: '3/3 members ready', ready: 3 });
    expect(statefulSetRollout(sts(2, { ...onDelete, updatedReplicas: 2 }), 3, false, { onDelete: true })).toMatchObject({ complete: false, members: '3/3 members ready, 2/3 updated' });
    // Stopped (0 replicas) is a complete rollout.
    expect(statefulSetRollout(sts(1, { observedGeneration: 1, replicas: 0 }), 0, false).complete).toBe(true);
  });
});

describe('Deployment rollout (kstatus rules)', () => {
  const deployment = (generation: number, status: Record<string, unknown>): KubeObject => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'mc', namespace: 'n', generation }, status });
  it('is complete only when every wanted pod is updated and available, no old pod is left and the controller saw the spec', () => {
    const done = { observedGeneration: 2, replicas: 3, readyReplicas: 3, availableReplicas: 3, updatedReplicas: 3 };
    expect(deploymentRollout(deployment(2, done), 3, false)).toEqual({ complete: true, members: '3/3 pods available', ready: 3 });
    // An old pod still running beside the new ones (maxSurge).
    expect(deploymentRollout(deployment(2, { ...done, replicas: 4 }), 3, false)).toMatchObject({ complete: false, members: '3/3 pods available, 1 old pods leaving' });
    // Not every pod runs the new template yet.
    expect(deploymentRollout(deployment(2, { ...done, updatedReplicas: 2 }), 3, false)).toMatchObject({ complete: false, members: '3/3 pods available, 2/3 updated, 1 old pods leaving' });
    // Ready but not yet available.
    expect(deploymentRollout(deployment(2, { ...done, availableReplicas: 2 }), 3, false).complete).toBe(false);
    // The controller has not seen the spec, or kiln has just written it.
    expect(deploymentRollout(deployment(3, done), 3, false).complete).toBe(false);
    expect(deploymentRollout(deployment(2, done), 3, true).complete).toBe(false);
    expect(deploymentRollout(undefined, 1, false).complete).toBe(false);
  });
  it("fails when the Deployment's own progress deadline passed", () => {
    const stuck = {
      observedGeneration: 2,
      replicas: 4,
      updatedReplicas: 1,
      availableReplicas: 3,
      conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "mc-1" has timed out progressing.' }],
    };
    expect(deploymentRollout(deployment(2, stuck), 3, false)).toMatchObject({ complete: false, failed: 'ReplicaSet "mc-1" has timed out progressing.' });
    expect(deploymentRollout(deployment(2, { ...stuck, conditions: [{ type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated' }] }), 3, false).failed).toBeUndefined();
  });
});

describe('progress deadline', () => {
  const t0 = new Date('2026-12-04T10:00:00Z');
  const at = (s: number) => new Date(t0.getTime() + s * 1000);
  it('counts from the last change of the members, and restarts when they change', () => {
    const first = progressDeadline(undefined, '0/3 members ready', t0, 600);
    expect(first).toEqual({ progress: { members: '0/3 members ready', lastProgressTime: '2026-12-04T10:00:00Z' }, exceeded: false, remainingMs: 600_000, recheckMs: 601_000 });
    const same = progressDeadline(first.progress, '0/3 members ready', at(599), 600);
    expect(same.exceeded).toBe(false);
    expect(same.progress.lastProgressTime).toBe('2026-12-04T10:00:00Z');
    expect(progressDeadline(first.progress, '0/3 members ready', at(600), 600).exceeded).toBe(true);
    // The largest deadline a spec may ask for (int32 seconds) still rechecks within an hour: a timer past
    // 2^31 ms would fire at once and spin the reconcile.
    expect(progressDeadline(undefined, '0/3 members ready', t0, 2 ** 31 - 1).recheckMs).toBe(3_600_000);
    const moved = progressDeadline(first.progress, '1/3 members ready', at(700), 600);
    expect(moved).toMatchObject({ exceeded: false, progress: { lastProgressTime: '2026-12-04T10:11:40Z' } });
  });
});

describe('Job health', () => {
  const job = (status: Record<string, unknown>) => ({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'b-backup' }, status }) as KubeObject;
  it('is ready when the Job succeeded and failed with its message when it failed', () => {
    expect(jobHealth(undefined, 'b-backup')).toMatchObject({ state: 'progressing', result: 'Pending' });
    expect(jobHealth(job({ startTime: '2026-12-04T10:00:00Z' }), 'b-backup')).toMatchObject({ state: 'progressing', result: 'Running' });
    expect(jobHealth(job({ succeeded: 1 }), 'b-backup')).toMatchObject({ state: 'ready', reason: 'JobSucceeded', result: 'Succeeded' });
    expect(jobHealth(job({ failed: 7, conditions: [{ type: 'Failed', status: 'True', message: 'Job has reached the specified backoff limit' }] }), 'b-backup')).toEqual({
      state: 'failed',
      reason: 'JobFailed',
      message: 'Job b-backup failed: Job has reached the specified backoff limit',
      result: 'Failed',
    });
  });
});
