/**
 * The Secrets the agent holds in memory: only those a kiln resource names
 * (a DirectoryService's password and truststore Secrets, an instance's
 * superuser Secret, a database's connection Secret), read by name.
 *
 * The Secret informer lists and watches metadata only (PartialObjectMetadata:
 * no Secret's data crosses the wire to the agent) and keeps names and
 * resourceVersions of that (its transform drops labels, annotations and
 * managedFields as each page arrives), so a cluster full of Helm release
 * Secrets costs a few dozen bytes each, and their contents never reach the
 * agent. Before a resource is reconciled, the Secrets it
 * names are fetched by GET when the informer shows a resourceVersion the
 * cache does not hold; a Secret no resource names any more is dropped.
 */
import { isNotFound, type KubeApi } from '../kube/client.js';
import type { KubeObject } from '../kube/informer.js';
import type { SecretObject } from './secrets.js';

const key = (namespace: string, name: string) => `${namespace}/${name}`;

/** What the Secret informer keeps of a Secret: enough to notice a change, nothing of its contents. */
export function secretMetadata(obj: KubeObject): KubeObject {
  const m = obj.metadata;
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion } };
}

export class ReferencedSecrets {
  private readonly data = new Map<string, SecretObject>();

  /** `meta` reads the metadata-only informer. */
  constructor(
    private readonly client: KubeApi,
    private readonly meta: (namespace: string, name: string) => KubeObject | undefined,
  ) {}

  get(namespace: string, name: string): SecretObject | undefined {
    return this.data.get(key(namespace, name));
  }

  /** Brings the named Secrets up to the informer's resourceVersion (one GET each that changed). */
  async load(namespace: string, names: Iterable<string>): Promise<void> {
    await Promise.all(
      [...new Set(names)].map(async (name) => {
        const k = key(namespace, name);
        const seen = this.meta(namespace, name);
        if (!seen) {
          this.data.delete(k);
          return;
        }
        if (this.data.get(k)?.metadata.resourceVersion === seen.metadata.resourceVersion) return;
        try {
          const s = await this.client.get<SecretObject>({ apiVersion: 'v1', kind: 'Secret', namespace, name });
          const { managedFields: _m, ...metadata } = s.metadata;
          this.data.set(k, { apiVersion: 'v1', kind: 'Secret', type: s.type, metadata, data: s.data });
        } catch (err) {
          if (!isNotFound(err)) throw err;
          this.data.delete(k);
        }
      }),
    );
  }

  forget(namespace: string, name: string): void {
    this.data.delete(key(namespace, name));
  }

  /** Drops every Secret not in `referenced` (namespace/name). */
  retain(referenced: Set<string>): void {
    for (const k of this.data.keys()) if (!referenced.has(k)) this.data.delete(k);
  }

  /** namespace/name of every Secret held with its data, for tests and metrics. */
  keys(): string[] {
    return [...this.data.keys()].sort();
  }
}
