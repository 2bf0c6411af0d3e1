/**
 * The copies in target namespaces, always through the ServiceAccount's client
 * (ctx.core): write one where it differs from the desired copy, find the ones
 * this ConfigMapSync owns (by its owner labels), delete one (UID
 * precondition, so a same-named successor is never removed). A same-named
 * ConfigMap without the owner labels is never touched.
 */
import { isDeepStrictEqual } from 'node:util';
import { pathFor } from '../../kube/resources.js';
import type { K8sObject } from '../types.js';
import { statusOf, note, who, type Ctx } from './context.js';

export interface V1ConfigMap {
  metadata?: { name?: string; namespace?: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

const CONFIG_MAP = { apiVersion: 'v1', kind: 'ConfigMap' };

/** Every entry of `want` present in `have` (other managers may add their own). */
function hasEntries(have: Record<string, string> | undefined, want: Record<string, string> | undefined): boolean {
  return Object.entries(want ?? {}).every(([k, v]) => (have ?? {})[k] === v);
}

const ownedBy = (cm: V1ConfigMap, owner: Record<string, string>) => hasEntries(cm.metadata?.labels, owner);

/** Keys of `live` that `desired` does not have. */
function extraKeys(live: Record<string, string> | undefined, desired: Record<string, unknown> | undefined): string[] {
  return Object.keys(live ?? {}).filter((k) => !Object.hasOwn(desired ?? {}, k));
}

/** A JSON Pointer (RFC 6901) reference token. */
const pointerToken = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** Owned ConfigMaps in `ns` (label selector), or the error. */
export async function listOwned(ctx: Ctx, ns: string): Promise<V1ConfigMap[]> {
  const list = await ctx.core.list<V1ConfigMap>({ ...CONFIG_MAP, namespace: ns }, { labelSelector: ctx.ownerSelector });
  return list.items.filter((cm) => ownedBy(cm, ctx.owner));
}

/** Owned copies in every namespace, when the token may list ConfigMaps cluster-wide; undefined otherwise. */
export async function listOwnedEverywhere(ctx: Ctx): Promise<Map<string, V1ConfigMap[]> | undefined> {
  try {
    const list = await ctx.core.list<V1ConfigMap>(CONFIG_MAP, { labelSelector: ctx.ownerSelector });
    const byNs = new Map<string, V1ConfigMap[]>();
    for (const cm of list.items) {
      if (!ownedBy(cm, ctx.owner) || !cm.metadata?.namespace) continue;
      byNs.set(cm.metadata.namespace, [...(byNs.get(cm.metadata.namespace) ?? []), cm]);
    }
    return byNs;
  } catch (err) {
    if (statusOf(err) === 403) return undefined; // the usual case: a tenant account has namespaced rights only
    throw err;
  }
}

/** Deletes `cm` with a UID precondition; false when it was already gone or replaced. */
async function deleteCopy(ctx: Ctx, cm: V1ConfigMap): Promise<boolean> {
  const name = cm.metadata!.name!;
  const ns = cm.metadata!.namespace!;
  try {
    await ctx.core.delete({ ...CONFIG_MAP, namespace: ns, name }, cm.metadata!.uid);
    ctx.log('info', 'deleted ConfigMap copy', { resource: who(ctx.resource), namespace: ns, name });
    return true;
  } catch (err) {
    // 404: already gone; 409: the UID changed, so it is someone else's object now.
    const code = statusOf(err);
    if (code === 404 || code === 409) return false;
    throw err;
  }
}

/**
 * Leaves every owned copy in `ns` in place without kiln's owner labels (a delete with
 * propagationPolicy Orphan): nothing finds them as this ConfigMapSync's any more, and no
 * successor of the same name prunes them. True when something was released.
 */
export async function releaseCopies(ctx: Ctx, ns: string, copies?: V1ConfigMap[]): Promise<boolean> {
  let released = false;
  for (const cm of copies ?? (await listOwned(ctx, ns))) {
    const name = cm.metadata!.name!;
    const ops = [
      { op: 'test', path: '/metadata/uid', value: cm.metadata!.uid },
      ...Object.keys(ctx.owner)
        .filter((k) => cm.metadata?.labels?.[k] !== undefined)
        .map((k) => ({ op: 'remove', path: `/metadata/labels/${pointerToken(k)}` })),
    ];
    try {
      await ctx.core.request('PATCH', pathFor({ ...CONFIG_MAP, namespace: ns, name }), { body: ops, contentType: 'application/json-patch+json', query: { fieldManager: ctx.deps.fieldManager } });
      ctx.log('info', 'orphaned ConfigMap copy (owner labels removed)', { resource: who(ctx.resource), namespace: ns, name });
      released = true;
    } catch (err) {
      // 404: already gone; 409/422: the UID test failed, so it is someone else's object now.
      const code = statusOf(err);
      if (code === 404 || code === 409 || code === 422) continue;
      throw err;
    }
  }
  return released;
}

/** Removes every owned copy in `ns` (or the given ones); true when something was deleted. */
export async function removeCopies(ctx: Ctx, ns: string, copies?: V1ConfigMap[]): Promise<boolean> {
  let removed = false;
  for (const cm of copies ?? (await listOwned(ctx, ns))) {
    if (await deleteCopy(ctx, cm)) removed = true;
  }
  return removed;
}

export type CopyResult = { ns: string; kind: 'synced'; wrote: boolean } | { ns: string; kind: 'foreign'; name: string } | { ns: string; kind: 'failed'; reason: string };

/** Makes the copy in `desired`'s namespace equal `desired`, writing only when it differs; never throws. */
export async function syncCopy(ctx: Ctx, desired: K8sObject): Promise<CopyResult> {
  const ns = desired.metadata.namespace!;
  const name = desired.metadata.name;
  let live: V1ConfigMap | undefined;
  try {
    let owned: V1ConfigMap[] | undefined;
    try {
      owned = await listOwned(ctx, ns);
    } catch (err) {
      if (statusOf(err) !== 403) throw err;
      owned = undefined; // may get but not list: fall back to a read by name
    }
    live = owned?.find((cm) => cm.metadata?.name === name);
    if (!live) {
      try {
        live = await ctx.core.get<V1ConfigMap>({ ...CONFIG_MAP, namespace: ns, name });
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
      if (live && !ownedBy(live, ctx.owner)) return { ns, kind: 'foreign', name };
    }
    // Copies left under another name (the source was renamed).
    for (const stale of owned ?? []) if (stale.metadata?.name !== name) await deleteCopy(ctx, stale);

    const data = desired['data'] as Record<string, string> | undefined;
    const binaryData = desired['binaryData'] as Record<string, string> | undefined;
    const current =
      live !== undefined &&
      hasEntries(live.metadata?.labels, desired.metadata.labels) &&
      // A copied label the resource no longer has (it moved to the unsharded rest) must go too.
      (ctx.deps.copyLabels ?? []).every((k) => live!.metadata?.labels?.[k] === desired.metadata.labels?.[k]) &&
      hasEntries(live.metadata?.annotations, desired.metadata.annotations) &&
      isDeepStrictEqual(live.data ?? {}, data ?? {}) &&
      isDeepStrictEqual(live.binaryData ?? {}, binaryData ?? {});
    if (current) return { ns, kind: 'synced', wrote: false };

    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name,
        namespace: ns,
        labels: desired.metadata.labels,
        annotations: desired.metadata.annotations,
        // An existing copy is only updated while it is still the object we read.
        ...(live?.metadata?.uid ? { uid: live.metadata.uid } : {}),
      },
      // An absent map releases every key kiln applied before, so nothing needs an explicit {}.
      ...(data ? { data } : {}),
      ...(binaryData ? { binaryData } : {}),
    };
    const applied = await ctx.core.apply<V1ConfigMap>(body, ctx.deps.fieldManager);
    // Keys another field manager added to the copy survive an apply: drop them, so the copy equals the source.
    const extraData = extraKeys(applied.data, data);
    const extraBinary = extraKeys(applied.binaryData, binaryData);
    if (extraData.length > 0 || extraBinary.length > 0) {
      const ops = [
        { op: 'test', path: '/metadata/uid', value: applied.metadata?.uid },
        ...extraData.map((k) => ({ op: 'remove', path: `/data/${pointerToken(k)}` })),
        ...extraBinary.map((k) => ({ op: 'remove', path: `/binaryData/${pointerToken(k)}` })),
      ];
      await ctx.core.request('PATCH', pathFor({ ...CONFIG_MAP, namespace: ns, name }), {
        body: ops,
        contentType: 'application/json-patch+json',
        query: { fieldManager: ctx.deps.fieldManager },
      });
    }
    ctx.log('info', live ? 'updated ConfigMap copy' : 'created ConfigMap copy', { resource: who(ctx.resource), namespace: ns, name });
    return { ns, kind: 'synced', wrote: true };
  } catch (err) {
    const code = statusOf(err);
    const reason = live?.metadata?.uid && (code === 409 || code === 422) ? `ConfigMap ${ns}/${name} changed while it was being synced (UID precondition): ${note(ctx, err)}` : note(ctx, err);
    ctx.log('warn', 'cannot sync ConfigMap copy', { resource: who(ctx.resource), namespace: ns, name, code, error: reason });
    return { ns, kind: 'failed', reason };
  }
}
