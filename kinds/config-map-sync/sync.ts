/**
 * A live ConfigMapSync: read the source, work out the target namespaces, make
 * each copy current, and prune the namespaces that stopped being targets. A
 * target that fails does not stop the others; what cannot progress without
 * someone's change is reported as `stalled`.
 */
import { matchesSelector, type LabelSelector } from '../../lib/selector.js';
import { mapLimit } from '../../lib/map-limit.js';
import { render } from '../render.js';
import { sourceOf, targetNamespaces } from './chart.js';
import { CONCURRENCY, note, who, type Ctx } from './context.js';
import { removeCopies, syncCopy, type V1ConfigMap } from './copies.js';
import type { ConfigMapSyncOutcome, RecordedNamespaces } from './reconcile.js';

interface V1Namespace {
  metadata?: { name?: string; labels?: Record<string, string> };
  status?: { phase?: string };
}

/** The ConfigMapSync's labels its copies carry too (a shard's: every object made for a resource is labelled as it is). */
function copiedLabels(ctx: Ctx): Record<string, string> {
  const labels = ctx.resource.metadata.labels ?? {};
  return Object.fromEntries((ctx.deps.copyLabels ?? []).flatMap((k) => (labels[k] !== undefined ? [[k, labels[k]]] : [])));
}

export async function sync(ctx: Ctx, recorded: RecordedNamespaces): Promise<ConfigMapSyncOutcome> {
  const { cms, resource, log } = ctx;
  const source = sourceOf(cms);
  let src: V1ConfigMap;
  try {
    src = await ctx.core.get<V1ConfigMap>({ apiVersion: 'v1', kind: 'ConfigMap', namespace: source.namespace, name: source.name });
  } catch (err) {
    const msg = `ConfigMap ${source.namespace}/${source.name}: ${note(ctx, err)}`;
    log('warn', 'cannot read the source ConfigMap', { resource: who(resource), error: msg });
    return { synced: recorded.synced, failed: [], pruned: [], stalled: { reason: 'SourceUnreadable', message: msg } };
  }

  const stalls: { reason: string; message: string }[] = [];
  let selected: string[] = [];
  let targetsKnown = true;
  const selector = cms.spec.targets.namespaceSelector as LabelSelector | undefined;
  if (selector) {
    try {
      const list = await ctx.core.list<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace' });
      selected = list.items.filter((n: V1Namespace) => n.status?.phase !== 'Terminating' && matchesSelector(n.metadata?.labels, selector)).map((n) => n.metadata!.name!);
    } catch (err) {
      targetsKnown = false;
      stalls.push({ reason: 'NamespacesUnreadable', message: `spec.targets.namespaceSelector: cannot list namespaces: ${note(ctx, err)}` });
    }
  }

  const desired = render(cms, {
    configMapSync: { source: { data: src.data, binaryData: src.binaryData }, selectedNamespaces: selected },
  })
    .filter((o) => o.kind === 'ConfigMap' && o.metadata.namespace)
    .map((o) => ({ ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...copiedLabels(ctx) } } }));
  const targets = new Set(targetNamespaces(cms, selected));

  const results = await mapLimit(desired, CONCURRENCY, (d) => syncCopy(ctx, d));
  const outcome: ConfigMapSyncOutcome = { synced: [], failed: [], pruned: [] };
  const foreign: string[] = [];
  for (const r of results) {
    if (r.kind === 'synced') outcome.synced.push(r.ns);
    else if (r.kind === 'failed') outcome.failed.push({ namespace: r.ns, reason: r.reason });
    else {
      const m = `${r.ns}/${r.name} exists and is not owned by kiln`;
      foreign.push(m);
      outcome.failed.push({ namespace: r.ns, reason: `ConfigMap ${m}` });
    }
  }
  if (foreign.length > 0) {
    log('warn', 'ConfigMap exists and is not owned by kiln; left untouched', { resource: who(resource), configMaps: foreign });
    stalls.unshift({ reason: 'ForeignConfigMap', message: `ConfigMap ${foreign.join(', ')}` });
  }

  // Prune namespaces that held a copy (or failed to) and are no longer targets.
  if (targetsKnown) {
    const gone = recorded.all.filter((ns) => !targets.has(ns));
    const pruneResults = await mapLimit(gone, CONCURRENCY, async (ns) => {
      try {
        return { ns, removed: await removeCopies(ctx, ns) };
      } catch (err) {
        return { ns, removed: false, reason: `prune: ${note(ctx, err)}` };
      }
    });
    for (const p of pruneResults) {
      if (p.removed) outcome.pruned.push(p.ns);
      if (p.reason !== undefined) outcome.failed.push({ namespace: p.ns, reason: p.reason });
    }
  } else {
    // Unknown targets: keep the recorded namespaces that were not re-synced, so nothing is forgotten.
    for (const ns of recorded.synced) if (!targets.has(ns) && !outcome.synced.includes(ns)) outcome.synced.push(ns);
  }

  outcome.synced.sort();
  outcome.failed.sort((a, b) => a.namespace.localeCompare(b.namespace));
  outcome.pruned.sort();
  if (stalls[0]) {
    outcome.stalled = { reason: stalls[0].reason, message: stalls.map((s) => s.message).join('; ') };
  }
  return outcome;
}
