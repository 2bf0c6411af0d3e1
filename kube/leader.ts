/**
 * Leader election on a coordination.k8s.io/v1 Lease, with the semantics of
 * client-go's leaderelection package:
 *
 * - A candidate acquires the Lease when it is absent (create; 409 = another
 *   candidate won the race), when it has no holder (released), when it is held
 *   by this identity, or when it has expired. Expiry is judged on the local
 *   monotonic clock: the time this replica last *saw the record change*, plus
 *   the Lease's leaseDurationSeconds. The holder's renewTime is never compared
 *   with the local wall clock, so clock skew between replicas does not matter.
 * - Every write is an update with the resourceVersion that was read
 *   (optimistic concurrency): a 409 means another replica wrote first.
 * - leaseTransitions is incremented when the holder changes; acquireTime is
 *   set on takeover and kept on renewal.
 * - The leader renews every retryPeriod. If no renewal succeeds for
 *   renewDeadline (a watchdog also covers requests that hang), or the Lease is
 *   seen held by another identity, leadership is lost: onStoppedLeading
 *   callbacks run and the caller must stop writing. The elector then stops
 *   campaigning; run() may be called again to campaign anew.
 * - stop() ends campaigning; by default a leader releases the Lease (no
 *   holder, leaseDurationSeconds 1) so that a standby takes over at once.
 * - A candidate that may not use the Lease at all (its namespace does not
 *   exist: 404 on create; RBAC: 403) stops campaigning and run() rejects with
 *   LeaseUnavailableError: retrying cannot fix either, and a process that
 *   waited on it would reconcile nothing, silently (client-go retries forever;
 *   kiln's commands exit 2 naming the namespace and the fix instead). A leader
 *   that meets either while renewing loses leadership as for any other failure.
 *
 * acquireTime/renewTime are metav1.MicroTime: the API server parses them with
 * exactly six fractional digits, so a JavaScript Date (serialized with three)
 * is rejected with a 400; kiln writes them padded to microseconds. Values read
 * back from the server are strings and are passed through unchanged.
 *
 * Requests go through a KubeClient of its own (no client-side rate limit, so
 * renewals never queue behind the controller's work).
 */
import { KubeClient } from './client.js';
import { ApiError, isConflict, isNotFound } from './errors.js';
import type { ClusterConfigInput } from './kubeconfig.js';

interface V1LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
  [key: string]: unknown;
}

interface V1Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; managedFields?: unknown[]; [key: string]: unknown };
  spec?: V1LeaseSpec;
}

const LEASE = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' };

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
function microNow(): string {
  return new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface LeaderElectionOptions {
  /** The cluster (what loadKubeConfig returns), or a client to share. */
  kc: ClusterConfigInput | KubeClient;
  /** where the Lease lives */
  namespace: string;
  /** Lease name, e.g. 'kiln-controller' */
  name: string;
  /** this replica's id (e.g. hostname + random); must be unique among candidates */
  identity: string;
  /** default 15: how long a standby waits, after last seeing the Lease change, before taking it */
  leaseDurationSeconds?: number;
  /** default 10: a leader that cannot renew within this stops leading (must be < leaseDurationSeconds) */
  renewDeadlineSeconds?: number;
  /** default 2: interval between attempts to acquire or renew (must be < renewDeadlineSeconds) */
  retryPeriodSeconds?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Labels the Lease is created with (a membership group's, so its members can be listed by label). */
  labels?: Record<string, string>;
}

export interface StopOptions {
  /** default true: a leader releases the Lease so a standby takes over at once */
  release?: boolean;
}

/** The rejection of a pending run() when stop() is called before this replica became leader. */
export class LeaderElectionStoppedError extends Error {
  constructor() {
    super('leader election stopped before this replica became leader');
    this.name = 'LeaderElectionStoppedError';
  }
}

/**
 * The Lease cannot be used: its namespace does not exist (`NamespaceNotFound`: a create of the
 * Lease answered 404) or this identity may not read, create or update it (`Forbidden`: 403).
 * Retrying fixes neither; the message names the Lease and what the server said.
 */
export class LeaseUnavailableError extends Error {
  constructor(
    readonly reason: 'NamespaceNotFound' | 'Forbidden',
    readonly namespace: string,
    readonly leaseName: string,
    /** The API server's own message. */
    readonly detail: string,
  ) {
    super(
      reason === 'NamespaceNotFound' ? `the namespace "${namespace}" of the Lease ${namespace}/${leaseName} does not exist (${detail})` : `may not use the Lease ${namespace}/${leaseName} (${detail})`,
    );
    this.name = 'LeaseUnavailableError';
  }
}

type State = 'idle' | 'campaigning' | 'leading';

type Attempt =
  /** `at`: performance.now() when the attempt started (before renewTime was taken) */
  { ok: true; at: number } | { ok: false; reason: 'held'; holder: string } | { ok: false; reason: 'conflict' };

/** Jitter added to the retry period while campaigning (fraction of it), so standbys do not move in lockstep. */
const CAMPAIGN_JITTER = 0.2;

export class LeaderElector {
  private readonly api: KubeClient;
  private readonly namespace: string;
  private readonly name: string;
  private readonly identity: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly requestTimeoutMs: number;
  private readonly log: NonNullable<LeaderElectionOptions['log']>;
  private readonly labels: Record<string, string> | undefined;

  private state: State = 'idle';
  /** Incremented whenever a campaign starts or ends; a loop or step of an older epoch changes nothing. */
  private epoch = 0;
  private loopDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private pending: { resolve: () => void; reject: (e: Error) => void; promise: Promise<void> } | undefined;
  private readonly stoppedCallbacks: (() => void)[] = [];

  /** The last Lease read or written (its resourceVersion is what the next write is conditional on). */
  private lease: V1Lease | undefined;
  /** The record as last seen, and when (performance.now()) it was last seen to change. */
  private observedKey: string | undefined;
  private observedAt = 0;
  /** Our last successful write made us the holder (independent of `state`: a stale step may still have written). */
  private holding = false;
  private lastRenewAt = 0;
  private lastSeenHolder: string | undefined;

  constructor(opts: LeaderElectionOptions) {
    const leaseDuration = opts.leaseDurationSeconds ?? 15;
    const renewDeadline = opts.renewDeadlineSeconds ?? 10;
    const retryPeriod = opts.retryPeriodSeconds ?? 2;
    if (!opts.identity) throw new Error('LeaderElector: identity must not be empty');
    if (!opts.namespace || !opts.name) throw new Error('LeaderElector: namespace and name are required');
    if (!(retryPeriod > 0)) throw new Error('LeaderElector: retryPeriodSeconds must be > 0');
    if (!(leaseDuration > renewDeadline)) {
      throw new Error('LeaderElector: leaseDurationSeconds must be greater than renewDeadlineSeconds');
    }
    if (!(renewDeadline > retryPeriod * (1 + CAMPAIGN_JITTER))) {
      throw new Error(`LeaderElector: renewDeadlineSeconds must be greater than ${1 + CAMPAIGN_JITTER} * retryPeriodSeconds`);
    }
    if (!Number.isInteger(leaseDuration)) throw new Error('LeaderElector: leaseDurationSeconds must be an integer');
    this.api = opts.kc instanceof KubeClient ? opts.kc : new KubeClient(opts.kc, { qps: 0 });
    this.namespace = opts.namespace;
    this.name = opts.name;
    this.identity = opts.identity;
    this.leaseDurationMs = leaseDuration * 1000;
    this.renewDeadlineMs = renewDeadline * 1000;
    this.retryPeriodMs = retryPeriod * 1000;
    // Leaves room for at least one more attempt within the renew deadline.
    this.requestTimeoutMs = Math.max(500, Math.min(this.renewDeadlineMs / 2, 10_000));
    this.log = opts.log ?? (() => {});
    this.labels = opts.labels;
  }

  /**
   * Starts campaigning; resolves once (and if) this replica becomes leader. Rejects with
   * LeaderElectionStoppedError if stop() comes first, and with LeaseUnavailableError if the
   * Lease's namespace does not exist or the Lease is forbidden (those rejections are
   * pre-handled: a caller that does not await run() gets no unhandled rejection). After
   * leadership is lost, run() campaigns again.
   */
  run(): Promise<void> {
    if (this.state === 'leading') return Promise.resolve();
    if (this.pending) return this.pending.promise;
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    const pending = { resolve, reject, promise };
    this.pending = pending;
    const start = () => {
      if (this.pending !== pending) return; // stopped meanwhile
      this.state = 'campaigning';
      const epoch = ++this.epoch;
      this.log('info', 'leader election: campaigning', this.fields());
      // An older loop (leadership lost) may still be finishing its last attempt: stop() waits for both.
      const previous = this.loopDone;
      const current = this.loop(epoch);
      this.loopDone = previous ? Promise.all([previous, current]).then(() => {}) : current;
    };
    if (this.stopping) void this.stopping.then(start, start);
    else start();
    return promise;
  }

  /**
   * True while leading. Also false once the renew deadline has passed without a successful
   * renewal, even if a blocked event loop has delayed the watchdog that reports the loss.
   */
  isLeader(): boolean {
    return this.state === 'leading' && performance.now() - this.lastRenewAt < this.renewDeadlineMs;
  }

  /** Called when leadership is lost (renew deadline passed, or lease taken); the caller must stop writing. Not called for stop(). */
  onStoppedLeading(cb: () => void): void {
    this.stoppedCallbacks.push(cb);
  }

  /** Stops campaigning; if leading (and release is not false), releases the lease so a standby takes over at once. */
  stop(opts: StopOptions = {}): Promise<void> {
    if (this.pending) {
      this.pending.reject(new LeaderElectionStoppedError());
      this.pending = undefined;
    }
    if (!this.stopping) {
      this.stopping = this.doStop(opts.release ?? true).finally(() => {
        this.stopping = undefined;
      });
    }
    return this.stopping;
  }

  private async doStop(release: boolean): Promise<void> {
    const wasLeading = this.state === 'leading';
    this.state = 'idle';
    this.epoch++;
    this.clearDeadline();
    this.wakeUp();
    // Let an in-flight attempt finish, so that what we release is what it wrote.
    await this.loopDone;
    this.loopDone = undefined;
    if (wasLeading) this.log('info', 'leader election: stopped leading (stop)', this.fields({ release }));
    if (release && this.holding) await this.release();
  }

  // ---- the campaign / renew loop -------------------------------------------------------------

  private async loop(epoch: number): Promise<void> {
    while (this.epoch === epoch) {
      const started = performance.now();
      try {
        await this.step(epoch);
      } catch (err) {
        // step() handles its own errors; this is a last line of defence.
        this.log('error', 'leader election: unexpected error', this.fields({ error: describe(err) }));
      }
      if (this.epoch !== epoch) break;
      const base = this.state === 'leading' ? this.retryPeriodMs : this.retryPeriodMs * (1 + Math.random() * CAMPAIGN_JITTER);
      // Measured from the start of the attempt, but never less than a quarter period: no busy loop.
      await this.sleep(Math.max(base - (performance.now() - started), this.retryPeriodMs / 4));
    }
  }

  private async step(epoch: number): Promise<void> {
    const wasLeading = this.state === 'leading';
    let result: Attempt;
    try {
      result = await this.tryAcquireOrRenew();
    } catch (err) {
      if (this.epoch !== epoch) return;
      const unavailable = wasLeading ? undefined : this.unavailable(err);
      if (unavailable) {
        this.giveUp(epoch, unavailable);
        return;
      }
      this.log('warn', wasLeading ? 'leader election: renew failed' : 'leader election: acquire failed', this.fields({ error: describe(err) }));
      if (wasLeading) this.checkDeadline(epoch);
      return;
    }
    if (this.epoch !== epoch) return;
    if (result.ok) {
      // From the start of the attempt: others can only have seen the renewal later than that,
      // so the renew deadline always ends before the lease can expire for them.
      this.lastRenewAt = result.at;
      if (!wasLeading) {
        this.state = 'leading';
        this.log('info', 'leader election: became leader', this.fields({ leaseTransitions: this.lease?.spec?.leaseTransitions }));
        const pending = this.pending;
        this.pending = undefined;
        pending?.resolve();
      }
      this.armDeadline(epoch);
      return;
    }
    if (result.reason === 'held') {
      if (wasLeading) {
        this.loseLeadership(epoch, `lease taken by ${result.holder}`);
      } else if (this.lastSeenHolder !== result.holder) {
        this.log('info', 'leader election: lease held by another replica', this.fields({ holder: result.holder }));
      }
      this.lastSeenHolder = result.holder;
      return;
    }
    // 409: someone wrote between our read and our write; the next attempt re-reads.
    this.log(wasLeading ? 'warn' : 'info', 'leader election: lost an update race (409)', this.fields());
    if (wasLeading) this.checkDeadline(epoch);
  }

  /** One attempt, as client-go's tryAcquireOrRenew. Throws on errors other than 404 on read and 409 on write. */
  private async tryAcquireOrRenew(): Promise<Attempt> {
    // Monotonic first: the leader's renew deadline then counts from no later than its renewTime.
    const nowMono = performance.now();
    const now = microNow();
    let current: V1Lease;
    try {
      current = await this.read();
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const created = await this.write('create', {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.name, namespace: this.namespace, ...(this.labels ? { labels: this.labels } : {}) },
        spec: {
          holderIdentity: this.identity,
          leaseDurationSeconds: this.leaseDurationMs / 1000,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
      });
      if (!created) return { ok: false, reason: 'conflict' };
      this.observe(created, performance.now());
      this.holding = true;
      return { ok: true, at: nowMono };
    }

    // As client-go: the record's age is counted from when this read returned it.
    this.observe(current, performance.now());
    const spec: V1LeaseSpec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const durationMs = (spec.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
    if (holder !== this.identity) this.holding = false;
    if (holder !== '' && holder !== this.identity && this.observedAt + durationMs > nowMono) {
      return { ok: false, reason: 'held', holder };
    }

    const renewing = holder === this.identity;
    const { managedFields: _managedFields, ...metadata } = current.metadata ?? {};
    const updated = await this.write('replace', {
      ...current,
      metadata,
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: this.leaseDurationMs / 1000,
        acquireTime: renewing && spec.acquireTime ? microTime(spec.acquireTime) : now,
        renewTime: now,
        leaseTransitions: renewing ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    });
    if (!updated) return { ok: false, reason: 'conflict' };
    this.observe(updated, performance.now());
    this.holding = true;
    if (!renewing) {
      this.log(
        'info',
        'leader election: acquired lease',
        this.fields({
          previousHolder: holder || undefined,
          leaseTransitions: updated.spec?.leaseTransitions,
        }),
      );
    }
    return { ok: true, at: nowMono };
  }

  /** Create or replace (conditional on the body's resourceVersion); undefined on 409. */
  private async write(kind: 'create' | 'replace', body: V1Lease): Promise<V1Lease | undefined> {
    try {
      const ref = { ...LEASE, namespace: this.namespace };
      if (kind === 'create') {
        return await this.api.request<V1Lease>('POST', pathForLease(ref), { body: { ...LEASE, ...body }, signal: this.timeout() });
      }
      return await this.api.request<V1Lease>('PUT', pathForLease({ ...ref, name: this.name }), { body: { ...LEASE, ...body }, signal: this.timeout() });
    } catch (err) {
      if (isConflict(err)) return undefined;
      throw err;
    }
  }

  /** A failure no retry can fix while campaigning (see LeaseUnavailableError), or undefined. */
  private unavailable(err: unknown): LeaseUnavailableError | undefined {
    if (!(err instanceof ApiError)) return undefined;
    const detail = err.detail ?? err.message;
    if (err.status === 403) return new LeaseUnavailableError('Forbidden', this.namespace, this.name, detail);
    // A 404 on read only means "no Lease yet"; on create, the namespace is missing.
    if (err.status === 404 && err.method === 'POST') return new LeaseUnavailableError('NamespaceNotFound', this.namespace, this.name, detail);
    return undefined;
  }

  /** Stops campaigning for good: the pending run() rejects with `err`. */
  private giveUp(epoch: number, err: LeaseUnavailableError): void {
    if (this.epoch !== epoch) return;
    this.state = 'idle';
    this.epoch++;
    this.wakeUp();
    // Not logged here: the caller reports it (kiln's commands in one message, then exit 2).
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(err);
  }

  /** Records the lease; if its record differs from the one last seen, restarts the local expiry clock. */
  private observe(lease: V1Lease, nowMono: number): void {
    this.lease = lease;
    const s = lease.spec ?? {};
    const key = JSON.stringify([s.holderIdentity ?? '', s.leaseDurationSeconds ?? null, timeKey(s.acquireTime), timeKey(s.renewTime), s.leaseTransitions ?? null]);
    if (key !== this.observedKey) {
      this.observedKey = key;
      this.observedAt = nowMono;
    }
  }

  /** Clears the holder so a standby acquires on its next attempt (as client-go's ReleaseOnCancel). */
  private async release(): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const current = await this.read();
        const spec: V1LeaseSpec = current.spec ?? {};
        if (spec.holderIdentity !== this.identity) {
          this.holding = false;
          return;
        }
        const now = microNow();
        const { managedFields: _managedFields, ...metadata } = current.metadata ?? {};
        const { holderIdentity: _holder, ...rest } = spec;
        const released = await this.write('replace', {
          ...current,
          metadata,
          spec: {
            ...rest,
            leaseDurationSeconds: 1,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: spec.leaseTransitions ?? 0,
          },
        });
        if (released) {
          this.holding = false;
          this.observe(released, performance.now());
          this.log('info', 'leader election: released lease', this.fields());
          return;
        }
        // 409: re-read and try again.
      } catch (err) {
        if (isNotFound(err)) {
          this.holding = false;
          return;
        }
        this.log('warn', 'leader election: release failed', this.fields({ error: describe(err) }));
        return;
      }
    }
    this.log('warn', 'leader election: release failed after repeated conflicts', this.fields());
  }

  // ---- leadership loss -------------------------------------------------------------------------

  private armDeadline(epoch: number): void {
    this.clearDeadline();
    const remaining = this.lastRenewAt + this.renewDeadlineMs - performance.now();
    this.deadlineTimer = setTimeout(() => this.checkDeadline(epoch), Math.max(remaining, 0));
    // The renew loop keeps the process alive; this watchdog only covers a renewal that hangs.
    this.deadlineTimer.unref();
  }

  private clearDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
  }

  private checkDeadline(epoch: number): void {
    if (this.epoch !== epoch || this.state !== 'leading') return;
    const since = performance.now() - this.lastRenewAt;
    if (since >= this.renewDeadlineMs) {
      this.loseLeadership(epoch, `no successful renewal for ${Math.round(since)} ms (renew deadline ${this.renewDeadlineMs} ms)`);
    } else {
      this.armDeadline(epoch);
    }
  }

  private loseLeadership(epoch: number, reason: string): void {
    if (this.epoch !== epoch || this.state !== 'leading') return;
    this.state = 'idle';
    this.epoch++;
    this.clearDeadline();
    this.wakeUp();
    this.log('warn', 'leader election: stopped leading', this.fields({ reason }));
    for (const cb of this.stoppedCallbacks) {
      try {
        cb();
      } catch (err) {
        this.log('error', 'leader election: onStoppedLeading callback threw', this.fields({ error: describe(err) }));
      }
    }
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** A sleep that stop() and loss of leadership cut short. Its timer keeps the process alive while campaigning. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.sleepTimer = setTimeout(() => {
        this.sleepTimer = undefined;
        this.wake = undefined;
        resolve();
      }, ms);
    });
  }

  private wakeUp(): void {
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.sleepTimer = undefined;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Per-request timeout, so a hung connection cannot stall the loop past the renew deadline. */
  private timeout(): AbortSignal {
    return AbortSignal.timeout(this.requestTimeoutMs);
  }

  private read(): Promise<V1Lease> {
    return this.api.request<V1Lease>('GET', pathForLease({ ...LEASE, namespace: this.namespace, name: this.name }), { signal: this.timeout() });
  }

  private fields(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { lease: `${this.namespace}/${this.name}`, identity: this.identity, ...extra };
  }
}

function pathForLease(ref: { namespace: string; name?: string }): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ref.namespace)}/leases${ref.name ? `/${encodeURIComponent(ref.name)}` : ''}`;
}

/** A short description of an error: for API errors the status and the server's message, not the whole response. */
function describe(err: unknown): string {
  if (err instanceof ApiError) return `HTTP ${err.status}: ${err.message.replace(/^\S+ \S+: \d+ /, '')}`;
  if (err instanceof Error) {
    const text = err.name === 'Error' ? err.message : `${err.name}: ${err.message}`;
    // fetch failures carry the reason (ECONNREFUSED, certificate errors...) in `cause`.
    return err.cause instanceof Error ? `${text} (${err.cause.message})` : text;
  }
  return String(err);
}

/** A MicroTime to send back: values read from the server are strings and go back unchanged. */
function microTime(t: string | Date): string {
  return typeof t === 'string' ? t : t.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function timeKey(t: unknown): string | null {
  if (t === undefined || t === null) return null;
  if (t instanceof Date) return t.toISOString();
  return typeof t === 'string' ? t : JSON.stringify(t);
}

/**
 * Starts campaigning for the Lease: `leading` resolves once this replica
 * leads; `onLost` runs if it later stops leading. The elector is returned at
 * once, so the caller can stop a campaign that has not won yet.
 */
export function campaign(opts: LeaderElectionOptions, onLost: () => void): { elector: LeaderElector; leading: Promise<void> } {
  const elector = new LeaderElector(opts);
  elector.onStoppedLeading(() => {
    opts.log?.('error', 'lost leadership: stopping the workers');
    onLost();
  });
  opts.log?.('info', 'waiting for leadership', { lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  return { elector, leading: elector.run() };
}

/**
 * What kiln's commands do when leadership is lost, as controller-runtime does:
 * log one line, stop what can be stopped, and exit 1 — at the latest after
 * `graceMs`, because work in flight (a query to a server that never answers,
 * a hung request) may never let stop() finish, and a process that keeps
 * running without the Lease would go on writing next to the new leader. The
 * Deployment restarts it as a standby.
 */
export function exitOnLostLeadership(opts: {
  component: string;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  stop: () => Promise<void>;
  /** Longest wait for stop(); default 2000 ms. */
  graceMs?: number;
  exit?: (code: number) => void;
}): () => void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  return () => {
    const graceMs = opts.graceMs ?? 2000;
    opts.log('error', 'lost leadership: exiting', { component: opts.component, graceMs });
    // Not unref'd: this timer must fire even when nothing else keeps the event loop alive.
    const timer = setTimeout(() => {
      opts.log('error', 'lost leadership: work still in flight after the grace period; exiting now', { component: opts.component, graceMs });
      exit(1);
    }, graceMs);
    opts
      .stop()
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(timer);
        exit(1);
      });
  };
}

/** Half the renew deadline, at most 5 s: loss is noticed within the deadline, and the exit follows well inside it. */
export function lostLeadershipGraceMs(le: { renewDeadlineSeconds: number } | undefined): number {
  return Math.min(5000, ((le?.renewDeadlineSeconds ?? 10) * 1000) / 2);
}
