/**
 * kstatus's verdict on a custom resource, as sigs.k8s.io/cli-utils computes it
 * (pkg/kstatus/status: checkGenericProperties, then Compute's fallthrough) for a
 * kind it has no built-in rules for. This is what Flux's health checks and
 * `kpt live status` read, so a test can say what they would see.
 *
 * 1. metadata.deletionTimestamp set            -> Terminating
 * 2. status.observedGeneration present and
 *    different from metadata.generation        -> InProgress (LatestGenerationNotObserved)
 * 3. a condition Reconciling=True               -> InProgress
 *    a condition Stalled=True                   -> Failed
 * 4. otherwise                                  -> Current
 *
 * Note what kstatus does not read for custom resources: Ready. A controller
 * that is not finished must say Reconciling=True (or Stalled=True), or kstatus
 * calls it Current.
 */
export type KStatus = 'InProgress' | 'Failed' | 'Current' | 'Terminating';

interface Obj {
  metadata: { generation?: number; deletionTimestamp?: string };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string; message?: string }[] };
}

export function kstatus(o: Obj): { status: KStatus; message: string } {
  if (o.metadata.deletionTimestamp) return { status: 'Terminating', message: 'Resource scheduled for deletion' };
  const observed = o.status?.observedGeneration;
  if (o.metadata.generation !== undefined && observed !== undefined && observed !== o.metadata.generation) {
    return { status: 'InProgress', message: `generation is ${o.metadata.generation}, but latest observed generation is ${observed}` };
  }
  for (const c of o.status?.conditions ?? []) {
    if (c.type === 'Reconciling' && c.status === 'True') return { status: 'InProgress', message: c.message ?? '' };
    if (c.type === 'Stalled' && c.status === 'True') return { status: 'Failed', message: c.message ?? '' };
  }
  return { status: 'Current', message: 'Resource is current' };
}
