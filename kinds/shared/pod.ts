import type { k8s } from 'cdk8s-plus-28';

/**
 * Container security settings spelled out, never left to a library default:
 * no privilege escalation, no capabilities, RuntimeDefault seccomp. Whether the
 * root filesystem is read-only depends on the image, so each chart says so.
 */
export function containerSecurity(opts: { readOnlyRootFilesystem: boolean; runAsUser: number; runAsGroup: number }): k8s.SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    privileged: false,
    readOnlyRootFilesystem: opts.readOnlyRootFilesystem,
    runAsNonRoot: true,
    runAsUser: opts.runAsUser,
    runAsGroup: opts.runAsGroup,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/**
 * Pod-level settings every kiln workload shares: the pods never talk to the
 * Kubernetes API, so no token is mounted and no service links are injected.
 */
export function podDefaults(opts: {
  fsGroup: number;
  runAsUser: number;
  runAsGroup: number;
  terminationGracePeriodSeconds: number;
}): Pick<k8s.PodSpec, 'automountServiceAccountToken' | 'enableServiceLinks' | 'securityContext' | 'terminationGracePeriodSeconds'> {
  return {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: opts.terminationGracePeriodSeconds,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: opts.runAsUser,
      runAsGroup: opts.runAsGroup,
      fsGroup: opts.fsGroup,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

/** User env after kiln's own, refusing nothing here: validate/ rejects overrides of kiln's names. */
export function mergeEnv(kiln: k8s.EnvVar[], user: k8s.EnvVar[] | undefined): k8s.EnvVar[] {
  return [...kiln, ...(user ?? [])];
}
