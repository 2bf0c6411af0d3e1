/** What every agent reconciler gets: the client, the caches, events, endpoints and intervals. */
import type { KubeApi } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import type { KubeObject } from '../kube/informer.js';
import type { Log } from '../lib/log.js';
import { directoryUrl } from '../kinds/directory-service/names.js';
import { POSTGRES_PORT, postgresServiceAddress } from '../kinds/postgres-instance/names.js';

export { postgresServiceAddress };

export interface Caches {
  get(kind: WatchedKind, namespace: string, name: string): KubeObject | undefined;
  list(kind: WatchedKind, namespace?: string): KubeObject[];
}

export type WatchedKind = 'DirectoryService' | 'PostgresInstance' | 'PostgresDatabase' | 'Secret';

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
}

/** `--endpoint Kind/namespace/name=address`, parsed. */
export function parseEndpoint(spec: string): [string, string] {
  const m = /^(DirectoryService|PostgresInstance)\/([a-z0-9-]+)\/([a-z0-9.-]+)=(.+)$/.exec(spec);
  if (!m) throw new Error(`--endpoint ${JSON.stringify(spec)}: expected DirectoryService/<namespace>/<name>=ldap[s]://host:port or PostgresInstance/<namespace>/<name>=host:port`);
  return [`${m[1]}/${m[2]}/${m[3]}`, m[4]!];
}
