/**
 * kiln's Prometheus metrics (prom-client), shared by `kiln controller` and
 * `kiln agent`. Every metric lives in one registry, `registry`, that the HTTP
 * server (lib/http-server.ts) serves at /metrics. The record* functions are
 * cheap and never throw; call them from any module.
 *
 * Two sets of families:
 *
 * - the ones controller-runtime (and client-go under it) export, with its
 *   names, label names, label values and histogram buckets, so the dashboards
 *   and alerts users have for kubebuilder operators read kiln too:
 *   controller_runtime_{reconcile_total{controller,result}, reconcile_errors_total,
 *   reconcile_time_seconds, active_workers, max_concurrent_reconciles}{controller},
 *   workqueue_{depth{priority}, adds_total, retries_total, queue_duration_seconds,
 *   work_duration_seconds, unfinished_work_seconds, longest_running_processor_seconds}{name,controller},
 *   rest_client_requests_total{code,method,host}, rest_client_request_duration_seconds{verb,host},
 *   leader_election_master_status{name}. A controller is named after the kind
 *   it reconciles, lower case (controller-runtime's default: `directoryservice`);
 *   the agent's are `<kind>-agent`. Each keeps its own queue series although
 *   kiln's kinds share one queue and its workers.
 * - kiln's own, prefixed `kiln_`: kiln_git_commits_total, kiln_git_pushes_total{outcome},
 *   kiln_agent_tasks_total{kind,task,outcome}, kiln_build_info{version,component}.
 *
 * plus prom-client's default process and Node.js metrics (process_*, nodejs_*).
 * README.md ("Metrics") has the table.
 *
 * A reconcile's result is `error` when it threw and is retried with backoff
 * (an API error, a conflict, a timeout); one that ended with the resource
 * Stalled (invalid spec, an apply the API server refused) did its job and is
 * a `success` (or `requeue_after`): its status says what is wrong.
 * Labels never carry a resource's name, a namespace or anything secret, so the
 * number of series stays small whatever the number of resources.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Outcome = 'success' | 'error';

/** The registry /metrics serves. */
export const registry = new Registry();

// ---- controller-runtime's families (sigs.k8s.io/controller-runtime pkg/internal/controller/metrics):
// the same names, label names, label values and buckets, so its dashboards and alerts read kiln.
const reconcileTotal = new Counter({
  name: 'controller_runtime_reconcile_total',
  help: 'Total number of reconciliations per controller',
  labelNames: ['controller', 'result'] as const,
  registers: [registry],
});
const reconcileErrors = new Counter({
  name: 'controller_runtime_reconcile_errors_total',
  help: 'Total number of reconciliation errors per controller',
  labelNames: ['controller'] as const,
  registers: [registry],
});
const reconcileTime = new Histogram({
  name: 'controller_runtime_reconcile_time_seconds',
  help: 'Length of time per reconciliation per controller',
  labelNames: ['controller'] as const,
  buckets: [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
  ],
  registers: [registry],
});
const maxConcurrentReconciles = new Gauge({
  name: 'controller_runtime_max_concurrent_reconciles',
  help: 'Maximum number of concurrent reconciles per controller',
  labelNames: ['controller'] as const,
  registers: [registry],
});
const activeWorkers = new Gauge({
  name: 'controller_runtime_active_workers',
  help: 'Number of currently used workers per controller',
  labelNames: ['controller'] as const,
  registers: [registry],
});

// ---- client-go's work queue families as controller-runtime registers them (pkg/internal/metrics/workqueue.go):
// labels name and controller (both the controller's name), depth also priority; buckets
// prometheus.ExponentialBuckets(10e-9, 10, 12), computed the same way (1e-8 s to 1000 s).
const QUEUE_BUCKETS: number[] = [];
for (let b = 10e-9; QUEUE_BUCKETS.length < 12; b *= 10) QUEUE_BUCKETS.push(b);
const queueDepth = new Gauge({
  name: 'workqueue_depth',
  help: 'Current depth of workqueue by workqueue and priority',
  labelNames: ['name', 'controller', 'priority'] as const,
  registers: [registry],
});
const queueAdds = new Counter({
  name: 'workqueue_adds_total',
  help: 'Total number of adds handled by workqueue',
  labelNames: ['name', 'controller'] as const,
  registers: [registry],
});
const queueLatency = new Histogram({
  name: 'workqueue_queue_duration_seconds',
  help: 'How long in seconds an item stays in workqueue before being requested',
  labelNames: ['name', 'controller'] as const,
  buckets: QUEUE_BUCKETS,
  registers: [registry],
});
const workDuration = new Histogram({
  name: 'workqueue_work_duration_seconds',
  help: 'How long in seconds processing an item from workqueue takes.',
  labelNames: ['name', 'controller'] as const,
  buckets: QUEUE_BUCKETS,
  registers: [registry],
});
/** Every instrumented controller, for the two gauges computed at scrape time. */
const controllers = new Map<string, ControllerMetrics>();
new Gauge({
  name: 'workqueue_unfinished_work_seconds',
  help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
  labelNames: ['name', 'controller'] as const,
  registers: [registry],
  collect() {
    for (const c of controllers.values()) this.set({ name: c.controller, controller: c.controller }, c.unfinished().total);
  },
});
new Gauge({
  name: 'workqueue_longest_running_processor_seconds',
  help: 'How many seconds has the longest running processor for workqueue been running.',
  labelNames: ['name', 'controller'] as const,
  registers: [registry],
  collect() {
    for (const c of controllers.values()) this.set({ name: c.controller, controller: c.controller }, c.unfinished().longest);
  },
});
const queueRetries = new Counter({
  name: 'workqueue_retries_total',
  help: 'Total number of items added to the workqueue with a non-zero delay (rate-limited requeues, explicit RequeueAfter or AddAfter calls)',
  labelNames: ['name', 'controller'] as const,
  registers: [registry],
});

// ---- client-go's REST client families as controller-runtime registers them (pkg/metrics/client_go_adapter.go).
const restRequests = new Counter({
  name: 'rest_client_requests_total',
  help: 'Number of HTTP requests, partitioned by status code, method, and host.',
  labelNames: ['code', 'method', 'host'] as const,
  registers: [registry],
});
const restLatency = new Histogram({
  name: 'rest_client_request_duration_seconds',
  help: 'Request latency in seconds. Broken down by verb and host.',
  labelNames: ['verb', 'host'] as const,
  buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0],
  registers: [registry],
});

const gitCommits = new Counter({
  name: 'kiln_git_commits_total',
  help: 'Commits made by the git-mode writer.',
  registers: [registry],
});
const gitPushes = new Counter({
  name: 'kiln_git_pushes_total',
  help: 'Pushes by the git-mode writer, by outcome (a push rejected, rebased and retried counts once, with its final outcome).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});
const agentTasks = new Counter({
  name: 'kiln_agent_tasks_total',
  help: 'Runtime agent tasks, by resource kind, task and outcome.',
  labelNames: ['kind', 'task', 'outcome'] as const,
  registers: [registry],
});
// ---- client-go's leader election family as controller-runtime registers it (pkg/metrics/leaderelection.go):
// present only while leader election is on (as there), 0 for a standby, 1 for the leader.
let leaderCheck: { name: string; check: () => boolean } | undefined;
const leaderStatus = new Gauge({
  name: 'leader_election_master_status',
  help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
  labelNames: ['name'] as const,
  registers: [registry],
  collect() {
    if (leaderCheck) this.set({ name: leaderCheck.name }, leaderCheck.check() ? 1 : 0);
  },
});
const buildInfo = new Gauge({
  name: 'kiln_build_info',
  help: 'Always 1; the labels say which kiln runs.',
  labelNames: ['version', 'component'] as const,
  registers: [registry],
});

/** controller-runtime's reconcile results: an error, a requeue at once, a requeue after a delay, done. */
export type ReconcileResult = 'success' | 'error' | 'requeue' | 'requeue_after';

/**
 * The metrics of one controller: controller-runtime's controller_runtime_* and
 * its work queue's workqueue_* (named after the controller, as controller-runtime
 * names a controller's queue). The work queue (kube/queue.ts) calls these
 * at the points client-go's queue and controller-runtime's controller do.
 */
export class ControllerMetrics {
  /** Keys being worked on, with the time they were handed to a worker (ms, performance.now()). */
  private readonly processing = new Map<string, number>();
  private readonly q: { name: string; controller: string };

  constructor(readonly controller: string) {
    this.q = { name: controller, controller };
  }

  /** The series controller-runtime creates when a controller starts (zeroes, and its worker count). */
  init(maxConcurrent: number): void {
    for (const result of ['error', 'requeue_after', 'requeue', 'success'] as const) reconcileTotal.inc({ controller: this.controller, result }, 0);
    reconcileErrors.inc({ controller: this.controller }, 0);
    maxConcurrentReconciles.set({ controller: this.controller }, maxConcurrent);
    activeWorkers.set({ controller: this.controller }, 0);
    queueDepth.set({ ...this.q, priority: '0' }, 0);
    queueAdds.inc(this.q, 0);
    queueRetries.inc(this.q, 0);
  }

  /** A key became ready to be worked on (client-go's metrics.add). */
  added(): void {
    queueAdds.inc(this.q);
    queueDepth.inc({ ...this.q, priority: '0' });
  }

  /** A worker took a key that had waited `queuedSeconds` (client-go's metrics.get). */
  started(key: string, queuedSeconds: number | undefined): void {
    queueDepth.dec({ ...this.q, priority: '0' });
    if (queuedSeconds !== undefined) queueLatency.observe(this.q, queuedSeconds);
    this.processing.set(key, performance.now());
    activeWorkers.inc({ controller: this.controller });
  }

  /** The key's reconcile ended with `result` (controller-runtime's reconcileHandler, then client-go's metrics.done). */
  finished(key: string, result: ReconcileResult): void {
    const started = this.processing.get(key);
    this.processing.delete(key);
    const seconds = started === undefined ? 0 : (performance.now() - started) / 1000;
    reconcileTotal.inc({ controller: this.controller, result });
    if (result === 'error') reconcileErrors.inc({ controller: this.controller });
    reconcileTime.observe({ controller: this.controller }, seconds);
    workDuration.observe(this.q, seconds);
    activeWorkers.dec({ controller: this.controller });
  }

  /** A key was put back with a delay (a failure's backoff, or a requeue-after). */
  retried(): void {
    queueRetries.inc(this.q);
  }

  /** Seconds of work in progress, in total and the longest. */
  unfinished(): { total: number; longest: number } {
    const now = performance.now();
    let total = 0;
    let longest = 0;
    for (const t of this.processing.values()) {
      const age = (now - t) / 1000;
      total += age;
      if (age > longest) longest = age;
    }
    return { total, longest };
  }
}

/** The metrics of the controller named `controller` (one object per name and process). */
export function controllerMetrics(controller: string): ControllerMetrics {
  let c = controllers.get(controller);
  if (!c) controllers.set(controller, (c = new ControllerMetrics(controller)));
  return c;
}

/**
 * The host label client-go gives a client: the server URL's host as written
 * (Go's url.URL.Host, so an explicit :443 stays).
 */
export function restHost(server: string): string {
  return server.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').split(/[/?#]/)[0] ?? '';
}

/**
 * One reply from the API server, as client-go counts it: `code` the HTTP
 * status (0: no reply, counted as `<error>`), `verb` as KubeClient names it
 * (a LIST or WATCH is the HTTP method GET, client-go's `method` label).
 */
export function recordRestRequest(host: string, verb: string, status: number): void {
  restRequests.inc({ code: status > 0 ? String(status) : '<error>', method: verb === 'LIST' || verb === 'WATCH' ? 'GET' : verb, host });
}

/** One request's time, as client-go times it (rate limiting and reading the body included; watches are not timed). */
export function recordRestLatency(host: string, method: string, seconds: number): void {
  restLatency.observe({ verb: method, host }, seconds);
}

interface InstrumentableClient {
  server: string;
  onRequest?: (verb: never, path: string, status: number) => void;
  request(method: never, path: string, opts?: never): Promise<unknown>;
}

/**
 * Records every request of a KubeClient in rest_client_*: its onRequest hook
 * counts each reply (watches included), and its request() is timed from the
 * call (rate limiting included) to the parsed body. A request that got no
 * reply (the connection failed, a credential plugin failed) counts as code
 * `<error>`; an error with an HTTP status (ApiError) was counted by the hook.
 */
export function instrumentClient(client: InstrumentableClient): void {
  const host = restHost(client.server);
  const c = client as unknown as {
    onRequest?: (verb: string, path: string, status: number) => void;
    request: (method: string, path: string, opts?: unknown) => Promise<unknown>;
  };
  c.onRequest = (verb, _path, status) => recordRestRequest(host, verb, status);
  const request = c.request.bind(client);
  c.request = async (method, path, opts) => {
    const started = performance.now();
    try {
      return await request(method, path, opts);
    } catch (err) {
      if (typeof (err as { status?: unknown }).status !== 'number') recordRestRequest(host, method, 0);
      throw err;
    } finally {
      recordRestLatency(host, method, (performance.now() - started) / 1000);
    }
  };
}

/** The git-mode writer made a commit. */
export function recordGitCommit(): void {
  gitCommits.inc();
}

/** The git-mode writer tried to push. */
export function recordGitPush(outcome: Outcome): void {
  gitPushes.inc({ outcome });
}

/** The runtime agent finished a task: e.g. ('PostgresDatabase', 'database', 'success'), ('DirectoryService', 'password', 'error'). */
export function recordAgentTask(kind: string, task: string, outcome: Outcome): void {
  agentTasks.inc({ kind, task, outcome });
}

/**
 * leader_election_master_status{name}: asked at every scrape whether this
 * replica holds the Lease `name`. Call only when leader election is on
 * (controller-runtime has no series without it); no argument removes it.
 */
export function setLeaderCheck(name?: string, check?: () => boolean): void {
  leaderCheck = name && check ? { name, check } : undefined;
  if (!leaderCheck) leaderStatus.reset();
}

let defaultsOn = false;

/**
 * Process and Node.js metrics plus kiln_build_info; called by startHttpServer,
 * at most once per process (later calls only add a kiln_build_info series).
 */
export function enableProcessMetrics(info?: { version: string; component: string }): void {
  if (!defaultsOn) {
    defaultsOn = true;
    collectDefaultMetrics({ register: registry });
  }
  if (info) buildInfo.set(info, 1);
}

/** The registry in Prometheus' text format. */
export function metricsText(): Promise<string> {
  return registry.metrics();
}

/** For tests: forget every value recorded so far. */
export function resetMetrics(): void {
  registry.resetMetrics();
}
