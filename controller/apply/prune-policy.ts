/**
 * Whose an object is, and what kiln may do with it: write it (belongsTo),
 * prune it (prunable), or name who has it (describeForeign). kro and Flux
 * refuse to take over what is not theirs the same way.
 */
import type { KubeObject } from '../../kube/informer.js';
import { PART_OF } from './applyset-labels.js';
import { appliedByKiln } from './managed-fields.js';

/**
 * Is `obj` this resource's to write? Its controller reference names the
 * resource by UID, or it has no controller and is a member of the resource's
 * ApplySet (an object kiln applied for a same-named resource that was deleted
 * with `--cascade=orphan`). Anything else (a tenant's own Service, an object
 * another controller or an earlier resource of the same name controls) kiln
 * must not take over: force-applying it would overwrite it and give it to the
 * garbage collector along with the resource.
 */
export function belongsTo(obj: KubeObject, parent: { metadata: { uid?: string } }, id: string): boolean {
  const controller = (obj.metadata.ownerReferences ?? []).find((o) => o.controller);
  if (controller) return controller.uid === parent.metadata.uid;
  return obj.metadata.labels?.[PART_OF] === id;
}

/** Names an object kiln will not take over, and who has it, for a Stalled message. */
export function describeForeign(obj: KubeObject): string {
  const controller = (obj.metadata.ownerReferences ?? []).find((o) => o.controller);
  const who = controller ? `is controlled by ${controller.kind}/${controller.name} (uid ${controller.uid})` : 'was not created by kiln for this resource';
  return `${obj.kind} ${obj.metadata.namespace ?? ''}/${obj.metadata.name} exists and ${who}`;
}

/** May kiln prune this member? Only what kiln applied, never volumes, never what another controller owns. */
export function prunable(live: KubeObject, parentUid: string | undefined): boolean {
  if (live.kind === 'PersistentVolumeClaim') return false;
  if (!appliedByKiln(live)) return false;
  const controller = (live.metadata.ownerReferences ?? []).find((o) => o.controller);
  return !controller || controller.uid === parentUid;
}
