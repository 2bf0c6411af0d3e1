/**
 * A deleted ConfigMapSync: remove every copy it owns with the ServiceAccount's
 * rights (or, for a delete with propagationPolicy Orphan, leave each in place
 * without the owner labels), then release the finalizer. A transient failure keeps the finalizer
 * (the caller retries); copies the account may not delete (401, 403) are left
 * in place and said so, so that a revoked right does not hold the deletion
 * forever.
 */
import { mapLimit } from '../../lib/map-limit.js';
import { CONCURRENCY, note, statusOf, who, type Ctx } from './context.js';
import { listOwnedEverywhere, releaseCopies, removeCopies, type V1ConfigMap } from './copies.js';
import { removeFinalizer } from './finalizer.js';
import type { ConfigMapSyncOutcome, RecordedNamespaces } from './reconcile.js';

/** The finalizer the API server adds for a delete with propagationPolicy Orphan (`kubectl delete --cascade=orphan`). */
const ORPHAN_FINALIZER = 'orphan';

export async function finalize(ctx: Ctx, recorded: RecordedNamespaces): Promise<ConfigMapSyncOutcome> {
  const outcome: ConfigMapSyncOutcome = { synced: [], failed: [], pruned: [] };
  // Orphan: the copies stay, released (owner labels removed), as dependents of an orphaning delete do.
  const orphan = ((ctx.resource.metadata['finalizers'] as string[] | undefined) ?? []).includes(ORPHAN_FINALIZER);
  const cleanUp = orphan ? releaseCopies : removeCopies;
  let everywhere: Map<string, V1ConfigMap[]> | undefined;
  try {
    everywhere = await listOwnedEverywhere(ctx);
  } catch (err) {
    ctx.log('warn', 'cannot list ConfigMaps in all namespaces for cleanup', { resource: who(ctx.resource), error: note(ctx, err) });
  }
  // Candidates: every namespace holding a copy (one cluster-wide list, if allowed), else what status
  // recorded, the listed targets, and every namespace the token may list, one list each.
  const candidates = new Set<string>(everywhere?.keys() ?? []);
  if (!everywhere) {
    const listed = ctx.cms.spec?.targets?.namespaces;
    for (const n of [...recorded.all, ...(Array.isArray(listed) ? listed : [])]) if (typeof n === 'string') candidates.add(n);
    try {
      const nsList = await ctx.core.list<{ metadata?: { name?: string } }>({ apiVersion: 'v1', kind: 'Namespace' });
      for (const n of nsList.items) if (n.metadata?.name) candidates.add(n.metadata.name);
    } catch (err) {
      if (statusOf(err) !== 403) ctx.log('warn', 'cannot list namespaces for cleanup', { resource: who(ctx.resource), error: note(ctx, err) });
    }
  }
  const recordedSet = new Set(recorded.all);
  const results = await mapLimit([...candidates].sort(), CONCURRENCY, async (ns) => {
    try {
      return { ns, removed: await cleanUp(ctx, ns, everywhere?.get(ns)) };
    } catch (err) {
      // A namespace the token may not read and that never held a copy is simply not ours to clean.
      if (statusOf(err) === 403 && !recordedSet.has(ns)) return { ns, removed: false };
      return { ns, removed: false, err };
    }
  });
  let transient = false;
  for (const r of results) {
    if (r.removed) outcome.pruned.push(r.ns);
    if (r.err !== undefined) {
      const code = statusOf(r.err);
      outcome.failed.push({ namespace: r.ns, reason: note(ctx, r.err) });
      if (code !== 403 && code !== 401) transient = true;
    }
  }
  if (transient) {
    // Keep the finalizer; the caller retries.
    outcome.synced = outcome.failed.map((f) => f.namespace).filter((ns) => recorded.synced.includes(ns));
    return outcome;
  }
  if (outcome.failed.length > 0) {
    ctx.log('warn', 'copies left in place: the ServiceAccount may not delete them', {
      resource: who(ctx.resource),
      namespaces: outcome.failed.map((f) => f.namespace),
    });
  }
  await removeFinalizer(ctx);
  return outcome;
}
