/**
 * How an EtcdCluster's members are named and reached, shared by its chart and
 * the agent (light: no cdk8s). Members are the StatefulSet's pods
 * `<name>-<ordinal>`; their etcd member name is the pod name.
 */
import { memberHost } from '../names.js';

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** Plain-HTTP health endpoints (/livez, /readyz), whatever the client TLS: the kubelet's probes use it. */
export const ETCD_METRICS_PORT = 2381;

/** The ConfigMap the agent owns and the pods read through envFrom: the membership the agent knows. */
export const membersConfigMapName = (name: string) => `${name}-members`;
export const INITIAL_CLUSTER_ENV = 'ETCD_INITIAL_CLUSTER';
export const INITIAL_CLUSTER_STATE_ENV = 'ETCD_INITIAL_CLUSTER_STATE';

export const etcdMemberName = (name: string, ordinal: number) => `${name}-${ordinal}`;

export const etcdPeerUrl = (namespace: string, name: string, ordinal: number, tls: boolean) => `${tls ? 'https' : 'http'}://${memberHost(namespace, name, ordinal)}:${ETCD_PEER_PORT}`;

export const etcdClientUrl = (namespace: string, name: string, ordinal: number, tls: boolean) => `${tls ? 'https' : 'http'}://${memberHost(namespace, name, ordinal)}:${ETCD_CLIENT_PORT}`;

/** The ordinal of member `member` of `name`, or undefined when it is not one of its pods' names. */
export function etcdMemberOrdinal(name: string, member: string): number | undefined {
  if (!member.startsWith(`${name}-`)) return undefined;
  const rest = member.slice(name.length + 1);
  return /^(0|[1-9][0-9]{0,2})$/.test(rest) ? Number(rest) : undefined;
}
