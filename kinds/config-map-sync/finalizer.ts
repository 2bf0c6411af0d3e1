/**
 * The ConfigMapSync's finalizer, which holds its deletion until the copies are
 * cleaned up. Patched with the controller's identity (the only write kiln
 * makes with its own rights), as a JSON patch with a `test` op so a
 * concurrent change to the finalizers fails instead of being overwritten.
 */
import { pathFor } from '../../kube/resources.js';
import { KILN_API_VERSION } from '../api.js';
import { statusOf, who, type ControllerCtx } from './context.js';

export const CONFIGMAPSYNC_FINALIZER = 'kiln.dev/configmap-copies';

async function jsonPatchSelf(ctx: ControllerCtx, body: unknown[]): Promise<void> {
  const ref = { apiVersion: KILN_API_VERSION, kind: 'ConfigMapSync', namespace: ctx.namespace, name: ctx.resource.metadata.name };
  await ctx.controller.request('PATCH', pathFor(ref), { body, contentType: 'application/json-patch+json' });
}

export async function addFinalizer(ctx: ControllerCtx): Promise<void> {
  const existing = ctx.resource.metadata['finalizers'] as string[] | undefined;
  const body =
    existing && existing.length > 0
      ? [
          { op: 'test', path: '/metadata/finalizers', value: existing },
          { op: 'add', path: '/metadata/finalizers/-', value: CONFIGMAPSYNC_FINALIZER },
        ]
      : [
          // A JSON patch test of a missing path against null passes: nobody added finalizers meanwhile.
          { op: 'test', path: '/metadata/finalizers', value: null },
          { op: 'add', path: '/metadata/finalizers', value: [CONFIGMAPSYNC_FINALIZER] },
        ];
  await jsonPatchSelf(ctx, body);
  ctx.log('info', 'added finalizer', { resource: who(ctx.resource), finalizer: CONFIGMAPSYNC_FINALIZER });
}

export async function removeFinalizer(ctx: ControllerCtx): Promise<void> {
  const existing = (ctx.resource.metadata['finalizers'] as string[] | undefined) ?? [];
  const i = existing.indexOf(CONFIGMAPSYNC_FINALIZER);
  if (i < 0) return;
  try {
    await jsonPatchSelf(ctx, [
      { op: 'test', path: `/metadata/finalizers/${i}`, value: CONFIGMAPSYNC_FINALIZER },
      { op: 'remove', path: `/metadata/finalizers/${i}` },
    ]);
  } catch (err) {
    if (statusOf(err) === 404) return; // already gone
    throw err;
  }
  ctx.log('info', 'removed finalizer', { resource: who(ctx.resource), finalizer: CONFIGMAPSYNC_FINALIZER });
}
