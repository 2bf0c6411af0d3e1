import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import type { KilnResource } from '../types.js';
import { standardLabels } from './labels.js';
import { clientServiceName, headlessServiceName } from '../names.js';

export interface ServicePort {
  name: string;
  port: number;
  targetPort?: number;
}

/**
 * The headless Service that gives each member its DNS name
 * (`<pod>.<name>.<ns>.svc`). Members of a replicated store must find each
 * other before they are ready, hence publishNotReadyAddresses where asked.
 */
export class HeadlessService extends Construct {
  constructor(
    scope: Construct,
    id: string,
    props: {
      resource: KilnResource;
      app: string;
      selector: Record<string, string>;
      ports: ServicePort[];
      publishNotReadyAddresses: boolean;
    },
  ) {
    super(scope, id);
    new k8s.KubeService(this, 'Resource', {
      metadata: { name: headlessServiceName(props.resource.metadata.name), labels: standardLabels(props.app, 'headless-service', props.resource) },
      spec: {
        clusterIp: 'None',
        publishNotReadyAddresses: props.publishNotReadyAddresses,
        selector: props.selector,
        ports: props.ports.map((p) => ({ name: p.name, port: p.port, targetPort: k8s.IntOrString.fromNumber(p.targetPort ?? p.port), protocol: 'TCP' })),
      },
    });
  }
}

export type ClientServiceType = 'ClusterIP' | 'LoadBalancer' | 'NodePort' | 'None';

/** The client Service `<name>-client`; type None renders nothing. */
export class ClientService extends Construct {
  constructor(
    scope: Construct,
    id: string,
    props: {
      resource: KilnResource;
      app: string;
      selector: Record<string, string>;
      ports: ServicePort[];
      type?: ClientServiceType;
      annotations?: Record<string, string>;
    },
  ) {
    super(scope, id);
    const type = props.type ?? 'ClusterIP';
    if (type === 'None') return;
    new k8s.KubeService(this, 'Resource', {
      metadata: {
        name: clientServiceName(props.resource.metadata.name),
        labels: standardLabels(props.app, 'client-service', props.resource),
        annotations: props.annotations && Object.keys(props.annotations).length > 0 ? props.annotations : undefined,
      },
      spec: {
        type,
        selector: props.selector,
        ports: props.ports.map((p) => ({ name: p.name, port: p.port, targetPort: k8s.IntOrString.fromNumber(p.targetPort ?? p.port), protocol: 'TCP' })),
      },
    });
  }
}

/** At most one member down at a time through voluntary disruptions (drains, upgrades). */
export class MemberDisruptionBudget extends Construct {
  constructor(scope: Construct, id: string, props: { resource: KilnResource; app: string; selector: Record<string, string> }) {
    super(scope, id);
    new k8s.KubePodDisruptionBudget(this, 'Resource', {
      metadata: { name: props.resource.metadata.name, labels: standardLabels(props.app, 'disruption-budget', props.resource) },
      spec: { maxUnavailable: k8s.IntOrString.fromNumber(1), selector: { matchLabels: props.selector } },
    });
  }
}

/** A volumeClaimTemplate; `dataSource` pre-fills new claims (only claims that do not exist yet). */
export function claimTemplate(props: {
  name: string;
  size: string;
  storageClassName?: string;
  labels: Record<string, string>;
  dataSource?: { apiGroup: string; kind: string; name: string };
}): k8s.KubePersistentVolumeClaimProps {
  return {
    metadata: { name: props.name, labels: props.labels },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: props.storageClassName,
      resources: { requests: { storage: k8s.Quantity.fromString(props.size) } },
      dataSource: props.dataSource,
    },
  };
}

/**
 * A StatefulSet's rolling update, with `rollingUpdate.partition: 0` spelled
 * out. The API server fills `rollingUpdate` in only when `type` is empty; with
 * `type: RollingUpdate` and no `rollingUpdate`, kube-controller-manager (seen
 * on v1.34.4) creates a replaced member from the *current* revision while its
 * `status.currentReplicas` is stale, deletes it again for the update, and
 * writes `currentReplicas: -1`, which the API server refuses: the rollout
 * never ends. A scale-down together with a template change triggers it
 * (test/integration/statefulset-rollout.test.ts). With a partition the
 * controller takes the branch that always creates from the update revision.
 */
export const ROLLING_UPDATE = { type: 'RollingUpdate', rollingUpdate: { partition: 0 } } as const;
