/**
 * kiln's Prometheus metrics (prom-client), shared by `kiln controller` and
 * `kiln agent`. Every metric lives in one registry, `registry`, that the HTTP
 * server (lib/http-server.ts) serves at /metrics. The record* functions are
 * cheap and never throw; call them from any module.
 *
 * | metric | type | labels |
 * |---|---|---|
 * | kiln_reconcile_total | counter | kind, outcome (success, error) |
 * | kiln_reconcile_errors_total | counter | kind |
 * | kiln_reconcile_duration_seconds | histogram | kind, outcome |
 * | kiln_workqueue_depth | gauge | name (keys waiting or being worked on) |
 * | kiln_workqueue_adds_total | counter | name |
 * | kiln_workqueue_retries_total | counter | name |
 * | kiln_api_requests_total | counter | verb (GET, LIST, WATCH, POST, PUT, PATCH, DELETE), code (HTTP status) |
 * | kiln_git_commits_total | counter | |
 * | kiln_git_pushes_total | counter | outcome (success, error) |
 * | kiln_agent_tasks_total | counter | kind, task, outcome (success, error) |
 * | kiln_leader | gauge | 1 while this replica holds the Lease |
 * | kiln_build_info | gauge | version, component |
 *
 * plus prom-client's default process and Node.js metrics (process_*, nodejs_*).
 *
 * A reconcile's outcome is `error` when it threw and is retried with backoff
 * (an API error, a conflict, a timeout); one that ended with the resource
 * Stalled (invalid spec, an apply the API server refused) did its job and is a
 * `success`: its status says what is wrong.
 * Labels never carry a resource's name, a namespace or anything secret, so the
 * number of series stays small whatever the number of resources.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Outcome = 'success' | 'error';

/** The registry /metrics serves. */
export const registry = new Registry();

const reconcileTotal = new Counter({
  name: 'kiln_reconcile_total',
  help: 'Reconciles finished, by kind and outcome.',
  labelNames: ['kind', 'outcome'] as const,
  registers: [registry],
});
const reconcileErrors = new Counter({
  name: 'kiln_reconcile_errors_total',
  help: 'Reconciles that failed (and are retried with backoff), by kind.',
  labelNames: ['kind'] as const,
  registers: [registry],
});
const reconcileDuration = new Histogram({
  name: 'kiln_reconcile_duration_seconds',
  help: 'Time one reconcile took, by kind and outcome.',
  labelNames: ['kind', 'outcome'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [registry],
});
const queueDepth = new Gauge({
  name: 'kiln_workqueue_depth',
  help: 'Keys waiting in the work queue or being worked on.',
  labelNames: ['name'] as const,
  registers: [registry],
});
const queueAdds = new Counter({
  name: 'kiln_workqueue_adds_total',
  help: 'Keys added to the work queue (a key already waiting is not added again).',
  labelNames: ['name'] as const,
  registers: [registry],
});
const queueRetries = new Counter({
  name: 'kiln_workqueue_retries_total',
  help: 'Keys put back after a failure, to run again after a backoff.',
  labelNames: ['name'] as const,
  registers: [registry],
});
const apiRequests = new Counter({
  name: 'kiln_api_requests_total',
  help: 'Requests to the Kubernetes API server, by verb and HTTP status code.',
  labelNames: ['verb', 'code'] as const,
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
let leaderCheck: (() => boolean) | undefined;
const leader = new Gauge({
  name: 'kiln_leader',
  help: '1 while this replica holds its leader-election Lease, else 0.',
  registers: [registry],
  collect() {
    if (leaderCheck) this.set(leaderCheck() ? 1 : 0);
  },
});
const buildInfo = new Gauge({
  name: 'kiln_build_info',
  help: 'Always 1; the labels say which kiln runs.',
  labelNames: ['version', 'component'] as const,
  registers: [registry],
});

/** One reconcile finished: `kind` is the resource kind (DirectoryService, ...). */
export function recordReconcile(kind: string, seconds: number, outcome: Outcome): void {
  reconcileTotal.inc({ kind, outcome });
  reconcileDuration.observe({ kind, outcome }, seconds);
  if (outcome === 'error') reconcileErrors.inc({ kind });
}

/** The number of keys waiting or in progress in the queue `name` (controller, agent, ...). */
export function setQueueDepth(name: string, depth: number): void {
  queueDepth.set({ name }, depth);
}

/** A key was added to the queue `name`. */
export function recordQueueAdd(name: string): void {
  queueAdds.inc({ name });
}

/** A key of the queue `name` failed and comes back after a backoff. */
export function recordQueueRetry(name: string): void {
  queueRetries.inc({ name });
}

/** One response from the API server: `verb` as KubeClient names it, `code` the HTTP status. */
export function recordApiRequest(verb: string, code: number | string): void {
  apiRequests.inc({ verb, code: String(code) });
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

/** Whether this replica holds its Lease. */
export function setLeader(isLeader: boolean): void {
  leader.set(isLeader ? 1 : 0);
}

/** Or: asked at every scrape whether this replica holds its Lease (none: back to setLeader). */
export function setLeaderCheck(check?: () => boolean): void {
  leaderCheck = check;
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
