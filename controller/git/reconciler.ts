/**
 * The git-mode reconciler: one key (Kind/namespace/name) in, a result out,
 * like the apply-mode Reconciler. validate -> render -> hand the objects to
 * the batcher (gitops/batcher.ts) -> once the batch is pushed, status.
 *
 * A reconcile never waits for the batch: it hands the change over and
 * returns, so a worker is free for the next resource and a burst of changes
 * lands in one commit. When the batch is flushed, the outcome is recorded
 * against the revision (digest of the rendered objects) it carried and the key
 * is queued again; that reconcile writes the status:
 *
 * - pushed: Ready=True, reason Committed, status.commit (the pushed commit
 *   holding the content), status.revision, observedGeneration; with `--flux`
 *   (controller/git/flux.ts) Ready waits for Flux: Reconciling WaitingForFlux
 *   until the Kustomization applied a commit holding it and is Ready (reason
 *   Applied), Stalled FluxFailed with Flux's message when it could not;
 * - invalid: Stalled, reason InvalidSpec, naming the field (nothing committed;
 *   what the repository holds stays);
 * - a Secret carrying data in the render: Stalled, reason SecretInRender
 *   (nothing committed; secret values never go to Git);
 * - a kind git mode cannot carry out (kinds/registry.ts notInGitMode):
 *   Stalled, reason NotSupportedInGitMode, with the kind's reason;
 * - commit or push failed: Stalled, reason PushFailed, with the writer's
 *   message (credentials scrubbed); retried with backoff, Ready once pushed;
 * - an object that waits for another's condition (kiln.dev/apply-after: a
 *   restore's VolumeSnapshot waits for its Job to complete) is left out of the
 *   commit until the condition holds in the cluster, where Flux applied the
 *   other: the rest is committed, and the resource is Reconciling, reason
 *   Waiting, saying what waits. The manager watches the waited-for kind
 *   (kiln-labelled, conditions only) and queues the resource when it changes;
 *   the object is then committed. Once in the tree it stays, whatever becomes
 *   of the Job later (left out again, Flux would prune the snapshot): it is
 *   kept when this process let it in, or when the tree kiln committed already
 *   holds it (after a restart: the repository is the record).
 *
 * A resync of an unchanged resource finds the recorded outcome for its
 * revision: no commit, and no status write (status.ts compares first). After a
 * restart nothing is recorded: the change goes through the batcher, which
 * makes no commit for an unchanged tree, and the commit the status already
 * names is kept. A deleted resource (or one being deleted) is removed from the
 * tree.
 */
import { MissingInputError, render as renderChart, SecretInRenderError } from '../../kinds/render.js';
import type { K8sObject, KilnResource, RenderContext } from '../../kinds/types.js';
import { contextFromCaches } from '../related-inputs.js';
import { APPLY_AFTER_ANNOTATION } from '../../kinds/api.js';
import { conditionHolds, parseApplyAfter } from '../apply-after.js';
import { kindDefinition, KILN_API_VERSION } from '../../kinds/registry.js';
import type { ResourceResult } from '../../gitops/batcher.js';
import type { Refusal, ResourceRef } from '../../gitops/layout.js';
import { secretProblem } from '../../gitops/layout.js';
import type { Log } from '../../lib/log.js';
import { formatErrors, validate } from '../../validate/index.js';
import { digest, FIELD_MANAGER } from '../apply/applyset.js';
import type { KubeApi } from '../../kube/client.js';
import type { EventRecorder } from '../../kube/events.js';
import type { GitSink } from './sink.js';
import type { FluxFollower } from './flux.js';
import type { Informer, KubeObject } from '../../kube/informer.js';
import type { ReconcileResult } from '../apply/reconciler.js';
import { parseKey, type Reconciler } from '../../kube/reconcile.js';
import { fitStatus } from '../status-bounds.js';
import { readyConditions, StatusWriter, type Condition, type Status } from '../../kube/status.js';

export interface GitReconcilerDeps {
  client: KubeApi;
  /** Informers for kiln's kinds, by Kind. */
  resources: Map<string, Informer>;
  sink: GitSink;
  events: EventRecorder;
  /** Queue a key again (after `afterMs`, or now). */
  requeue: (key: string, afterMs?: number) => void;
  log: Log;
  render?: (resource: KilnResource, context: RenderContext) => K8sObject[];
  /** The manager's status writer; default: one of this reconciler's own. */
  status?: StatusWriter;
  /** Backoff before a failed commit or push is tried again (default 1 s doubling to 60 s). */
  failureBackoffMs?: { base: number; max: number };
  /** `--flux`: Ready waits for the Flux Kustomization to apply the commit (and its health checks to pass). */
  flux?: Pick<FluxFollower, 'verdict' | 'display'>;
  /**
   * The cluster's objects of the kinds rendered objects wait for (kinds/kind.ts waitsFor), by
   * `apiVersion/Kind`: what Flux applied. Without one, a waiting object waits.
   */
  waited?: Map<string, Informer>;
  /** While something waits, the resource is reconciled again after this long even without a watch event (default 10 s). */
  waitingRecheckMs?: number;
  /**
   * Labels of a resource every object committed for it carries too (the keys --watch-label-selector
   * names): the shard's watch of the objects Flux applied (waited Jobs) is selected by them.
   */
  copyLabels?: readonly string[];
}

export interface GitReconcileResult extends ReconcileResult {
  /** The change was handed to the batcher (status follows when it is pushed). */
  queued: boolean;
}

/** What the last batch carrying a resource's revision did with it. */
interface Outcome {
  revision: string;
  state: ResourceResult['state'];
  /** committed: the commit holding the content. */
  commit?: string;
  reason?: string;
  /** refused: why, as the layout says it. */
  refusal?: Refusal;
  /** failed: consecutive failures, and when to try again. */
  failures: number;
  retryAt?: number;
  /** committed: the batch changed the resource's files (an event is recorded once). */
  changed?: boolean;
  announced?: boolean;
  /** committed, after kiln replaced a link the repository held where this resource's files go. */
  warning?: string;
  /**
   * committed, review mode: the pull request open when the commit was pushed. Kept per resource:
   * after a merge the sink's next pull request does not carry this commit.
   */
  pullRequest?: string;
}

type Live = KubeObject & KilnResource & { status?: Status };

export class GitReconciler implements Reconciler<string, GitReconcileResult> {
  private readonly outcomes = new Map<string, Outcome>();
  private readonly status: StatusWriter;
  /** Changes handed to the batcher and not flushed yet: key -> revision. */
  private readonly inflight = new Map<string, { revision: string; token: symbol }>();
  private readonly render: (resource: KilnResource, context: RenderContext) => K8sObject[];
  private readonly backoff: { base: number; max: number };
  /** Objects that waited and were let into the tree (key -> the resource's UID and `apiVersion/Kind/name`s): they stay in it. */
  private readonly released = new Map<string, { uid: string | undefined; ids: Set<string> }>();
  /** Waited-for objects (`apiVersion/Kind/namespace/name`) -> the keys waiting for them, and back. */
  private readonly waiters = new Map<string, Set<string>>();
  private readonly waitingOn = new Map<string, Set<string>>();

  constructor(private readonly deps: GitReconcilerDeps) {
    this.render = deps.render ?? ((r, c) => renderChart(r, c));
    this.backoff = deps.failureBackoffMs ?? { base: 1000, max: 60_000 };
    this.status = deps.status ?? new StatusWriter(deps.client, FIELD_MANAGER, { fit: fitStatus });
  }

  async reconcile(key: string): Promise<GitReconcileResult> {
    const { kind, namespace, name } = parseKey(key);
    const live = this.deps.resources.get(kind)?.get(namespace, name) as Live | undefined;
    const result: GitReconcileResult = { applied: 0, pruned: 0, statusWritten: false, queued: false };
    if (!live || live.metadata.deletionTimestamp) {
      this.status.forget({ kind, metadata: { namespace, name } });
      this.remove(key, { kind, namespace, name, generation: live?.metadata.generation });
      return { ...result, queued: true };
    }
    const generation = live.metadata.generation;
    const carried = this.delivered(live);

    const unsupported = kindDefinition(kind)?.notInGitMode;
    if (unsupported) {
      await this.writeStatus(live, { ...carried, conditions: readyConditions({ kind: 'stalled', reason: 'NotSupportedInGitMode', message: unsupported }, generation) }, result);
      if (result.statusWritten) this.deps.events.warning(live, 'NotSupportedInGitMode', unsupported);
      return result;
    }

    const v = validate({ apiVersion: live.apiVersion, kind: live.kind, metadata: live.metadata, spec: live.spec });
    if (!v.ok) return this.stalled(live, carried, 'InvalidSpec', formatErrors(v.errors), result);

    let objects: K8sObject[];
    try {
      objects = this.render(v.resource, contextFromCaches(v.resource, this.deps.resources));
    } catch (err) {
      if (err instanceof MissingInputError) {
        // As in apply mode: what it names may come later, and its `reads` queue it then; nothing is
        // committed meanwhile (what the repository holds stays).
        await this.writeStatus(live, { ...carried, conditions: readyConditions({ kind: 'reconciling', reason: 'Waiting', message: err.detail }, generation) }, result);
        return { ...result, requeueAfterMs: 60_000 };
      }
      const message = err instanceof Error ? err.message : String(err);
      return this.stalled(live, carried, err instanceof SecretInRenderError ? 'SecretInRender' : 'RenderFailed', message, result);
    }
    const secret = secretProblem(objects);
    if (secret) return this.stalled(live, carried, 'SecretInRender', secret, result);
    const copied = Object.fromEntries((this.deps.copyLabels ?? []).flatMap((k) => (live.metadata.labels?.[k] !== undefined ? [[k, live.metadata.labels[k]]] : [])));
    if (Object.keys(copied).length > 0) objects = objects.map((o) => ({ ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...copied } } }));
    const held = this.holdBack(key, live.metadata.uid, { kind, namespace, name }, objects);
    objects = held.objects;

    const revision = `sha256:${digest(objects)}`;
    const outcome = this.outcomes.get(key);
    if (outcome?.revision === revision) {
      if (outcome.state === 'committed') {
        const committed = `${objects.length} objects committed to ${this.deps.sink.pushBranch} in ${outcome.commit!.slice(0, 12)}${outcome.warning ? `; ${outcome.warning}` : ''}`;
        const verdict = this.deps.flux ? await this.deps.flux.verdict(outcome.commit!, (a, b) => this.deps.sink.isAncestor(a, b)) : undefined;
        const condition =
          verdict === undefined
            ? ({ kind: 'ready', reason: 'Committed', message: committed } as const)
            : verdict.state === 'applied'
              ? ({ kind: 'ready', reason: 'Applied', message: `${committed}; applied by Flux Kustomization ${this.deps.flux!.display} at ${verdict.sha.slice(0, 12)}` } as const)
              : verdict.state === 'failed'
                ? ({ kind: 'stalled', reason: 'FluxFailed', message: `${committed}; ${verdict.message}` } as const)
                : ({ kind: 'reconciling', reason: 'WaitingForFlux', message: `${committed}; ${verdict.message}` } as const);
        // Not Ready while part of the render is not committed yet.
        const shown =
          held.waiting.length === 0 || condition.kind === 'stalled'
            ? condition
            : ({
                kind: 'reconciling',
                reason: condition.kind === 'ready' ? 'Waiting' : condition.reason,
                message: `${condition.message}; ${held.waiting.join('; ')}: committed once that holds`,
              } as const);
        await this.writeStatus(
          live,
          {
            conditions: readyConditions(shown, generation),
            commit: outcome.commit,
            revision,
            ...(outcome.pullRequest ? { pullRequest: outcome.pullRequest } : {}),
          },
          result,
        );
        if (result.statusWritten && outcome.changed && !outcome.announced) {
          outcome.announced = true;
          this.deps.events.normal(live, 'Committed', `${objects.length} objects committed to ${this.deps.sink.pushBranch} in ${outcome.commit}`);
          if (outcome.warning) this.deps.events.warning(live, 'LinkReplaced', outcome.warning);
        }
        if (result.statusWritten && condition.kind === 'stalled') this.deps.events.warning(live, condition.reason, condition.message);
        return held.waiting.length > 0 ? { ...result, requeueAfterMs: this.deps.waitingRecheckMs ?? 10_000 } : result;
      }
      if (outcome.state === 'refused') {
        const reason = outcome.refusal ?? 'NotCommittable';
        return this.stalled(live, carried, reason, outcome.reason ?? 'refused by the repository layout', result);
      }
      // failed: report, and hand it over again once the backoff has passed.
      const wait = (outcome.retryAt ?? 0) - Date.now();
      if (wait > 0 || this.inflight.get(key)?.revision === revision) {
        await this.stalled(live, carried, 'PushFailed', outcome.reason ?? 'commit or push failed', result);
        return { ...result, requeueAfterMs: Math.max(wait, 0) || undefined };
      }
    } else if (this.inflight.get(key)?.revision === revision) {
      return result; // already handed over: its status follows the flush
    }

    this.handOver(key, { kind, namespace, name, generation, objects }, revision, live);
    return { ...result, queued: true };
  }

  /**
   * The render less the objects whose apply-after condition does not hold in the cluster yet, and what
   * waits. An object once let in stays: this process let it in, or the committed tree holds it.
   */
  private holdBack(key: string, uid: string | undefined, ref: ResourceRef, objects: K8sObject[]): { objects: K8sObject[]; waiting: string[] } {
    this.unwait(key);
    if (!objects.some((o) => o.metadata.annotations?.[APPLY_AFTER_ANNOTATION])) return { objects, waiting: [] };
    // A resource deleted and made again under the same name between two reconciles starts afresh.
    const known = this.released.get(key);
    const released = known && known.uid === uid ? known.ids : new Set<string>();
    const waiting: string[] = [];
    const kept = objects.filter((o) => {
      const after = o.metadata.annotations?.[APPLY_AFTER_ANNOTATION];
      if (!after) return true;
      const id = `${o.apiVersion}/${o.kind}/${o.metadata.name}`;
      const dep = parseApplyAfter(after);
      const namespace = o.metadata.namespace ?? ref.namespace;
      const other = dep && this.deps.waited?.get(`${dep.apiVersion}/${dep.kind}`)?.get(namespace, dep.name);
      if (released.has(id) || !dep || conditionHolds(other, dep.condition) || this.deps.sink.holds(ref, o)) {
        released.add(id);
        return true;
      }
      waiting.push(`${o.kind}/${o.metadata.name} waits for ${after} in the cluster`);
      this.wait(`${dep.apiVersion}/${dep.kind}/${namespace}/${dep.name}`, key);
      return false;
    });
    if (released.size > 0) this.released.set(key, { uid, ids: released });
    return { objects: kept, waiting };
  }

  private wait(dependency: string, key: string): void {
    let keys = this.waiters.get(dependency);
    if (!keys) this.waiters.set(dependency, (keys = new Set()));
    keys.add(key);
    let deps = this.waitingOn.get(key);
    if (!deps) this.waitingOn.set(key, (deps = new Set()));
    deps.add(dependency);
  }

  private unwait(key: string): void {
    for (const dependency of this.waitingOn.get(key) ?? []) {
      const keys = this.waiters.get(dependency);
      keys?.delete(key);
      if (keys?.size === 0) this.waiters.delete(dependency);
    }
    this.waitingOn.delete(key);
  }

  /** An object of a waited-for kind changed in the cluster: the resources waiting for it reconcile again. */
  waitedChanged(obj: KubeObject): void {
    for (const key of this.waiters.get(`${obj.apiVersion}/${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`) ?? []) this.deps.requeue(key);
  }

  /** The commit and revision the status already names, carried while nothing new is delivered. */
  private delivered(live: Live): Status {
    const s = live.status ?? {};
    return {
      ...(typeof s['commit'] === 'string' ? { commit: s['commit'] } : {}),
      ...(typeof s['revision'] === 'string' ? { revision: s['revision'] } : {}),
    };
  }

  private async stalled(live: Live, carried: Status, reason: string, message: string, result: GitReconcileResult): Promise<GitReconcileResult> {
    await this.writeStatus(live, { ...carried, conditions: readyConditions({ kind: 'stalled', reason, message }, live.metadata.generation) }, result);
    // Events mark transitions: one when the resource becomes stalled, none on every resync.
    if (result.statusWritten) this.deps.events.warning(live, reason, message);
    return result;
  }

  private handOver(key: string, rendered: { kind: string; namespace: string; name: string; generation?: number; objects: K8sObject[] }, revision: string, live: Live): void {
    const token = Symbol(revision);
    this.inflight.set(key, { revision, token });
    const previous = this.outcomes.get(key);
    const liveStatus = live.status ?? {};
    let pending: Promise<ResourceResult>;
    try {
      pending = this.deps.sink.upsert(rendered);
    } catch (err) {
      pending = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    pending.then(
      (r) => {
        if (this.inflight.get(key)?.token !== token) return; // superseded or deleted meanwhile
        this.inflight.delete(key);
        if (r.state === 'committed') {
          // Unchanged content already named by the status keeps its commit: a restart rewrites nothing.
          const keep = r.changed === false && liveStatus['revision'] === revision && typeof liveStatus['commit'] === 'string';
          const pullRequest = keep && typeof liveStatus['pullRequest'] === 'string' ? liveStatus['pullRequest'] : this.deps.sink.pullRequestUrl;
          this.outcomes.set(key, { revision, state: 'committed', commit: keep ? (liveStatus['commit'] as string) : r.sha, failures: 0, changed: r.changed, warning: r.warning, pullRequest });
        } else if (r.state === 'refused') {
          this.outcomes.set(key, { revision, state: 'refused', reason: r.reason, refusal: r.refusal, failures: 0 });
        } else {
          this.failed(key, revision, previous, r.reason ?? 'commit or push failed');
        }
        this.deps.requeue(key);
      },
      (err: unknown) => {
        if (this.inflight.get(key)?.token !== token) return;
        this.inflight.delete(key);
        if (!this.deps.sink.started) return; // shutting down
        this.failed(key, revision, previous, this.deps.sink.scrub(err));
        this.deps.requeue(key);
      },
    );
  }

  private failed(key: string, revision: string, previous: Outcome | undefined, reason: string): void {
    const failures = (previous?.state === 'failed' && previous.revision === revision ? previous.failures : 0) + 1;
    const delay = Math.min(this.backoff.max, this.backoff.base * 2 ** (failures - 1));
    this.outcomes.set(key, { revision, state: 'failed', reason: this.deps.sink.scrub(reason), failures, retryAt: Date.now() + Math.round(delay * (0.8 + Math.random() * 0.4)) });
    this.deps.log('warn', 'git mode: change not pushed, will retry', { key, failures, retryInMs: Math.round(delay), error: this.deps.sink.scrub(reason) });
  }

  /** The resource is gone: its directory goes (a no-op, and no commit, when the tree never had it). */
  private remove(key: string, ref: { kind: string; namespace: string; name: string; generation?: number }): void {
    this.outcomes.delete(key);
    this.released.delete(key);
    this.unwait(key);
    this.inflight.delete(key);
    if (!this.deps.sink.started) return;
    let pending: Promise<ResourceResult>;
    try {
      pending = this.deps.sink.delete(ref);
    } catch (err) {
      pending = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    pending.then(
      (r) => {
        if (r.state === 'failed') {
          this.deps.log('warn', 'git mode: deletion not pushed, will retry', { key, error: this.deps.sink.scrub(r.reason ?? '') });
          this.deps.requeue(key, this.backoff.base * 5);
        }
      },
      (err: unknown) => {
        if (this.deps.sink.started) this.deps.log('warn', 'git mode: deletion not handed over', { key, error: this.deps.sink.scrub(err) });
      },
    );
  }

  private async writeStatus(live: Live, next: Status & { conditions: Condition[] }, result: ReconcileResult): Promise<void> {
    if ((await this.status.write({ ...live, apiVersion: KILN_API_VERSION }, next)).written) result.statusWritten = true;
  }
}
