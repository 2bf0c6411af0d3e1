/**
 * Whether what kiln applied actually runs: the StatefulSet's rollout (kstatus's
 * rules for a StatefulSet) and a Job's outcome. Pure functions of the cached
 * objects, so the reconciler's Ready means what `kubectl wait`, Flux and Argo CD
 * take it to mean.
 */
import type { KubeObject } from './informer.js';

export type Health = { state: 'ready'; reason: string; message: string } | { state: 'progressing'; reason: string; message: string } | { state: 'failed'; reason: string; message: string };

interface StatefulSetStatus {
  replicas?: number;
  readyReplicas?: number;
  updatedReplicas?: number;
  observedGeneration?: number;
  currentRevision?: string;
  updateRevision?: string;
}

export interface Rollout {
  complete: boolean;
  /** What the members look like, e.g. "2/3 members ready, 1/3 updated"; any change in it is progress. */
  members: string;
  ready: number;
}

/**
 * A StatefulSet's rollout is complete when its controller has seen the current
 * spec (observedGeneration), it has exactly the wanted members, and every one
 * runs the update revision and is ready (kstatus: replicas, readyReplicas,
 * updatedReplicas, currentRevision = updateRevision). `appliedNow`: kiln has
 * just written the StatefulSet, so the cached copy predates the change.
 */
export function statefulSetRollout(sts: KubeObject | undefined, want: number, appliedNow: boolean, o: { onDelete?: boolean } = {}): Rollout {
  const s = (sts?.status as StatefulSetStatus | undefined) ?? {};
  const ready = s.readyReplicas ?? 0;
  const updated = s.updatedReplicas ?? 0;
  const replicas = s.replicas ?? 0;
  const parts = [`${ready}/${want} members ready`];
  // Members on an older revision: only while the revisions differ (a new StatefulSet's missing
  // members are counted as not ready already).
  // With updateStrategy OnDelete the StatefulSet controller never moves currentRevision (whoever deletes the
  // pods rolls them): every member on the update revision is the whole rollout.
  const revisionsAgree = o.onDelete ? updated >= want : s.currentRevision === s.updateRevision;
  if (!revisionsAgree || (!o.onDelete && s.currentRevision !== s.updateRevision)) parts.push(`${updated}/${want} updated`);
  if (replicas > want) parts.push(`${replicas - want} leaving`);
  const observed = !!sts && !appliedNow && (s.observedGeneration ?? 0) >= (sts.metadata.generation ?? 0);
  if (!observed) parts.push('StatefulSet change not yet observed');
  const complete = observed && replicas === want && ready === want && updated === want && revisionsAgree;
  return { complete, members: parts.join(', '), ready };
}

interface DeploymentStatus {
  replicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  updatedReplicas?: number;
  observedGeneration?: number;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
}

/**
 * A Deployment's rollout (kstatus's rules for a Deployment): complete when its
 * controller has seen the current spec, every wanted pod runs the new template
 * and is available, and no pod of an older one is left. `failed`: the
 * Deployment's own progress deadline passed (its Progressing condition says
 * ProgressDeadlineExceeded).
 */
export function deploymentRollout(deployment: KubeObject | undefined, want: number, appliedNow: boolean): Rollout & { failed?: string } {
  const s = (deployment?.status as DeploymentStatus | undefined) ?? {};
  const available = s.availableReplicas ?? 0;
  const updated = s.updatedReplicas ?? 0;
  const replicas = s.replicas ?? 0;
  const parts = [`${available}/${want} pods available`];
  if (updated < want) parts.push(`${updated}/${want} updated`);
  if (replicas > updated) parts.push(`${replicas - updated} old pods leaving`);
  const observed = !!deployment && !appliedNow && (s.observedGeneration ?? 0) >= (deployment.metadata.generation ?? 0);
  if (!observed) parts.push('Deployment change not yet observed');
  const complete = observed && updated === want && replicas === want && available === want;
  const progressing = s.conditions?.find((c) => c.type === 'Progressing');
  const failed = observed && !complete && progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded' ? (progressing.message ?? 'ProgressDeadlineExceeded') : undefined;
  return { complete, members: parts.join(', '), ready: s.readyReplicas ?? 0, ...(failed ? { failed } : {}) };
}

const MAX_RECHECK_MS = 3_600_000;

export interface RolloutProgress {
  members: string;
  lastProgressTime: string;
}

/**
 * Deployment's progress deadline, for a StatefulSet: the clock restarts
 * whenever the members change, and the rollout is reported stuck when they
 * have not changed for `deadlineSeconds`.
 */
export function progressDeadline(
  previous: RolloutProgress | undefined,
  members: string,
  now: Date,
  deadlineSeconds: number,
): { progress: RolloutProgress; exceeded: boolean; remainingMs: number; recheckMs: number } {
  const since = previous && previous.members === members && !Number.isNaN(Date.parse(previous.lastProgressTime)) ? previous.lastProgressTime : now.toISOString().replace(/\.\d+Z$/, 'Z');
  const remainingMs = Date.parse(since) + deadlineSeconds * 1000 - now.getTime();
  // Looked at again just after the deadline, at most an hour ahead: a spec may ask for up to 2^31 s,
  // and a timer past 2^31 ms fires at once (Node clamps it to 1 ms), which would spin the reconcile.
  const recheckMs = Math.min(Math.max(remainingMs, 0) + 1_000, MAX_RECHECK_MS);
  return { progress: { members, lastProgressTime: since }, exceeded: remainingMs <= 0, remainingMs, recheckMs };
}

interface JobStatus {
  startTime?: string;
  completionTime?: string;
  succeeded?: number;
  conditions?: { type: string; status: string; message?: string }[];
}

/** A Job's outcome: ready when it succeeded, failed (with the Job's message) when it failed. */
export function jobHealth(job: KubeObject | undefined, name: string): Health & { result: 'Pending' | 'Running' | 'Succeeded' | 'Failed' } {
  const s = job?.status as JobStatus | undefined;
  const failed = s?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
  const complete = (s?.succeeded ?? 0) > 0 || !!s?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True');
  if (complete) return { state: 'ready', reason: 'JobSucceeded', message: `Job ${name} succeeded`, result: 'Succeeded' };
  if (failed) return { state: 'failed', reason: 'JobFailed', message: `Job ${name} failed${failed.message ? `: ${failed.message}` : ''}`, result: 'Failed' };
  if (s?.startTime) return { state: 'progressing', reason: 'Progressing', message: `Job ${name} running`, result: 'Running' };
  return { state: 'progressing', reason: 'Progressing', message: `Job ${name} pending`, result: 'Pending' };
}
