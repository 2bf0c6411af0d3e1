/**
 * What a controller process hosts, as controller-runtime's Manager does: one
 * client, the informers, a work queue and the Lease, started in the order a
 * controller needs (API server answers -> caches synced -> leading -> workers)
 * and stopped in reverse. kiln's controller and its agent are both built on it,
 * so start-up, leadership and shutdown behave the same in both.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { KubeClient } from './client.js';
import { Informer, type InformerOptions } from './informer.js';
import type { ClusterConfigInput } from './kubeconfig.js';
import { campaign, type LeaderElector } from './leader.js';
import type { WorkQueue } from './queue.js';
import { waitForApiServer } from './startup.js';

type LogFn = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface LeaderElectionSettings {
  namespace: string;
  name: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  /** Labels the Lease is created with (a ring member's: kube/sharding/membership.ts). */
  labels?: Record<string, string>;
}

export interface HostOptions {
  kc: ClusterConfigInput;
  /** Client-side rate limit (client-go's QPS and burst); 0: none. */
  qps?: number;
  burst?: number;
  requestTimeoutMs?: number;
  /** start() first waits this long for the API server to answer, then rejects with StartupTimeoutError. Default: no wait. */
  startupTimeoutSeconds?: number;
  /** Campaign for this Lease before starting the workers; absent: lead at once (a single replica). */
  leaderElection?: LeaderElectionSettings;
  /** Called once leadership is lost, after the workers stopped (the process usually exits). */
  onLostLeadership?: () => void;
  /** This replica's name in Leases and logs (default: replicaIdentity of the host name). */
  identity?: string;
  /** The client's User-Agent (the audit log tells replicas sharing a ServiceAccount apart by it). */
  userAgent?: string;
  log: LogFn;
}

/** What the process does around the workers, in the host's order. */
export interface Lifecycle {
  /** Once leading, before the workers start (e.g. sync a clone, enqueue everything once). */
  leading?: () => Promise<void> | void;
  /** Leadership lost: stop whatever writes, before onLostLeadership. */
  lost?: () => void;
  /** On stop(), after the workers and informers stopped and before the Lease is released. */
  stopping?: (release: boolean) => Promise<void> | void;
}

/** How long stop() waits for running reconciles before it releases the Lease. */
const STOP_SETTLE_MS = 10_000;

export function replicaIdentity(host: string): string {
  const base = host
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .slice(0, 56)
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return `${base || 'replica'}-${randomBytes(3).toString('hex')}`;
}

export class Host {
  readonly client: KubeClient;
  /**
   * The host name (a pod's name) and a random suffix: unique among replicas, and a valid label value
   * and Lease name (at most 63 characters, lower case), since dynamic sharding writes it into both.
   */
  readonly identity: string;
  private readonly informers: Informer[] = [];
  private elector: LeaderElector | undefined;
  private leading = false;

  constructor(private readonly opts: HostOptions) {
    this.identity = opts.identity ?? replicaIdentity(hostname());
    this.client = new KubeClient(opts.kc, { qps: opts.qps, burst: opts.burst, requestTimeoutMs: opts.requestTimeoutMs, userAgent: opts.userAgent });
  }

  /** A cache the host starts before leading and stops on stop(). */
  informer(options: InformerOptions): Informer {
    const inf = new Informer(this.client, options);
    this.informers.push(inf);
    return inf;
  }

  get informerCount(): number {
    return this.informers.length;
  }

  isLeader(): boolean {
    return this.leading;
  }

  hasSynced(): boolean {
    return this.informers.every((i) => i.hasSynced());
  }

  /**
   * Waits for the API server (startupTimeoutSeconds), fills the caches, then (once leading) starts
   * `queue`. Resolves when the workers run; rejects with StartupTimeoutError, or LeaseUnavailableError
   * when the Lease's namespace is missing or the Lease forbidden.
   */
  async start(queue: WorkQueue, lifecycle: Lifecycle = {}): Promise<void> {
    const { log } = this.opts;
    if (this.opts.startupTimeoutSeconds) await waitForApiServer(this.client, this.opts.startupTimeoutSeconds);
    await Promise.all(this.informers.map((i) => i.start()));
    log('info', 'caches synced', { informers: this.informers.length });
    if (this.opts.leaderElection) {
      const { elector, leading } = campaign({ kc: this.opts.kc, identity: this.identity, log, ...this.opts.leaderElection }, () => {
        this.leading = false;
        queue.stop();
        lifecycle.lost?.();
        this.opts.onLostLeadership?.();
      });
      this.elector = elector;
      await leading;
    }
    this.leading = true;
    await lifecycle.leading?.();
    log('info', 'leading; starting workers', { concurrency: queue.concurrency });
    queue.start();
  }

  /** Stops the workers and caches; `release: false` leaves the Lease to expire, as a crashed replica would. */
  async stop(queue: WorkQueue, lifecycle: Lifecycle = {}, opts: { release?: boolean } = {}): Promise<void> {
    let release = opts.release ?? true;
    queue.stop();
    // A released Lease lets another replica take over at once: only once nothing of this one still writes.
    if (release && !(await queue.settled(STOP_SETTLE_MS))) {
      release = false;
      this.opts.log('warn', 'reconciles still running at stop: the Lease is left to expire rather than released', { waitedMs: STOP_SETTLE_MS });
    }
    for (const i of this.informers) i.stop();
    await lifecycle.stopping?.(release);
    await this.elector?.stop({ release });
  }
}
