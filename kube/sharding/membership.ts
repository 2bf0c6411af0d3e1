/**
 * A ring member's two Leases. Its own (`<ring>-<identity>`, labelled with the
 * ring) says it lives: the host holds it as it would a leader's Lease, so a
 * member that cannot renew within the renew deadline stops its workers, as a
 * leader does. The ring's sharder Lease (`<ring>-sharder`) picks the one member
 * that assigns (./sharder.ts); whoever holds it runs the Sharder, and a member
 * that loses it campaigns again.
 */
import { KubeClient } from '../client.js';
import type { ClusterConfigInput } from '../kubeconfig.js';
import { LeaderElectionStoppedError, LeaderElector, LeaseUnavailableError } from '../leader.js';
import { Sharder, type SharderOptions, type SharderStats, type ShardLabels } from './sharder.js';

export interface RingSettings {
  /** The ring's name: member Leases are `<ring>-<identity>`, the assigner's `<ring>-sharder`. */
  ring: string;
  leaseNamespace: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
}

/** kiln's labels for the ring (set by the assigner and the members, read by their watches). */
export const SHARD_LABELS: ShardLabels = {
  shard: 'shard.kiln.dev/controller',
  drain: 'drain.shard.kiln.dev/controller',
  ring: 'shard.kiln.dev/ring',
};

export const memberLeaseName = (ring: string, identity: string) => `${ring}-${identity}`;

/** The host's leader-election settings that make it a member: its own Lease, labelled with the ring. */
export function memberLease(s: RingSettings, identity: string) {
  return {
    namespace: s.leaseNamespace,
    name: memberLeaseName(s.ring, identity),
    labels: { [SHARD_LABELS.ring]: s.ring },
    leaseDurationSeconds: s.leaseDurationSeconds,
    renewDeadlineSeconds: s.renewDeadlineSeconds,
    retryPeriodSeconds: s.retryPeriodSeconds,
  };
}

/** Campaigns for the ring's sharder Lease and runs the Sharder while it holds it. */
export class SharderRole {
  private readonly elector: LeaderElector;
  private sharder: Sharder | undefined;
  private stopped = false;
  private readonly client: KubeClient;

  constructor(
    kc: ClusterConfigInput,
    private readonly settings: RingSettings,
    private readonly identity: string,
    private readonly sharderOptions: Omit<SharderOptions, 'ring' | 'leaseNamespace' | 'labels' | 'client'>,
  ) {
    // A client of its own: its label writes are told from the member's reconciles (User-Agent, in the audit log),
    // and never wait behind them.
    this.client = new KubeClient(kc, { qps: 0, userAgent: `kiln-sharder/${identity}` });
    this.elector = new LeaderElector({
      kc,
      namespace: settings.leaseNamespace,
      name: `${settings.ring}-sharder`,
      identity,
      leaseDurationSeconds: settings.leaseDurationSeconds,
      renewDeadlineSeconds: settings.renewDeadlineSeconds,
      retryPeriodSeconds: settings.retryPeriodSeconds,
      log: sharderOptions.log,
    });
    this.elector.onStoppedLeading(() => {
      this.sharder?.stop();
      this.sharder = undefined;
      if (!this.stopped) this.campaign();
    });
  }

  start(): void {
    this.stopped = false;
    this.campaign();
  }

  private campaign(): void {
    this.elector.run().then(
      () => {
        if (this.stopped) return;
        this.sharder = new Sharder({ ...this.sharderOptions, client: this.client, ring: this.settings.ring, leaseNamespace: this.settings.leaseNamespace, labels: SHARD_LABELS });
        this.sharder.start().catch((err: unknown) => this.sharderOptions.log('error', 'sharder: could not start', { error: (err as Error).message }));
      },
      (err: unknown) => {
        if (err instanceof LeaderElectionStoppedError) return;
        // The member Lease in the same namespace works, so this is unexpected: said once, not retried.
        const message = err instanceof LeaseUnavailableError ? err.message : String(err);
        this.sharderOptions.log('error', 'sharder: cannot campaign', { identity: this.identity, error: message });
      },
    );
  }

  isAssigning(): boolean {
    return this.sharder !== undefined;
  }

  stats(): SharderStats | undefined {
    return this.sharder?.stats();
  }

  async stop(release = true): Promise<void> {
    this.stopped = true;
    this.sharder?.stop();
    this.sharder = undefined;
    await this.elector.stop({ release });
    // Label writes still in flight go with their connections.
    await this.client.close();
  }
}

/**
 * The member's acknowledgement of a drain: both labels go in one patch whose tests require this
 * member still to own the object and the drain to be asked; false when the tests failed (the
 * object moved or the drain was withdrawn meanwhile).
 */
export async function acknowledgeDrain(client: Pick<KubeClient, 'request'>, ref: { path: string }, labels: ShardLabels, identity: string, drainValue: string): Promise<boolean> {
  const at = (k: string) => `/metadata/labels/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
  try {
    await client.request('PATCH', ref.path, {
      body: [
        { op: 'test', path: at(labels.shard), value: identity },
        { op: 'test', path: at(labels.drain), value: drainValue },
        { op: 'remove', path: at(labels.shard) },
        { op: 'remove', path: at(labels.drain) },
      ],
      contentType: 'application/json-patch+json',
    });
    return true;
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === 404 || status === 409 || status === 422) return false;
    throw err;
  }
}
