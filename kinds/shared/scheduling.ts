import type { k8s } from 'cdk8s-plus-28';
import { DEDICATED_TAINT_KEY } from '../../crds/schema/common.js';

/** spec.scheduling, as every stateful kind spells it (crds/schema/common.ts). */
export interface SchedulingSpec {
  tolerateDedicatedNodes?: boolean;
  antiAffinity?: 'Soft' | 'Hard' | 'None';
  nodeSelector?: Record<string, string>;
  tolerations?: k8s.Toleration[];
  priorityClassName?: string;
}

const HOSTNAME = 'kubernetes.io/hostname';

/**
 * Pod-level scheduling for members of one resource.
 * - tolerateDedicatedNodes (default true): tolerate the taint
 *   `kiln.dev/dedicated=<dedicatedKey>:NoSchedule` so members may use nodes set aside for them.
 * - antiAffinity (default Soft): spread over hostnames, preferred (weight 100)
 *   or required (Hard); None adds nothing.
 */
export function podScheduling(
  spec: SchedulingSpec | undefined,
  dedicatedKey: string,
  selector: Record<string, string>,
): Pick<k8s.PodSpec, 'tolerations' | 'affinity' | 'nodeSelector' | 'priorityClassName'> {
  const s = spec ?? {};
  const tolerations: k8s.Toleration[] = [];
  if (s.tolerateDedicatedNodes ?? true) {
    tolerations.push({ key: DEDICATED_TAINT_KEY, operator: 'Equal', value: dedicatedKey, effect: 'NoSchedule' });
  }
  tolerations.push(...(s.tolerations ?? []));

  const term: k8s.PodAffinityTerm = { topologyKey: HOSTNAME, labelSelector: { matchLabels: selector } };
  const mode = s.antiAffinity ?? 'Soft';
  const affinity: k8s.Affinity | undefined =
    mode === 'None'
      ? undefined
      : mode === 'Hard'
        ? { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] } }
        : { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: term }] } };

  return {
    tolerations: tolerations.length > 0 ? tolerations : undefined,
    affinity,
    nodeSelector: s.nodeSelector && Object.keys(s.nodeSelector).length > 0 ? s.nodeSelector : undefined,
    priorityClassName: s.priorityClassName,
  };
}
