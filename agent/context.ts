/** What every agent reconciler gets: the client, the caches, events, endpoints and intervals. */
import type { KubeApi } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import type { KubeObject } from '../kube/informer.js';
import type { Log } from '../lib/log.js';
import { directoryUrl } from '../kinds/directory-service/names.js';
import { POSTGRES_PORT, postgresServiceAddress } from '../kinds/postgres-instance/names.js';
import { etcdClientUrl, etcdMemberName, etcdPeerUrl } from '../kinds/etcd-cluster/names.js';

export { postgresServiceAddress };

export interface Caches {
  get(kind: WatchedKind, namespace: string, name: string): KubeObject | undefined;
  list(kind: WatchedKind, namespace?: string): KubeObject[];
}

export type WatchedKind = 'DirectoryService' | 'PostgresInstance' | 'PostgresDatabase' | 'EtcdCluster' | 'Secret';

export interface AgentContext {
  client: KubeApi;
  caches: Caches;
  events: EventRecorder;
  endpoints: Endpoints;
  log: Log;
  /** Re-check of directory passwords when nothing changed. */
  passwordIntervalMs: number;
  /** Re-check that each database still exists. */
  /** --database-check-interval: the longest a dropped database stays missing (each instance's catalog is read twice per interval). */
  databaseCheckMs: number;
  /** How often a ready database is checked in full (role, password, owner, connection Secret). */
  fullCheckMs: number;
  /** Records an outcome for metrics. */
  task(kind: string, task: string, outcome: 'success' | 'error'): void;
}

/**
 * Where the agent reaches a server. In the cluster: the DNS names kiln's
 * charts give the Services. Outside it (tests, a laptop, a port-forward):
 * overrides keyed by `Kind/namespace/name`.
 */
export class Endpoints {
  constructor(private readonly overrides: Record<string, string> = {}) {}

  /** ldaps to member 0 through the headless Service. */
  directory(namespace: string, name: string): string {
    return this.overrides[`DirectoryService/${namespace}/${name}`] ?? directoryUrl(namespace, name);
  }

  /** The host and port the agent connects to. */
  postgres(namespace: string, name: string, servicePort: number): { host: string; port: number } {
    const o = this.overrides[`PostgresInstance/${namespace}/${name}`];
    if (o) {
      const i = o.lastIndexOf(':');
      return i > 0 ? { host: o.slice(0, i), port: Number(o.slice(i + 1)) } : { host: o, port: POSTGRES_PORT };
    }
    return postgresServiceAddress(namespace, name, servicePort);
  }

  /**
   * Member `ordinal`'s client and peer URLs. The override is per member,
   * `EtcdCluster/<namespace>/<name>-<ordinal>=<client URL>,<peer URL>`: the
   * peer URL is what the agent registers with MemberAdd, so it must be the one
   * the member listens on.
   */
  etcdMember(namespace: string, name: string, ordinal: number, tls: { client: boolean; peer: boolean }): { client: string; peer: string } {
    const o = this.overrides[`EtcdCluster/${namespace}/${etcdMemberName(name, ordinal)}`];
    const [client, peer] = o ? o.split(',') : [];
    return { client: client || etcdClientUrl(namespace, name, ordinal, tls.client), peer: peer || etcdPeerUrl(namespace, name, ordinal, tls.peer) };
  }
}

/** `--endpoint Kind/namespace/name=address`, parsed. */
export function parseEndpoint(spec: string): [string, string] {
  const m = /^(DirectoryService|PostgresInstance|EtcdCluster)\/([a-z0-9-]+)\/([a-z0-9.-]+)=(.+)$/.exec(spec);
  if (!m)
    throw new Error(
      `--endpoint ${JSON.stringify(spec)}: expected DirectoryService/<namespace>/<name>=ldap[s]://host:port, PostgresInstance/<namespace>/<name>=host:port or EtcdCluster/<namespace>/<name>-<ordinal>=<client URL>,<peer URL>`,
    );
  return [`${m[1]}/${m[2]}/${m[3]}`, m[4]!];
}
