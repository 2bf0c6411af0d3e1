/**
 * What a kind has, as kinds/registry.ts declares it per kind. Generic code
 * (the controller's reconcilers and manager, `kiln synth` and `kiln diff`,
 * validate/) asks the registry and never names a kind. Every part but `kind`
 * and `chart` is optional; the default is documented on each, as cdk8s-plus
 * documents its props.
 */
import type { Chart } from 'cdk8s';
import type { Construct } from 'constructs';
import type { KubeApi } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import type { Informer, KubeObject } from '../kube/informer.js';
import type { ClusterConfigInput } from '../kube/kubeconfig.js';
import type { Status } from '../kube/status.js';
import type { PlainObject } from '../lib/selector.js';
import type { FieldError } from '../validate/errors.js';
import type { K8sObject, KilnResource, RenderContext } from './types.js';

export type ChartFactory = (scope: Construct, id: string, resource: KilnResource, context: RenderContext) => Chart;

/** A resource as the controller's cache holds it. */
export type LiveResource = KubeObject & KilnResource;

/** What a custom reconciler is given once, when the controller starts. */
export interface CustomEnv {
  /** The controller's own identity (cluster configuration). */
  kc: ClusterConfigInput;
  /** The field manager of kiln's writes. */
  fieldManager: string;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Queues a resource (its key, `Kind/namespace/name`) again: a watch of the reconciler's own saw a change it depends on. */
  requeue(key: string): void;
  /** Labels of a resource every object written for it carries too (the keys --watch-label-selector names). */
  copyLabels?: readonly string[];
}

/** How a custom reconciler reports: events, and the status the controller writes. */
export interface CustomIo {
  events: EventRecorder;
  /** Writes `status` on the resource when it differs from what is there; resolves whether it wrote. */
  writeStatus(status: Status): Promise<boolean>;
}

export interface CustomReconciler {
  /** Carries `live` out, also while it is being deleted (finalizers are its own). */
  reconcile(live: LiveResource, io: CustomIo): Promise<void>;
  /** The resource is gone: drop what is held for it (its watches). Default: nothing is held. */
  forget?(key: string): void;
  /** The controller stops. Default: nothing to stop. */
  stop?(): void;
}

/**
 * Who carries a resource of the kind out in the cluster.
 * - render: the controller renders the chart, then applies and prunes (apply mode) or commits (git mode);
 * - custom: apply mode runs the kind's own reconciler instead of applying a render;
 * - agent: the runtime agent does; the controller does not watch the kind.
 */
export type CarriedOutBy =
  | { by: 'render' }
  | {
      by: 'custom';
      /** Why apply mode does not server-side apply its render (`kiln diff` says so instead of a diff). */
      why: string;
      /** Loads the reconciler when first needed, so its client code stays out of the renderer's import graph. */
      load(): Promise<(env: CustomEnv) => CustomReconciler>;
    }
  | { by: 'agent'; why: string };

/**
 * When a rendered resource is Ready, and what its status carries beyond conditions.
 * - applied: once every object is applied and in sync;
 * - members: its StatefulSet's or Deployment's rollout (replicas, readyReplicas and selector for the scale
 *   subresource, an Available condition, spec.progressDeadlineSeconds);
 * - job: its Job's outcome (result, startTime, completionTime).
 */
export type ReadyWhen = 'applied' | 'members' | 'job';

/** A check before anything is applied: go on, wait (retried shortly), or refuse (Stalled). */
export type PreApplyCheck = { ok: true } | { ok: false; waiting: string } | { ok: false; foreign: string };

/** What a pre-apply check may read: the client, the kiln resources' caches by Kind, the children's by `apiVersion/Kind`. */
export interface PreApplyDeps {
  client: KubeApi;
  resources: Map<string, Informer>;
  children: Map<string, Informer>;
}

// Specs are checked after admission: their shape is the schema's, read loosely here.
export type Spec = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What a shard key is computed from: identity and spec (the assigner's cache keeps no more). */
export interface ShardKeyInput {
  kind?: string;
  metadata: { namespace?: string; name: string };
  spec?: unknown;
}

export interface KindDefinition {
  readonly kind: string;
  /** Renders one resource (in a fresh App: kinds/render.ts). */
  readonly chart: ChartFactory;
  /** Default: `{ by: 'render' }`. */
  readonly carriedOutBy?: CarriedOutBy;
  /** Default: 'applied'. */
  readonly ready?: ReadyWhen;
  /**
   * With `ready: 'members'`: status fields drawn from the pods its workload selects, in apply mode
   * (the controller caches the metadata of pods whose `app.kubernetes.io/name` is `app`: names,
   * labels, annotations). A pod's change reconciles its resource again. Default: none.
   */
  readonly pods?: { app: string; status(pods: KubeObject[]): Record<string, unknown> };
  /**
   * With ready 'members': how many members the resource wants, when its StatefulSet leaves
   * `spec.replicas` to another writer (the agent scales an EtcdCluster). Default: the rendered replicas.
   */
  readonly members?: (spec: Spec) => number;
  /** kiln's own checks, after the schema and CEL: what they cannot say. Default: none. */
  readonly checks?: (spec: Spec, out: FieldError[]) => void;
  /**
   * The render inputs of `resource` beyond itself, picked from objects at hand (the input files
   * offline; the apply-mode custom reconciler reads its own). Called before validation: an
   * invalid resource gets none. Default: none (`{}`).
   */
  readonly inputs?: (resource: KilnResource, objects: PlainObject[]) => RenderContext;
  /**
   * kiln kinds whose resources in its own namespace `inputs` reads (a CacheCluster reads the
   * DataGrids that name it). They reach `inputs` among the objects: offline the input files' resources
   * of these kinds, in the cluster the controller's caches of them; a change to one queues every
   * resource of this kind in its namespace again. Default: none.
   */
  readonly reads?: readonly string[];
  /**
   * Dynamic sharding: the ring key of a resource (kube/sharding/). Resources whose reconciles read
   * each other (through `reads`, or one's objects through `preApply`) return one key, so one replica
   * holds them all in its caches. `lookup` finds another kiln resource of the namespace (its spec
   * included when its kind sets `shardKey` too). Default: `Kind/namespace/name`.
   */
  readonly shardKey?: (resource: ShardKeyInput, lookup: (kind: string, name: string) => ShardKeyInput | undefined) => string;
  /** Why a valid resource renders nothing offline with `context` (synth notes it; not an error). Default: it renders. */
  readonly offlineNote?: (resource: KilnResource, context: RenderContext) => string | undefined;
  /**
   * Apply mode, after render and before any apply: whether what the render reads may be read.
   * Default: nothing to check.
   */
  readonly preApply?: (live: LiveResource, desired: K8sObject[], deps: PreApplyDeps) => Promise<PreApplyCheck>;
  /** Why git mode cannot carry it out (the resource is Stalled, reason NotSupportedInGitMode). Default: git mode commits its render. */
  readonly notInGitMode?: string;
  /**
   * Child kinds whose condition in the cluster one of its rendered objects waits for
   * (kinds/api.ts APPLY_AFTER_ANNOTATION). Git mode, where Flux or Argo CD applies them, watches
   * these in the cluster (kiln-labelled ones, conditions only) and commits the waiting object once
   * the condition holds. Default: none.
   */
  readonly waitsFor?: readonly { apiVersion: string; kind: string }[];
  /**
   * Child kinds it writes outside its own namespace. With -n the controller watches them
   * only in the watched namespaces (it makes no request elsewhere: a namespace-scoped
   * install holds Roles only there) and says so at start: a change to one written
   * outside them is repaired at the next resync. Default: none.
   */
  readonly writesOutsideNamespace?: readonly { apiVersion: string; kind: string }[];
}
