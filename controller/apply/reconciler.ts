/**
 * The apply-mode reconciler: one key (Kind/namespace/name) in, a result out.
 * validate -> render -> server-side apply what changed -> prune members no
 * longer rendered -> status. Reads come from the informers' caches; the API
 * sees a write only when something has to change.
 */
import { MissingInputError, render } from '../../kinds/render.js';
import { contextFromCaches } from '../related-inputs.js';
import { conditionHolds, parseApplyAfter } from '../apply-after.js';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { APPLY_AFTER_ANNOTATION } from '../../kinds/api.js';
import type { CustomEnv, CustomReconciler } from '../../kinds/kind.js';
import { carriedOutBy, kindDefinition, KILN_API_VERSION } from '../../kinds/registry.js';
import { validate, formatErrors } from '../../validate/index.js';
import { applySetId, parentMetadata } from './applyset-labels.js';
import { APP_LABEL, INSTANCE_LABEL } from '../../kinds/shared/labels.js';
import {
  belongsTo,
  childKey,
  decorate,
  describeForeign,
  digest,
  drift,
  FIELD_MANAGER,
  ownedDigest,
  ownedFieldsDrift,
  PART_OF,
  projectedOwnedDigest,
  prunable,
  VERIFY,
  type OwnWrites,
} from './applyset.js';
import type { KubeApi } from '../../kube/client.js';
import { ApiError, isConflict, isNotFound, isPermanent } from '../../kube/errors.js';
import { parseKey, type Reconciler as ReconcilerContract, type Result } from '../../kube/reconcile.js';
import type { EventRecorder } from '../../kube/events.js';
import type { Informer, KubeObject } from '../../kube/informer.js';
import { groupKind } from '../../kube/resources.js';
import { deploymentRollout, jobHealth, progressDeadline, statefulSetRollout, type Health, type Rollout, type RolloutProgress } from '../../kube/rollout.js';
import { fitStatus } from '../status-bounds.js';
import { readyConditions, syncedCondition, StatusWriter, type Condition, type Status } from '../../kube/status.js';

export interface ReconcilerDeps {
  client: KubeApi;
  /** Informers for kiln's kinds, by Kind. */
  resources: Map<string, Informer>;
  /** Informers for the kinds kiln renders, by `apiVersion/Kind`. */
  children: Map<string, Informer>;
  /**
   * Informers of the objects of those kinds NOT labelled as kiln's, names only, by `apiVersion/Kind`:
   * a name in neither cache is free. Without them (or before they sync) every member missing from
   * `children` is read first.
   */
  foreign?: Map<string, Informer>;
  /** Metadata of the pods of kiln's workloads (names and labels), for kinds whose status lists their pods (kinds/kind.ts `pods`). */
  pods?: Informer;
  events: EventRecorder;
  /** What a kind's custom reconciler is started with (kinds/kind.ts). */
  custom: CustomEnv;
  /** What kiln's own applies wrote, shared with the child informers' transform (projectChild). */
  ownWrites: OwnWrites;
  /**
   * Labels of a resource its members carry too (the keys a --watch-label-selector names, or the
   * dynamic shard's): the child caches are selected by them, so a member is seen by the replica
   * whose resource it is.
   */
  copyLabels?: readonly string[];
  /**
   * The child caches hold only this shard's members: a name missing from them may be another
   * shard's object, so it is read before anything is applied to it (never taken for free).
   */
  sharded?: boolean;
  /** The manager's status writer; default: one of this reconciler's own (field manager kiln, cut to the CRDs' bounds). */
  status?: StatusWriter;
  version: string;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

export interface ReconcileResult extends Result {
  applied: number;
  pruned: number;
  statusWritten: boolean;
}

const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600;
const CONFLICT_RECHECK_MS = 60_000;
const MISSING_INPUT_RECHECK_MS = 60_000;

/** `obj` with a UID precondition: the server applies it only to the object with that UID. */
const withUid = (obj: K8sObject, uid: string | undefined): K8sObject => (uid ? { ...obj, metadata: { ...obj.metadata, uid } } : obj);

/** The API server's answer to an apply whose UID precondition failed: 409 (object gone) or 422 (metadata.uid differs). */
const uidPreconditionFailed = (err: unknown) => err instanceof ApiError && (err.status === 409 || err.status === 422) && /\buid\b/.test(err.detail ?? err.message);

interface InventoryEntry {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  ownedFieldsDigest?: string;
}

export { parseKey };

export class Reconciler implements ReconcilerContract<string, ReconcileResult> {
  /**
   * key -> what the last complete reconcile saw and left: the resource's
   * resourceVersion and its members' resourceVersions. A reconcile whose inputs
   * are all unchanged would render, compare and write exactly as before (that
   * is, nothing), so it stops there. Nothing else is kept per resource.
   */
  private readonly done = new Map<string, string[]>();
  /** Kind -> its custom reconciler, started on first use. */
  private readonly custom = new Map<string, Promise<CustomReconciler>>();

  private readonly status: StatusWriter;

  constructor(private readonly deps: ReconcilerDeps) {
    this.status = deps.status ?? new StatusWriter(deps.client, FIELD_MANAGER, { fit: fitStatus });
  }

  /** Whether anything is kept for `key` (tests: nothing is, once the resource is deleted). */
  remembers(key: string): boolean {
    const { kind, namespace, name } = parseKey(key);
    return this.done.has(key) || this.status.remembers({ kind, metadata: { namespace, name } });
  }

  /** The members' resourceVersions in the cache now, by `apiVersion/Kind/namespace/name`. */
  private memberVersions(id: string): Map<string, string | undefined> {
    const members = new Map<string, string | undefined>();
    for (const [gvk, informer] of this.deps.children) {
      for (const m of informer.withLabel(PART_OF, id)) members.set(`${gvk}/${m.metadata.namespace}/${m.metadata.name}`, m.metadata.resourceVersion);
    }
    return members;
  }

  /** The inputs of a reconcile: the resource's version, what it reads of other kiln resources (a digest) and its members (key@resourceVersion). */
  private fingerprint(resourceVersion: string | undefined, related: string, members: Map<string, string | undefined>, override?: Map<string, string>): string {
    const all = new Map(members);
    for (const [k, rv] of override ?? []) all.set(k, rv);
    return digest([resourceVersion, related, [...all].map(([k, rv]) => `${k}@${rv}`).sort()]);
  }

  /** A child from its informer's cache; `T` names the fields the caller reads (the cache holds what the server sent). */
  private child<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string): T | undefined {
    return this.deps.children.get(`${apiVersion}/${kind}`)?.get(namespace, name) as T | undefined;
  }

  /**
   * Whether no object holds `obj`'s name: in neither the cache of kiln's objects nor that of
   * everyone else's, and not one kiln wrote whose watch event has yet to come. An object someone
   * else creates in the moment before the apply is not seen: the same window as between a GET and
   * the apply it decides, wider by the watch's lag (milliseconds when the API server keeps up).
   */
  private isFree(obj: K8sObject): boolean {
    if (this.deps.sharded) return false;
    const others = this.deps.foreign?.get(`${obj.apiVersion}/${obj.kind}`);
    if (!others?.hasSynced() || others.get(obj.metadata.namespace, obj.metadata.name)) return false;
    return !this.deps.ownWrites.has(childKey(obj));
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { kind, namespace, name } = parseKey(key);
    const live = this.deps.resources.get(kind)?.get(namespace, name) as (KubeObject & KilnResource) | undefined;
    const result: ReconcileResult = { applied: 0, pruned: 0, statusWritten: false };
    if (!live) {
      // Deleted: its children go by garbage collection, and nothing is kept of it here.
      this.done.delete(key);
      this.status.forget({ kind, metadata: { namespace, name } });
      void this.custom.get(kind)?.then(
        (r) => r.forget?.(key),
        () => undefined,
      );
      return result;
    }
    const by = carriedOutBy(kind);
    if (by.by === 'custom') return this.reconcileCustom(kind, () => by.load(), live, result);
    if (live.metadata.deletionTimestamp) {
      this.done.delete(key);
      return result;
    }
    const generation = live.metadata.generation;
    const id = applySetId(live);
    // The members as this reconcile sees them: what it leaves is recorded against these versions,
    // so a member that changes while it runs makes the next run do the work again.
    const members = this.memberVersions(id);
    // What the render reads of other kiln resources (a CacheCluster, its DataGrids): a change there
    // is a change of this reconcile's inputs.
    const context = contextFromCaches(live, this.deps.resources);
    // A kind whose status lists its pods has what it lists among its inputs too.
    const related = digest([context, this.podStatus(live) ?? null]);
    const memo = this.done.get(key);
    if (memo !== undefined) {
      if (memo.includes(this.fingerprint(live.metadata.resourceVersion, related, members))) return result;
      this.done.delete(key);
    }

    const v = validate({ apiVersion: live.apiVersion, kind: live.kind, metadata: live.metadata, spec: live.spec });
    if (!v.ok) {
      // Nothing is applied or pruned for an invalid resource; what exists stays.
      await this.writeStatus(live, { conditions: stalled('InvalidSpec', formatErrors(v.errors), generation) }, result);
      // Events mark transitions: one when the resource becomes stalled, none on every resync.
      if (result.statusWritten) this.deps.events.warning(live, 'InvalidSpec', formatErrors(v.errors));
      return result;
    }

    let rendered: K8sObject[];
    try {
      rendered = render(v.resource, context);
    } catch (err) {
      if (err instanceof MissingInputError) {
        // What it names may come later (a DataGrid's template): the kind's `reads` queue it again
        // when it does; the recheck is only a backstop. What exists stays.
        await this.writeStatus(live, { conditions: waitingFor(err.detail, generation) }, result);
        return { ...result, requeueAfterMs: MISSING_INPUT_RECHECK_MS };
      }
      const message = err instanceof Error ? err.message : String(err);
      await this.writeStatus(live, { conditions: stalled('RenderFailed', message, generation) }, result);
      if (result.statusWritten) this.deps.events.warning(live, 'RenderFailed', message);
      return result;
    }

    // The parent's ApplySet metadata goes out with the members' applies, not a round trip before
    // them: kiln finds its members by label, and a failed patch fails (and retries) the reconcile.
    const parentPatch = this.ensureParentMetadata(live, id, rendered);
    parentPatch.catch(() => undefined);
    const copied: Record<string, string> = {};
    for (const k of this.deps.copyLabels ?? []) if (live.metadata.labels?.[k] !== undefined) copied[k] = live.metadata.labels[k];
    const desired = rendered.map((o) => decorate(o, live, id, copied));

    // The kind's check of what its render reads (a backup copies only a claim that belongs to what it
    // names): nothing is applied before it passes.
    const check = (await kindDefinition(kind)?.preApply?.(live, desired, this.deps)) ?? { ok: true };
    if (!check.ok) {
      if ('foreign' in check) {
        await this.writeStatus(live, { conditions: stalled('ForeignClaim', check.foreign, generation) }, result);
        if (result.statusWritten) this.deps.events.warning(live, 'ForeignClaim', check.foreign);
        return { ...result, requeueAfterMs: CONFLICT_RECHECK_MS };
      }
      await this.writeStatus(live, { conditions: waitingFor(check.waiting, generation) }, result);
      return { ...result, requeueAfterMs: 5_000 };
    }

    // The owned-fields digests the status recorded for each member (see drift()).
    const recorded = new Map<string, string>();
    // kiln's own last status write while the cache has yet to bring it: a reconcile the members' watch
    // events start in that moment would otherwise find no digests and read every member again.
    const knownStatus = this.status.current(live);
    for (const e of (knownStatus as { inventory?: InventoryEntry[] } | undefined)?.inventory ?? []) {
      if (e.ownedFieldsDigest) recorded.set(childKey({ apiVersion: e.apiVersion, kind: e.kind, metadata: { namespace: e.namespace, name: e.name } }), e.ownedFieldsDigest);
    }
    // What this reconcile will record: digests of members found or made in sync.
    const owned = new Map<string, string | undefined>();

    // Apply what changed, all at once: one resource's objects do not depend on
    // each other's creation. A VolumeSnapshot that must wait for a Job waits.
    const waiting: string[] = [];
    const failures: string[] = [];
    const toApply: K8sObject[] = [];
    const reasons = new Map<K8sObject, string>();
    const toVerify: K8sObject[] = [];
    // Objects with a child's name that are not this resource's: nothing is applied while one exists.
    const conflicts: string[] = [];
    // childKey -> the UID the apply must find there (a UID precondition: an object deleted and
    // re-created by someone else since kiln looked is not written).
    const uids = new Map<string, string>();
    const applyFor = (obj: K8sObject, why: string) => {
      toApply.push(obj);
      reasons.set(obj, why);
    };
    for (const obj of desired) {
      const after = obj.metadata.annotations?.[APPLY_AFTER_ANNOTATION];
      if (after && !this.dependencyMet(after, obj.metadata.namespace)) {
        waiting.push(`${obj.kind}/${obj.metadata.name} waits for ${after}`);
        continue;
      }
      const current = this.child(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
      // The cache holds only objects labelled as kiln's: one missing from it may still exist.
      if (!current) {
        if (this.isFree(obj)) applyFor(obj, 'absent');
        else toVerify.push(obj);
        continue;
      }
      if (!belongsTo(current, live, id)) {
        conflicts.push(describeForeign(current));
        continue;
      }
      if (current.metadata.uid) uids.set(childKey(obj), current.metadata.uid);
      const why = drift(current, obj, recorded.get(childKey(obj)));
      if (why === VERIFY) toVerify.push(obj);
      else if (why === undefined) owned.set(childKey(obj), projectedOwnedDigest(current));
      else applyFor(obj, why);
    }
    // Members whose owned fields kiln has no record of (after a restart of a kiln that kept none,
    // or a change by another writer), and objects the cache does not hold: read them, check they
    // are this resource's, and compare field by field.
    await Promise.all(
      toVerify.map(async (obj) => {
        let why: string | undefined;
        try {
          const full = await this.deps.client.get<KubeObject>({ apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name });
          if (!belongsTo(full, live, id)) {
            conflicts.push(describeForeign({ ...full, kind: obj.kind }));
            return;
          }
          if (full.metadata.uid) uids.set(childKey(obj), full.metadata.uid);
          why = ownedFieldsDrift(full, obj);
          if (why === undefined) owned.set(childKey(obj), ownedDigest(full));
        } catch (err) {
          if (!isNotFound(err)) throw err;
          why = 'absent';
        }
        if (why !== undefined) applyFor(obj, why);
      }),
    );
    if (conflicts.length > 0) {
      const message = `refusing to take over objects kiln does not own: ${conflicts.sort().join('; ')}; delete or rename them, or give this resource another name`;
      await this.writeStatus(live, { conditions: stalled('ConflictingObject', message, generation) }, result);
      if (result.statusWritten) this.deps.events.warning(live, 'ConflictingObject', message);
      // The cache does not see an unlabelled object go away: look again now and then.
      return { ...result, requeueAfterMs: CONFLICT_RECHECK_MS };
    }
    for (const obj of toApply)
      this.deps.log('info', 'applying', { resource: `${live.kind}/${live.metadata.namespace}/${live.metadata.name}`, object: `${obj.kind}/${obj.metadata.name}`, why: reasons.get(obj) });
    const outcomes = await Promise.allSettled(toApply.map((obj) => this.deps.client.apply<KubeObject>(withUid(obj, uids.get(childKey(obj))), FIELD_MANAGER)));
    let transient: Error | undefined;
    const written = new Map<string, string>();
    outcomes.forEach((o, i) => {
      if (o.status === 'fulfilled') {
        result.applied++;
        const obj = toApply[i]!;
        const cached = this.child(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
        owned.set(childKey(obj), this.deps.ownWrites.record(o.value, obj, cached?.metadata.resourceVersion));
        if (o.value.metadata?.resourceVersion) written.set(childKey(obj), o.value.metadata.resourceVersion);
      }
      // The object went or was replaced since kiln read it: the next try reads it again.
      else if (uidPreconditionFailed(o.reason)) transient ??= o.reason as Error;
      else if (isPermanent(o.reason)) failures.push(`${toApply[i]!.kind}/${toApply[i]!.metadata.name}: ${(o.reason as Error).message}`);
      else transient ??= o.reason as Error;
    });
    const patchedVersion = await parentPatch;
    let parentVersion = patchedVersion ?? live.metadata.resourceVersion;
    if (transient) throw transient; // the queue retries with backoff
    if (failures.length > 0) {
      const message = `apply failed: ${failures.join('; ')}`;
      await this.writeStatus(live, { conditions: stalled('ApplyFailed', message, generation) }, result);
      if (result.statusWritten || result.applied > 0) this.deps.events.warning(live, 'ApplyFailed', message);
      return result;
    }
    if (result.applied > 0) this.deps.events.normal(live, 'Applied', `applied ${result.applied} of ${desired.length} objects`);

    // Prune members no longer rendered (never after a failure: we returned above).
    const wanted = new Set(desired.map((o) => `${o.apiVersion}/${o.kind}/${o.metadata.namespace}/${o.metadata.name}`));
    const prunedNames: string[] = [];
    for (const [gvk, informer] of this.deps.children) {
      for (const member of informer.withLabel(PART_OF, id)) {
        if (wanted.has(`${gvk}/${member.metadata.namespace}/${member.metadata.name}`)) continue;
        if (waiting.some((w) => w.startsWith(`${member.kind}/${member.metadata.name} `))) continue;
        if (!prunable(member, live.metadata.uid)) continue;
        try {
          await this.deps.client.delete({ apiVersion: member.apiVersion!, kind: member.kind!, namespace: member.metadata.namespace, name: member.metadata.name }, member.metadata.uid);
          result.pruned++;
          prunedNames.push(`${member.kind}/${member.metadata.name}`);
        } catch (err) {
          if (!isNotFound(err) && !isConflict(err)) throw err;
        }
      }
    }
    if (prunedNames.length > 0) this.deps.events.normal(live, 'Pruned', `pruned ${prunedNames.join(', ')}`);

    const synced =
      waiting.length === 0 ? syncedCondition(true, 'Applied', `${desired.length} objects applied and in sync`, generation) : syncedCondition(false, 'Waiting', waiting.join('; '), generation);
    const appliedNow = new Set(toApply.map((o) => childKey(o)));
    const health = this.health(live, desired, appliedNow);
    // Ready only when everything is applied AND running; a failure wins over waiting.
    const outcome: Health = health.health.state !== 'ready' ? health.health : waiting.length > 0 ? { state: 'progressing', reason: 'Progressing', message: waiting.join('; ') } : health.health;
    const status: Status = {
      conditions: [
        ...readyConditions(outcome.state === 'ready' ? { kind: 'ready', ...outcome } : outcome.state === 'failed' ? { kind: 'stalled', ...outcome } : { kind: 'reconciling', ...outcome }, generation),
        synced,
      ],
      inventory: desired.map((o): InventoryEntry => {
        const fields = owned.get(childKey(o));
        return { apiVersion: o.apiVersion, kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name, ...(fields ? { ownedFieldsDigest: fields } : {}) };
      }),
      revision: `sha256:${digest(desired)}`,
      ...health.status,
    };
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- not unnecessary: without it tsc types `.conditions` as unknown (KubeObject's index signature)
    const liveStatus = knownStatus as Status | undefined;
    const wasStalled = liveStatus?.conditions?.some((c) => c.type === 'Stalled' && c.status === 'True' && c.reason === outcome.reason);
    await this.writeStatus(live, status, result, (rv) => (parentVersion = rv), patchedVersion);
    if (outcome.state === 'failed' && !wasStalled && result.statusWritten) this.deps.events.warning(live, outcome.reason, outcome.message);
    // A resource still rolling out is looked at again when its deadline passes, even if nothing changes.
    if (waiting.length === 0 && prunedNames.length === 0 && outcome.state !== 'progressing') {
      // Members as the API server left them after this reconcile's applies (the watch may lag).
      // The resource's versions before this reconcile's writes and after its metadata patch count
      // too: the watch events of the resource and of its members come on different streams, so a
      // member's event may arrive while the cache still holds an older version of the resource.
      const versions = [...new Set([parentVersion, patchedVersion, live.metadata.resourceVersion].filter((v): v is string => v !== undefined))];
      this.done.set(
        key,
        versions.map((rv) => this.fingerprint(rv, related, members, written)),
      );
    }
    const requeueAfterMs = waiting.length > 0 ? 5_000 : health.recheckMs;
    return { ...result, requeueAfterMs };
  }

  private dependencyMet(after: string, namespace: string | undefined): boolean {
    const dep = parseApplyAfter(after);
    if (!dep) return true;
    return conditionHolds(this.child(dep.apiVersion, dep.kind, namespace, dep.name), dep.condition);
  }

  /**
   * Whether the applied objects run, as the kind says (kinds/kind.ts ReadyWhen):
   * the StatefulSet's rollout for kinds with members (and the scale
   * subresource's fields), the Job's outcome for kinds that run one; other
   * kinds are ready once applied.
   */
  private health(live: KilnResource, desired: K8sObject[], appliedNow: Set<string>): { health: Health; status: Record<string, unknown>; recheckMs?: number } {
    const ready = kindDefinition(live.kind)?.ready ?? 'applied';
    if (ready === 'members') {
      const workload = desired.find((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment');
      if (workload) return this.rolloutHealth(live, workload, appliedNow.has(childKey(workload)));
    }
    if (ready === 'job') {
      const job = desired.find((o) => o.kind === 'Job');
      if (job) {
        const current = this.child<KubeObject & { status?: { startTime?: string; completionTime?: string } }>('batch/v1', 'Job', job.metadata.namespace, job.metadata.name);
        const { result, ...health } = jobHealth(current, job.metadata.name);
        const s = current?.status;
        return { health, status: { result, ...(s?.startTime ? { startTime: s.startTime } : {}), ...(s?.completionTime ? { completionTime: s.completionTime } : {}) } };
      }
    }
    return { health: { state: 'ready', reason: 'Applied', message: `${desired.length} objects applied and in sync` }, status: {} };
  }

  /** The rollout of its StatefulSet or Deployment `workload`. */
  private rolloutHealth(live: KilnResource, workload: K8sObject, appliedNow: boolean): { health: Health; status: Record<string, unknown>; recheckMs?: number } {
    const current = this.child<KubeObject & { status?: { replicas?: number; readyReplicas?: number } }>('apps/v1', workload.kind, workload.metadata.namespace, workload.metadata.name);
    const want = kindDefinition(live.kind)?.members?.(live.spec) ?? (workload as { spec?: { replicas?: number } }).spec?.replicas ?? 1;
    const rollout: Rollout & { failed?: string } =
      workload.kind === 'Deployment'
        ? deploymentRollout(current, want, appliedNow)
        : statefulSetRollout(current, want, appliedNow, { onDelete: (workload as { spec?: { updateStrategy?: { type?: string } } }).spec?.updateStrategy?.type === 'OnDelete' });
    const selector = (workload as { spec?: { selector?: { matchLabels?: Record<string, string> } } }).spec?.selector?.matchLabels ?? {};
    const generation = live.metadata.generation;
    const available: Condition = {
      type: 'Available',
      status: rollout.ready >= want ? 'True' : 'False',
      reason: rollout.ready >= want ? 'MembersReady' : 'MembersNotReady',
      message: `${rollout.ready}/${want} members ready`,
      observedGeneration: generation,
    };
    const status: Record<string, unknown> = {
      replicas: current?.status?.replicas ?? 0,
      readyReplicas: rollout.ready,
      selector: Object.keys(selector)
        .sort()
        .map((k) => `${k}=${selector[k]}`)
        .join(','),
      extraConditions: [available],
    };
    const pods = this.podStatus(live);
    if (pods) Object.assign(status, pods);
    if (rollout.complete) return { health: { state: 'ready', reason: 'RolloutComplete', message: rollout.members }, status };
    if (rollout.failed) return { health: { state: 'failed', reason: 'ProgressDeadlineExceeded', message: `${rollout.failed}: ${rollout.members}` }, status };
    const deadline = (live.spec as { progressDeadlineSeconds?: number }).progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS;
    const previous = (this.status.current(live) as { rollout?: RolloutProgress } | undefined)?.rollout;
    const p = progressDeadline(previous, rollout.members, new Date(), deadline);
    status['rollout'] = p.progress;
    if (p.exceeded) {
      return { health: { state: 'failed', reason: 'ProgressDeadlineExceeded', message: `no progress for ${deadline}s: ${rollout.members}` }, status };
    }
    // Look again just after the deadline: a stuck rollout sends no more events.
    return { health: { state: 'progressing', reason: 'Progressing', message: rollout.members }, status, recheckMs: p.recheckMs };
  }

  /** What the kind puts in its status from its pods (kinds/kind.ts `pods`). */
  private podStatus(live: KilnResource): Record<string, unknown> | undefined {
    const definition = kindDefinition(live.kind)?.pods;
    return definition && this.deps.pods ? definition.status(this.podsOf(live)) : undefined;
  }

  /** Its pods in the cache: those its workload's selector (app and instance labels, kinds/shared/labels.ts) selects. */
  private podsOf(live: KilnResource): KubeObject[] {
    const app = kindDefinition(live.kind)?.pods?.app;
    if (!app || !this.deps.pods) return [];
    return this.deps.pods.list(live.metadata.namespace).filter((p) => p.metadata.labels?.[APP_LABEL] === app && p.metadata.labels?.[INSTANCE_LABEL] === live.metadata.name);
  }

  /** The parent carries the ApplySet id and the group-kinds it may contain; written only when they change. */
  /** Returns the resource's new resourceVersion when it wrote. */
  private async ensureParentMetadata(live: KubeObject & KilnResource, id: string, rendered: K8sObject[]): Promise<string | undefined> {
    const metadata = parentMetadata(live, id, [...new Set(rendered.map((o) => groupKind(o.apiVersion, o.kind)))], `kiln/${this.deps.version}`);
    if (!metadata) return undefined;
    const patched = await this.deps.client.mergePatch<KubeObject>({ apiVersion: KILN_API_VERSION, kind: live.kind, namespace: live.metadata.namespace, name: live.metadata.name }, { metadata });
    // As for the status write: a version of a newer generation is not one this reconcile saw.
    return patched.metadata?.generation === live.metadata.generation ? patched.metadata?.resourceVersion : undefined;
  }

  /** `supersedes`: the resource's version after this reconcile's own metadata patch (it holds the status before this write). */
  private async writeStatus(
    live: KubeObject & KilnResource,
    next: Status & { extraConditions?: Condition[] },
    result: ReconcileResult,
    onVersion?: (rv: string) => void,
    supersedes?: string,
  ): Promise<void> {
    const { extraConditions, ...rest } = next;
    const status = { ...rest, conditions: [...(rest.conditions ?? []), ...(extraConditions ?? [])] };
    // A write that landed on a newer generation (the user changed the spec while this reconcile
    // ran; neither write has a precondition) returns that generation's version: remembering it as
    // reconciled would skip the change for good. Only a version of the generation rendered counts.
    const w = await this.status.write({ ...live, apiVersion: KILN_API_VERSION }, status, { supersedes: [supersedes] });
    if (!w.written) return;
    result.statusWritten = true;
    if (w.resourceVersion && w.generation === live.metadata.generation) onVersion?.(w.resourceVersion);
  }

  /** Stops the custom reconcilers (their watches); the next reconcile of such a kind starts a fresh one. */
  stopCustom(): void {
    for (const r of this.custom.values()) {
      void r.then(
        (x) => x.stop?.(),
        () => undefined,
      );
    }
    this.custom.clear();
  }

  /** A kind with its own reconciler (kinds/kind.ts CarriedOutBy 'custom'): it acts and reports, this writes its status. */
  private async reconcileCustom(kind: string, load: () => Promise<(env: CustomEnv) => CustomReconciler>, live: KubeObject & KilnResource, result: ReconcileResult): Promise<ReconcileResult> {
    let reconciler = this.custom.get(kind);
    if (!reconciler) {
      reconciler = load().then((start) => start(this.deps.custom));
      // A failed load is tried again by the next reconcile, not remembered.
      reconciler.catch(() => this.custom.delete(kind));
      this.custom.set(kind, reconciler);
    }
    await (
      await reconciler
    ).reconcile(live, {
      events: this.deps.events,
      writeStatus: async (status) => {
        await this.writeStatus(live, status, result);
        return result.statusWritten;
      },
    });
    return result;
  }
}

/** Waiting for something it needs before anything is applied: reconciling, not in sync. */
function waitingFor(message: string, generation: number | undefined): Condition[] {
  return [...readyConditions({ kind: 'reconciling', reason: 'Waiting', message }, generation), syncedCondition(false, 'Waiting', message, generation)];
}

/** Stalled before anything could be applied: neither ready nor in sync. */
function stalled(reason: string, message: string, generation: number | undefined): Condition[] {
  return [...readyConditions({ kind: 'stalled', reason, message }, generation), syncedCondition(false, reason, message, generation)];
}
