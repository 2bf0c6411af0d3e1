import type { K8sObject } from '../../kinds/types.js';
import type { KubeObject } from '../../kube/informer.js';
import { childKey } from './child-cache.js';
import { ownedDigest } from './managed-fields.js';

/**
 * The owned-fields digests of kiln's own applies, by object and resourceVersion:
 * the watch event of that version needs no second digest. One per Manager (its
 * informers' transform and its reconciler share it), so nothing outlives it.
 * An entry goes when its event comes or the object is deleted; entries whose
 * event never comes any other way are dropped wholesale past a bound.
 */
export class OwnWrites {
  private readonly writes = new Map<string, { rv: string; owned: string | undefined }>();
  constructor(private readonly max = 50_000) {}

  /**
   * Called with what the API server answered to kiln's apply of `desired`, and
   * the resourceVersion the cache holds for it now; returns the owned-fields
   * digest to record. A watch event that came before the answer has been
   * projected already: nothing to keep for it.
   */
  record(written: KubeObject, desired: K8sObject, cachedVersion: string | undefined): string | undefined {
    const rv = written.metadata?.resourceVersion;
    const owned = ownedDigest(written);
    if (!rv || rv === cachedVersion) return owned;
    if (this.writes.size >= this.max) this.writes.clear();
    this.writes.set(childKey({ ...desired, metadata: { ...desired.metadata, namespace: desired.metadata.namespace ?? written.metadata.namespace } }), { rv, owned });
    return owned;
  }

  /** The digest kiln's own write of exactly this version recorded, once. */
  take(key: string, resourceVersion: string | undefined): { owned: string | undefined } | undefined {
    const own = this.writes.get(key);
    if (!own || own.rv !== resourceVersion) return undefined;
    this.writes.delete(key);
    return own;
  }

  /** The object is gone: its event will never come. */
  forget(obj: { apiVersion?: string; kind?: string; metadata: { namespace?: string; name: string } }): void {
    this.writes.delete(childKey(obj));
  }

  get size(): number {
    return this.writes.size;
  }

  has(key: string): boolean {
    return this.writes.has(key);
  }
}
