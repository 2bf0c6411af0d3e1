/**
 * PostgresInstance -> ConfigMap `<name>-config` (postgresql.conf), headless
 * Service, client Service, StatefulSet with one data volume (retained).
 * The superuser password comes from spec.superuserSecret or the Secret
 * `<name>-superuser` that the kiln agent generates; it is never rendered.
 * With spec.tls, the Secret's certificate, key and CA are mounted and the
 * server turns ssl on with them.
 */
import { createHash } from 'node:crypto';
import { Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { PostgresInstanceSpec } from '../../imports/kiln.dev.js';
import { selectorLabels, standardLabels } from '../shared/labels.js';
import { containerSecurity, podDefaults } from '../shared/pod.js';
import { containerResources } from '../shared/quantity.js';
import { podScheduling, type SchedulingSpec } from '../shared/scheduling.js';
import { claimTemplate, ROLLING_UPDATE, ClientService, HeadlessService, type ClientServiceType } from '../shared/workload.js';
import type { KilnResource, ResourceRequirements } from '../types.js';
import { POSTGRES_PORT } from './names.js';
import { DEFAULT_POSTGRES_VERSION } from '../../crds/schema/kinds.js';

export type PostgresInstanceResource = KilnResource<
  Omit<PostgresInstanceSpec, 'resources' | 'scheduling' | 'service'> & {
    resources?: ResourceRequirements;
    scheduling?: SchedulingSpec;
    service?: { type?: ClientServiceType; port?: number; annotations?: Record<string, string> };
  }
>;

const APP = 'postgres';
/** uid/gid of `postgres` in the official images. */
const PG_UID = 999;
const DATA_MOUNT = '/var/lib/postgresql/data';
const TLS_MOUNT = '/etc/postgresql/tls';
const DEFAULT_RESOURCES: ResourceRequirements = { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '1Gi' } };

/** Settings kiln owns: the container depends on them. validate/ refuses them in spec.parameters. */
export const RESERVED_PARAMETERS = ['listen_addresses', 'port', 'data_directory', 'hba_file', 'ident_file', 'config_file', 'unix_socket_directories', 'external_pid_file'];

const BASE_PARAMETERS: Record<string, string> = {
  listen_addresses: '*',
  port: String(POSTGRES_PORT),
  unix_socket_directories: '/var/run/postgresql',
  password_encryption: 'scram-sha-256',
};

/** Settings that turn TLS on with the mounted Secret; they win over spec.parameters (the agent expects verify-full to work). */
function tlsParameters(spec: PostgresInstanceResource['spec']): Record<string, string> {
  if (!spec.tls) return {};
  return { ssl: 'on', ssl_cert_file: `${TLS_MOUNT}/tls.crt`, ssl_key_file: `${TLS_MOUNT}/tls.key`, ssl_ca_file: `${TLS_MOUNT}/ca.crt` };
}

export const superuserSecretName = (r: PostgresInstanceResource) => r.spec.superuserSecret?.name ?? `${r.metadata.name}-superuser`;

export function postgresImage(spec: PostgresInstanceResource['spec']): string {
  return spec.image ?? `docker.io/library/postgres:${spec.version ?? DEFAULT_POSTGRES_VERSION}`;
}

/** postgresql.conf with every value quoted, so a value can never start a second setting. */
export function postgresqlConf(parameters: Record<string, string> | undefined): string {
  const all = { ...BASE_PARAMETERS, ...(parameters ?? {}) };
  const lines = Object.keys(all)
    .sort()
    .map((k) => `${k} = '${all[k]!.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`);
  return `# Rendered by kiln from spec.parameters.\n${lines.join('\n')}\n`;
}

export class PostgresInstanceChart extends Chart {
  constructor(scope: Construct, id: string, resource: PostgresInstanceResource) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
    const { name } = resource.metadata;
    const spec = resource.spec;
    const selector = selectorLabels(APP, resource);
    const conf = postgresqlConf(spec.tls ? { ...spec.parameters, ...tlsParameters(spec) } : spec.parameters);

    new k8s.KubeConfigMap(this, 'Config', {
      metadata: { name: `${name}-config`, labels: standardLabels(APP, 'config', resource) },
      data: { 'postgresql.conf': conf },
    });
    const ports = [{ name: 'postgres', port: POSTGRES_PORT }];
    new HeadlessService(this, 'Headless', { resource, app: APP, selector, ports, publishNotReadyAddresses: false });
    new ClientService(this, 'Client', {
      resource,
      app: APP,
      selector,
      ports: [{ name: 'postgres', port: spec.service?.port ?? POSTGRES_PORT, targetPort: POSTGRES_PORT }],
      type: spec.service?.type,
      annotations: spec.service?.annotations,
    });

    const isReady = { exec: { command: ['pg_isready', '-h', '127.0.0.1', '-p', String(POSTGRES_PORT), '-U', 'postgres'] } };
    const labels = standardLabels(APP, 'database', resource);
    new k8s.KubeStatefulSet(this, 'StatefulSet', {
      metadata: { name, labels },
      spec: {
        replicas: spec.replicas ?? 1,
        serviceName: name,
        podManagementPolicy: 'OrderedReady',
        updateStrategy: ROLLING_UPDATE,
        revisionHistoryLimit: 10,
        selector: { matchLabels: selector },
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
        template: {
          metadata: {
            labels,
            // A parameter change must restart the server to take effect.
            annotations: { 'kiln.dev/config-sha256': createHash('sha256').update(conf).digest('hex') },
          },
          spec: {
            ...podDefaults({ fsGroup: PG_UID, runAsUser: PG_UID, runAsGroup: PG_UID, terminationGracePeriodSeconds: 120 }),
            ...podScheduling(spec.scheduling, 'postgres', selector),
            containers: [
              {
                name: 'postgres',
                image: postgresImage(spec),
                imagePullPolicy: spec.imagePullPolicy ?? 'IfNotPresent',
                args: ['-c', 'config_file=/etc/postgresql/postgresql.conf'],
                ports: [{ name: 'postgres', containerPort: POSTGRES_PORT, protocol: 'TCP' }],
                env: [
                  { name: 'PGDATA', value: `${DATA_MOUNT}/pgdata` },
                  { name: 'POSTGRES_USER', value: 'postgres' },
                  { name: 'POSTGRES_INITDB_ARGS', value: '--auth-host=scram-sha-256 --auth-local=peer' },
                  {
                    name: 'POSTGRES_PASSWORD',
                    valueFrom: { secretKeyRef: { name: superuserSecretName(resource), key: spec.superuserSecret?.key ?? 'password' } },
                  },
                ],
                resources: containerResources(spec.resources, DEFAULT_RESOURCES),
                securityContext: containerSecurity({ readOnlyRootFilesystem: true, runAsUser: PG_UID, runAsGroup: PG_UID }),
                volumeMounts: [
                  { name: 'data', mountPath: DATA_MOUNT },
                  { name: 'config', mountPath: '/etc/postgresql', readOnly: true },
                  { name: 'run', mountPath: '/var/run/postgresql' },
                  { name: 'tmp', mountPath: '/tmp' },
                  ...(spec.tls ? [{ name: 'tls', mountPath: TLS_MOUNT, readOnly: true }] : []),
                ],
                startupProbe: { ...isReady, periodSeconds: 5, failureThreshold: 120, timeoutSeconds: 5 },
                readinessProbe: { ...isReady, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 5 },
                livenessProbe: { ...isReady, periodSeconds: 30, failureThreshold: 6, timeoutSeconds: 10 },
              },
            ],
            volumes: [
              { name: 'config', configMap: { name: `${name}-config`, defaultMode: 0o444 } },
              { name: 'run', emptyDir: {} },
              { name: 'tmp', emptyDir: {} },
              // 0640, group fsGroup (postgres): the key file permissions PostgreSQL accepts for a root-owned key.
              ...(spec.tls ? [{ name: 'tls', secret: { secretName: spec.tls.secretName, defaultMode: 0o640, items: ['tls.crt', 'tls.key', 'ca.crt'].map((key) => ({ key, path: key })) } }] : []),
            ],
          },
        },
        volumeClaimTemplates: [claimTemplate({ name: 'data', size: spec.storage?.size ?? '10Gi', storageClassName: spec.storage?.storageClassName, labels: selector })],
      },
    });
  }
}
