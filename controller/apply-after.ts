/**
 * kiln.dev/apply-after (kinds/api.ts APPLY_AFTER_ANNOTATION): a rendered
 * object that waits until another object of the same render reaches a
 * condition, `batch/v1/Job/<name>:Complete`. Apply mode reads the condition
 * from its child caches, git mode from its watch of the waited-for kinds in
 * the cluster (Flux or Argo CD applied them); both with these.
 */
import type { KubeObject } from '../kube/informer.js';

export interface ApplyAfter {
  apiVersion: string;
  kind: string;
  name: string;
  /** The condition type that must be True. */
  condition: string;
}

/** The annotation's value taken apart; undefined when it is not of the form (then nothing waits). */
export function parseApplyAfter(after: string): ApplyAfter | undefined {
  const m = /^(.+)\/([^/]+)\/([^/:]+):(\w+)$/.exec(after);
  return m ? { apiVersion: m[1]!, kind: m[2]!, name: m[3]!, condition: m[4]! } : undefined;
}

/** Whether `obj` has condition `type` True. */
export function conditionHolds(obj: KubeObject | undefined, type: string): boolean {
  const conditions = (obj?.['status'] as { conditions?: unknown } | undefined)?.conditions;
  return Array.isArray(conditions) && conditions.some((c: { type?: unknown; status?: unknown }) => c?.type === type && c.status === 'True');
}

/**
 * What a cache of a waited-for kind keeps: identity and the conditions' type
 * and status, nothing of the spec (a Job's pod template is most of it).
 */
export function conditionsOnly(obj: KubeObject): KubeObject {
  const conditions = (obj['status'] as { conditions?: unknown } | undefined)?.conditions;
  const kept = Array.isArray(conditions) ? conditions.map((c: { type?: unknown; status?: unknown }) => ({ type: c?.type, status: c?.status })) : [];
  const { name, namespace, resourceVersion, uid } = obj.metadata;
  return { apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name, namespace, resourceVersion, uid }, status: { conditions: kept } };
}
