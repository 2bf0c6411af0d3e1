/**
 * What makes a ConfigMapSync react in seconds instead of at the resync: for
 * each live ConfigMapSync, a watch of its source ConfigMap (that one object,
 * by field selector) and, when it selects namespaces by label, a watch of
 * Namespaces. Both run with the tenant ServiceAccount's token (a fresh one
 * from the token cache at every (re)start), so kiln sees only what the tenant
 * may read, and both are metadata-only: a resourceVersion or a label change
 * is all that is needed to queue the ConfigMapSync again, and its reconcile
 * reads the rest.
 *
 * A tenant whose account may not list and watch (403) is looked at again
 * every few minutes rather than retried hot; its copies still follow at the
 * resync, as before. Nothing here writes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeClient, WatchEvent } from '../../kube/client.js';
import type { KubeObject } from '../../kube/informer.js';
import type { ServiceAccountTokens } from '../../kube/service-account-clients.js';
import { statusOf } from './context.js';

export type WatchLog = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** What one ConfigMapSync's watches depend on; a change of any of them restarts them. */
export interface WatchSpec {
  /** The ConfigMapSync's namespace (its ServiceAccount's). */
  namespace: string;
  serviceAccount: string;
  source: { namespace: string; name: string };
  /** Whether targets.namespaceSelector is set (then Namespaces are watched). */
  selectsNamespaces: boolean;
}

type What = 'source' | 'namespaces';

/** Longest wait between attempts after failures; a refusal (401, 403) waits this long at once. */
const MAX_BACKOFF_MS = 30_000;
const REFUSED_RETRY_MS = 180_000;
/** The server ends each watch after this; the next one starts with a fresh token if the old one is due. */
const WATCH_TIMEOUT_SECONDS = 240;
const SHORT_WATCH_MS = 1_000;
const WATCHDOG_MS = 150_000;

export class ConfigMapSyncWatches {
  private readonly running = new Map<string, { fingerprint: string; abort: AbortController }>();

  constructor(
    private readonly tokens: ServiceAccountTokens,
    /** Queues the ConfigMapSync (its controller key) again. */
    private readonly requeue: (key: string) => void,
    private readonly log: WatchLog,
  ) {}

  /** Starts the watches of `key`, or restarts them when `spec` changed; a no-op when they run for it already. */
  ensure(key: string, spec: WatchSpec): void {
    const fingerprint = JSON.stringify(spec);
    const have = this.running.get(key);
    if (have?.fingerprint === fingerprint) return;
    have?.abort.abort();
    const abort = new AbortController();
    this.running.set(key, { fingerprint, abort });
    void this.loop(key, spec, 'source', abort.signal);
    if (spec.selectsNamespaces) void this.loop(key, spec, 'namespaces', abort.signal);
  }

  /** Stops the watches of a ConfigMapSync that is being deleted or gone. */
  forget(key: string): void {
    this.running.get(key)?.abort.abort();
    this.running.delete(key);
  }

  stop(): void {
    for (const key of [...this.running.keys()]) this.forget(key);
  }

  /** How many ConfigMapSyncs have watches (tests, metrics). */
  get size(): number {
    return this.running.size;
  }

  private async loop(key: string, spec: WatchSpec, what: What, signal: AbortSignal): Promise<void> {
    const ref = what === 'source' ? { apiVersion: 'v1', kind: 'ConfigMap', namespace: spec.source.namespace } : { apiVersion: 'v1', kind: 'Namespace' };
    const query = what === 'source' ? { fieldSelector: `metadata.name=${spec.source.name}` } : {};
    /** name -> what matters of it (the source's resourceVersion, a namespace's labels). */
    let seen: Map<string, string> | undefined;
    let resourceVersion: string | undefined;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const client: KubeClient = await this.tokens.clientFor(spec.namespace, spec.serviceAccount);
        if (resourceVersion === undefined) {
          const list = await client.list<KubeObject>(ref, query, { metadataOnly: true });
          const now = new Map(list.items.map((o) => [o.metadata.name, fingerprintOf(o, what)]));
          // Something may have changed while nothing watched: before the first list (since the reconcile
          // that started these watches read the source), or between a failed watch and this list.
          if (!seen || !sameEntries(seen, now)) this.requeue(key);
          seen = now;
          resourceVersion = list.metadata.resourceVersion;
        }
        const known = seen!;
        const began = Date.now();
        let events = 0;
        // The server sends a bookmark about every minute: a watch silent for longer is a dead connection.
        let lastActivity = began;
        const watch = new AbortController();
        const forward = () => watch.abort();
        signal.addEventListener('abort', forward, { once: true });
        const watchdog = setInterval(() => {
          if (Date.now() - lastActivity > WATCHDOG_MS) watch.abort();
        }, WATCHDOG_MS / 4);
        watchdog.unref();
        try {
          await client.watch(
            ref,
            { ...query, resourceVersion, timeoutSeconds: WATCH_TIMEOUT_SECONDS },
            (e: WatchEvent) => {
              lastActivity = Date.now();
              const o = e.object as unknown as KubeObject;
              if (e.type === 'ERROR') {
                resourceVersion = undefined; // expired (410): list again
                return;
              }
              events++;
              if (o.metadata?.resourceVersion) resourceVersion = o.metadata.resourceVersion;
              if (e.type === 'BOOKMARK') return;
              const name = o.metadata.name;
              const next = e.type === 'DELETED' ? undefined : fingerprintOf(o, what);
              if (known.get(name) === next) return;
              if (next === undefined) known.delete(name);
              else known.set(name, next);
              this.requeue(key);
            },
            watch.signal,
            { metadataOnly: true },
          );
        } catch (err) {
          // The watchdog's abort: list again and watch anew.
          if (!(watch.signal.aborted && !signal.aborted)) throw err;
          resourceVersion = undefined;
          client.closeIdleConnections(); // likely as dead as the watch's
          continue;
        } finally {
          clearInterval(watchdog);
          signal.removeEventListener('abort', forward);
        }
        // A server (or proxy) that ends every watch at once would otherwise be asked again at once, for ever.
        if (events === 0 && Date.now() - began < SHORT_WATCH_MS) throw new Error(`very short watch: ended after ${Date.now() - began} ms without an event`);
        failures = 0;
      } catch (err) {
        if (signal.aborted) return;
        const code = statusOf(err);
        if (code === 401) this.tokens.invalidate(spec.namespace, spec.serviceAccount);
        failures++;
        resourceVersion = undefined;
        const delay = code === 403 ? REFUSED_RETRY_MS : Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(failures, 6));
        if (failures === 1 || code !== 403) {
          this.log('warn', 'ConfigMapSync watch failed; changes are seen at the resync until it works', {
            resource: key,
            watch: what,
            code,
            error: this.tokens.redact(err instanceof Error ? err.message : String(err)),
            retryInMs: delay,
          });
        }
        await sleep(delay, undefined, { signal }).catch(() => undefined); // rejects when stopped: the loop then ends
      }
    }
  }
}

function fingerprintOf(o: KubeObject, what: What): string {
  if (what === 'source') return o.metadata.resourceVersion ?? '';
  const labels = o.metadata.labels ?? {};
  const phase = o.metadata.deletionTimestamp ? 'terminating' : '';
  return JSON.stringify([
    phase,
    Object.keys(labels)
      .sort()
      .map((k) => [k, labels[k]]),
  ]);
}

function sameEntries(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
