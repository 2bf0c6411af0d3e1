/**
 * CacheCluster `status.members`: each member pod and the grids it serves, as
 * its own pod says (the kiln.dev/grids annotation it was created with). A
 * member still on the previous revision during a rollout reports the grids of
 * that revision: the status shows which members serve a new grid yet.
 */
import type { KubeObject } from '../../kube/informer.js';
import { GRIDS_ANNOTATION } from './chart.js';

/** An annotation anyone with pod rights may write: only grid names (object names) are taken from it. */
const GRID_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const ordinal = (name: string) => Number(/-(\d+)$/.exec(name)?.[1] ?? Number.MAX_SAFE_INTEGER);

export function cacheMembers(pods: KubeObject[]): Record<string, unknown> {
  const members = pods
    .filter((p) => !p.metadata.deletionTimestamp)
    .map((p) => ({
      name: p.metadata.name,
      grids: (p.metadata.annotations?.[GRIDS_ANNOTATION] ?? '').split(',').filter((g) => g.length <= 253 && GRID_NAME.test(g)),
    }))
    // By ordinal, as `kubectl get pods` lists a StatefulSet's members: c-2 before c-10.
    .sort((a, b) => ordinal(a.name) - ordinal(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { members };
}
