/** The API of group kiln.dev/v1alpha1: one entry per kind. */
import { bool, camelEnum, DNS_LABEL, enumOf, immutable, int, list, namespaceName, obj, objectName, quantity, str, stringMap, type CelRule, type Schema } from './builders.js';
import { env, envFrom, image, imagePullPolicy, progressDeadlineSeconds, replicaStatus, replicas, resources, scheduling, serviceAnnotations, serviceType, status, storage } from './common.js';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'date' | 'boolean' | 'number';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface KindDef {
  kind: string;
  plural: string;
  shortNames: string[];
  description: string;
  spec: Schema;
  status: Schema;
  /** Rules on the whole object (they may read metadata.name). */
  rules?: CelRule[];
  columns: PrinterColumn[];
  /** Path of the replica count, when the kind has a scale subresource. */
  scale?: { specReplicasPath: string };
}

const readyColumns: PrinterColumn[] = [
  { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: 'Status', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].message', priority: 1 },
];
/**
 * Kinds the controller renders: Synced (every object applied and in sync) beside Ready (and running),
 * as Crossplane and Flux users read them, with Ready's message ("2/3 members ready") in the default view.
 */
const renderedColumns: PrinterColumn[] = [
  { name: 'Synced', type: 'string', jsonPath: '.status.conditions[?(@.type=="Synced")].status' },
  { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: 'Status', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].message' },
];
const ageColumn: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/**
 * Names that become a StatefulSet name: pods get a controller-revision-hash
 * label `<name>-<hash>` that must fit in 63 characters, and Services need a
 * DNS label that starts with a letter.
 */
const statefulName = (): CelRule[] => [
  {
    rule: "self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    message: 'metadata.name must be a DNS label of at most 52 characters starting with a letter (it names a StatefulSet and its Services)',
  },
];

const DIRECTORY_PORTS = 'ldap 1389, ldaps 1636, admin 4444, replication 8989, http 8080';

export const directoryService: KindDef = {
  kind: 'DirectoryService',
  plural: 'directoryservices',
  // Never `ds`: DaemonSets have it, and kubectl would warn on every `kubectl get ds`.
  shortNames: ['dirsvc'],
  description: `An LDAP directory service: a StatefulSet of directory servers (ports ${DIRECTORY_PORTS}) with a volume each, a headless Service, an optional client Service and a PodDisruptionBudget. Volumes outlive the resource.`,
  spec: obj(
    'Desired state of the directory.',
    {
      replicas: replicas('Number of directory servers. Default 1.', 1),
      image: image('ds'),
      imagePullPolicy: imagePullPolicy(),
      resources: resources('requests cpu 500m, memory 2Gi and limit memory 2Gi'),
      env: env(),
      envFrom: envFrom(),
      storage: storage('10Gi', {
        volumeSnapshotClassName: objectName(
          "VolumeSnapshotClass of the snapshots DirectoryBackups take of these volumes, for a backup that sets no spec.volumeSnapshotClassName of its own. Default: the cluster's default class.",
        ),
      }),
      secrets: obj('Secrets the user brings; each is mounted read-only when named.', {
        masterKeypair: objectName('Secret with the master key pair that encrypts the data (mounted at /var/run/secrets/keys/master).'),
        sslKeypair: objectName('Secret with the TLS key pair for ldaps and admin (mounted at /var/run/secrets/keys/ssl).'),
        truststore: objectName('Secret with the CA certificates to trust (mounted at /var/run/secrets/keys/truststore); the agent also uses it to verify ldaps.'),
      }),
      passwords: {
        type: 'object',
        description:
          'Passwords the kiln agent keeps current inside the directory, keyed by the DN of the account, e.g. uid=am-config,ou=admins,ou=am-config. The entry for uid=admin is the bind identity the agent uses.',
        maxProperties: 64,
        additionalProperties: obj(
          'Where the password for this DN lives.',
          {
            secretName: objectName("Secret holding the password, in the resource's namespace."),
            key: str('Key within the Secret. Default password.', { minLength: 1, default: 'password' }),
            create: bool('Generate a random password into the Secret when the key is missing. Default false.', false),
          },
          { required: ['secretName'] },
        ),
      },
      scheduling: scheduling('directory'),
      progressDeadlineSeconds: progressDeadlineSeconds(),
      service: obj(
        'The client Service.',
        {
          type: serviceType('the directory'),
          annotations: serviceAnnotations(),
        },
        { default: {} },
      ),
      init: obj(
        'How a member with an empty volume is initialised. Members that already hold data are never re-initialised.',
        {
          ldifConfigMap: objectName('ConfigMap of LDIF files imported into an empty volume.'),
          fromBackup: objectName('VolumeSnapshot (e.g. the one a DirectoryRestore leaves) from which new volumes are created.'),
        },
        {
          'x-kubernetes-validations': [{ rule: '!(has(self.ldifConfigMap) && has(self.fromBackup))', message: 'init takes ldifConfigMap or fromBackup, not both' }],
        },
      ),
    },
    { required: ['image'] },
  ),
  status: status({
    ...replicaStatus(),
    passwords: obj('Password synchronisation (agent).', {
      synced: int('Entries whose password matches their Secret.'),
      total: int('Entries in spec.passwords.'),
    }),
  }),
  rules: statefulName(),
  columns: [
    { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' },
    { name: 'Ready-Replicas', type: 'integer', jsonPath: '.status.readyReplicas' },
    ...renderedColumns,
    { name: 'Image', type: 'string', jsonPath: '.spec.image', priority: 1 },
    ageColumn,
  ],
  scale: { specReplicasPath: '.spec.replicas' },
};

const jobStatus = (): Record<string, Schema> => ({
  startTime: { type: 'string', format: 'date-time', description: 'When the Job started.' },
  completionTime: { type: 'string', format: 'date-time', description: 'When the Job finished.' },
  result: enumOf('Outcome: Pending, Running, Succeeded or Failed.', ['Pending', 'Running', 'Succeeded', 'Failed']),
});

export const directoryBackup: KindDef = {
  kind: 'DirectoryBackup',
  plural: 'directorybackups',
  shortNames: ['dsbackup'],
  description:
    "A backup of one directory member's volume: a VolumeSnapshot of its claim, a claim cloned from that snapshot, and a Job that exports the clone into a backup volume named after this resource.",
  spec: obj(
    'What to back up and where.',
    {
      directoryService: objectName('Name of the DirectoryService (same namespace).'),
      ordinal: int("Which member's volume (data-<directoryService>-<ordinal>). Default 0.", { minimum: 0, default: 0 }),
      image: image('ds'),
      imagePullPolicy: imagePullPolicy(),
      volumeSnapshotClassName: objectName("VolumeSnapshotClass for the snapshot. Default: the DirectoryService's spec.storage.volumeSnapshotClassName, else the cluster's default class."),
      storage: storage('10Gi'),
      resources: resources('requests cpu 250m, memory 512Mi and limit memory 1Gi'),
    },
    { required: ['directoryService', 'image'], 'x-kubernetes-validations': [immutable('spec of a backup')] },
  ),
  status: status(jobStatus()),
  rules: statefulName(),
  columns: [{ name: 'Directory', type: 'string', jsonPath: '.spec.directoryService' }, { name: 'Result', type: 'string', jsonPath: '.status.result' }, ...renderedColumns, ageColumn],
};

export const directoryRestore: KindDef = {
  kind: 'DirectoryRestore',
  plural: 'directoryrestores',
  shortNames: ['dsrestore'],
  description:
    'A restore of a DirectoryBackup into a new volume named after this resource, then a VolumeSnapshot of that volume (same name) that a DirectoryService can start from with spec.init.fromBackup.',
  spec: obj(
    'What to restore and where.',
    {
      backup: objectName('Name of the DirectoryBackup whose backup volume is restored (same namespace).'),
      image: image('ds'),
      imagePullPolicy: imagePullPolicy(),
      volumeSnapshotClassName: objectName('VolumeSnapshotClass for the final snapshot.'),
      storage: storage('10Gi'),
      resources: resources('requests cpu 250m, memory 512Mi and limit memory 1Gi'),
    },
    { required: ['backup', 'image'], 'x-kubernetes-validations': [immutable('spec of a restore')] },
  ),
  status: status(jobStatus()),
  rules: statefulName(),
  columns: [{ name: 'Backup', type: 'string', jsonPath: '.spec.backup' }, { name: 'Result', type: 'string', jsonPath: '.status.result' }, ...renderedColumns, ageColumn],
};

/** PostgreSQL majors `version` accepts: the oldest the PostgreSQL project still supports, up to a sanity bound. */
export const POSTGRES_VERSION_MIN = 14;
export const POSTGRES_VERSION_MAX = 99;
/** The major a PostgresInstance runs when it sets neither version nor image. */
export const DEFAULT_POSTGRES_VERSION = 16;

/**
 * PostgreSQL will not start on another major's data directory: a change of the
 * major (spec.version, or the default when neither it nor image is set) is
 * refused. An image is the user's to choose: its tag is not parsed (a regex
 * over it costs more than the API server's CEL budget allows).
 */
const postgresMajorUnchanged = {
  rule: `has(oldSelf.image) || has(self.image) || (has(self.version) ? self.version : ${DEFAULT_POSTGRES_VERSION}) == (has(oldSelf.version) ? oldSelf.version : ${DEFAULT_POSTGRES_VERSION})`,
  fieldPath: '.version',
  reason: 'FieldValueForbidden' as const,
  message:
    'the PostgreSQL major version cannot change in place: the new server will not start on the old data directory. To upgrade, create a new PostgresInstance with the new version, copy the data (pg_dumpall | psql, or pg_dump/pg_restore per database), point the PostgresDatabase resources at it and delete this one. A minor update comes with the same major (the official image of a major is updated in place; or set image to a minor tag)',
};

export const postgresInstance: KindDef = {
  kind: 'PostgresInstance',
  plural: 'postgresinstances',
  shortNames: ['pgi'],
  description: 'A PostgreSQL server: a StatefulSet with a volume, a headless and a client Service, and a ConfigMap of postgresql.conf parameters. kiln runs one primary; replicas is 0 (stopped) or 1.',
  spec: obj(
    'Desired state of the instance.',
    {
      version: int(
        `PostgreSQL major version, ${POSTGRES_VERSION_MIN} to ${POSTGRES_VERSION_MAX} (${POSTGRES_VERSION_MIN} is the oldest major the PostgreSQL project supports; the upper bound only catches typos): selects the official image docker.io/library/postgres:<version>, so a major without a published image fails when it is pulled. Default ${DEFAULT_POSTGRES_VERSION} when image is not set. A change to another major is refused (see the rule on spec).`,
        { minimum: POSTGRES_VERSION_MIN, maximum: POSTGRES_VERSION_MAX },
      ),
      image: image('postgres'),
      imagePullPolicy: imagePullPolicy(),
      replicas: replicas('1 to run the server, 0 to stop it (the volume stays). Streaming replicas are not supported yet. Default 1.', 1, 1),
      storage: storage('10Gi'),
      resources: resources('requests cpu 250m, memory 512Mi and limit memory 1Gi'),
      parameters: stringMap('postgresql.conf settings, e.g. max_connections: "200". listen_addresses, port, data_directory, hba_file and ident_file are kiln\'s.', { maxProperties: 256 }),
      service: obj(
        'The client Service.',
        {
          type: serviceType('the server'),
          port: int('Port of the client Service. Default 5432.', { minimum: 1, maximum: 65535, default: 5432 }),
          annotations: serviceAnnotations(),
        },
        { default: {} },
      ),
      superuserSecret: obj(
        'Secret with the superuser password. When omitted, the kiln agent generates <name>-superuser in the cluster.',
        {
          name: objectName('Secret name (same namespace).'),
          key: str('Key holding the password. Default password.', { minLength: 1, default: 'password' }),
        },
        { required: ['name'] },
      ),
      tls: obj(
        'Server TLS from a Secret you provide (e.g. made by cert-manager): ssl=on with its tls.crt, tls.key and ca.crt mounted; the kiln agent then connects with sslmode=verify-full against ca.crt, expecting the certificate to name <name>-client.<namespace>.svc.',
        { secretName: objectName('Secret (same namespace) with keys tls.crt, tls.key and ca.crt.') },
        { required: ['secretName'] },
      ),
      allowInsecureAuth: bool(
        "Let the kiln agent answer a cleartext or MD5 password request from this server. Honoured only in namespaces the agent's operator lists (--allow-insecure-auth-namespace); elsewhere the agent uses SCRAM-SHA-256 only and reports the request as Stalled. Default false.",
      ),
      scheduling: scheduling('postgres'),
      progressDeadlineSeconds: progressDeadlineSeconds(),
    },
    {
      'x-kubernetes-validations': [{ rule: '!(has(self.version) && has(self.image))', message: 'set version or image, not both' }, postgresMajorUnchanged],
    },
  ),
  status: status({ ...replicaStatus(), superuserSecret: objectName('Secret holding the superuser password.') }),
  rules: statefulName(),
  columns: [{ name: 'Version', type: 'integer', jsonPath: '.spec.version' }, { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' }, ...renderedColumns, ageColumn],
  scale: { specReplicasPath: '.spec.replicas' },
};

const PG_IDENTIFIER = '^[a-z_][a-z0-9_]{0,62}$';

export const postgresDatabase: KindDef = {
  kind: 'PostgresDatabase',
  plural: 'postgresdatabases',
  shortNames: ['pgdb'],
  description:
    'A database inside a PostgresInstance, with an owner role and a connection Secret <name>-connection (username, password, host, port, dbname, uri). The kiln agent does the work; nothing is rendered.',
  spec: obj(
    'The database.',
    {
      instance: objectName('Name of the PostgresInstance (same namespace). Immutable.'),
      name: str('Database name: lower-case letters, digits and _, at most 63 characters. Immutable.', {
        minLength: 1,
        maxLength: 63,
        pattern: PG_IDENTIFIER,
      }),
      owner: str('Owner role, created with LOGIN and a generated password. Default: the database name.', {
        minLength: 1,
        maxLength: 63,
        pattern: PG_IDENTIFIER,
      }),
      extensions: list(
        "Extensions to create in the database (CREATE EXTENSION IF NOT EXISTS ... SCHEMA public, as superuser): only those on the kiln agent's allowlist (--allowed-extension; by default the trusted contrib ones such as pgcrypto, citext, hstore, uuid-ossp, pg_trgm); any other makes the resource Stalled.",
        str('Extension name.', { maxLength: 63, pattern: '^[a-z_][a-z0-9_-]{0,62}$' }),
        {
          maxItems: 32,
          'x-kubernetes-list-type': 'set',
        },
      ),
      reclaimPolicy: enumOf('Retain keeps the database and role when the resource is deleted; Delete drops them. Default Retain.', ['Retain', 'Delete'], 'Retain'),
      dropWithForce: bool('With reclaimPolicy Delete, use DROP DATABASE ... WITH (FORCE), ending open sessions. Default false.', false),
      recreateIfDropped: bool('Re-create the database when it disappears. Default true.', true),
    },
    {
      required: ['instance', 'name'],
      'x-kubernetes-validations': [
        { rule: 'self.instance == oldSelf.instance', message: 'instance is immutable' },
        { rule: 'self.name == oldSelf.name', message: 'name is immutable' },
        { rule: "!(self.name in ['postgres', 'template0', 'template1'])", message: 'name may not be a system database', fieldPath: '.name' },
        { rule: "!has(self.owner) || !self.owner.startsWith('pg_')", message: 'owner may not start with pg_ (reserved for system roles)', fieldPath: '.owner' },
      ],
    },
  ),
  status: status({
    applied: bool('Whether the database is in the desired state.'),
    message: str('Last outcome of the agent, without secrets.', { maxLength: 32768 }),
    secretName: objectName('Connection Secret.'),
  }),
  columns: [{ name: 'Instance', type: 'string', jsonPath: '.spec.instance' }, { name: 'Database', type: 'string', jsonPath: '.spec.name' }, ...readyColumns, ageColumn],
};

export const cacheCluster: KindDef = {
  kind: 'CacheCluster',
  plural: 'cacheclusters',
  shortNames: ['cache'],
  description:
    'An in-memory data grid cluster: a StatefulSet of members whose first catalogServers members are catalog servers, a headless Service that publishes not-ready addresses (members need DNS before they are ready), and a ConfigMap listing the catalog servers. Volumes are deleted when members are removed. Every DataGrid naming it is mounted into the members at /opt/kiln/grids/<grid>.json; a change to one rolls them.',
  spec: obj(
    'Desired state of the cache.',
    {
      size: replicas('Number of members. Default 3.', 3),
      catalogServers: int('How many of the first members are catalog servers. At most size. Default 3.', { minimum: 1, default: 3 }),
      capacity: quantity('Memory each member gives to grid data, e.g. 4Gi. Default 1Gi.', '1Gi'),
      image: image('cache'),
      imagePullPolicy: imagePullPolicy(),
      resources: resources('requests cpu 500m and memory 1.5x capacity, limit memory 1.5x capacity'),
      env: env(),
      entrypointConfigMap: objectName('ConfigMap with the member entrypoint script (key entrypoint.sh), mounted at /opt/kiln/entrypoint with mode 0744.'),
      storage: storage('5Gi'),
      scheduling: scheduling('cache'),
      progressDeadlineSeconds: progressDeadlineSeconds(),
      clusterDomain: str('Cluster DNS domain used in member addresses. Default cluster.local.', {
        default: 'cluster.local',
        maxLength: 253,
        pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
      }),
    },
    {
      required: ['image'],
      'x-kubernetes-validations': [{ rule: 'self.catalogServers <= self.size || self.size == 0', message: 'catalogServers must not exceed size', fieldPath: '.catalogServers' }],
    },
  ),
  status: status({
    ...replicaStatus(),
    catalogServers: list('DNS names of the catalog servers.', str('DNS name.'), { 'x-kubernetes-list-type': 'atomic' }),
    members: list(
      'Each member pod (apply mode) and the DataGrids it serves, from its own pod: during a rollout a member still on the previous revision lists the grids of that revision.',
      obj('A member.', {
        name: objectName('The pod.'),
        grids: list('The DataGrids it mounts, by name.', objectName('A DataGrid.'), { maxItems: 256, 'x-kubernetes-list-type': 'atomic' }),
      }),
      { maxItems: 256, 'x-kubernetes-list-type': 'atomic' },
    ),
  }),
  rules: statefulName(),
  columns: [
    { name: 'Members', type: 'integer', jsonPath: '.spec.size' },
    { name: 'Ready-Members', type: 'integer', jsonPath: '.status.readyReplicas' },
    { name: 'Catalogs', type: 'integer', jsonPath: '.spec.catalogServers', priority: 1 },
    ...renderedColumns,
    ageColumn,
  ],
  scale: { specReplicasPath: '.spec.size' },
};

/**
 * The grid settings a DataGrid and a GridTemplate share. No schema defaults: a DataGrid's own
 * setting overrides its template's field by field, so a value admission filled in could not be
 * told from one the user set. The defaults are applied where the configuration is resolved
 * (kinds/data-grid/resolve.ts) and listed in each description.
 */
const gridSettings = (): Record<string, Schema> => ({
  gridType: camelEnum(
    'gridType',
    'Simple (key/value), Session (HTTP session store) or Dynamic (maps created on demand). Default Simple. The former lower-case spellings are refused.',
    ['Simple', 'Session', 'Dynamic'],
    { simple: 'Simple', session: 'Session', dynamic: 'Dynamic' },
  ),
  partitions: int('Number of partitions; must be a prime number (keys spread evenly only over a prime count). Default 13.', { minimum: 1, maximum: 10007 }),
  syncReplicas: int('Synchronous replicas of each partition. Default 0.', { minimum: 0, maximum: 9 }),
  asyncReplicas: int('Asynchronous replicas of each partition. Default 1.', { minimum: 0, maximum: 9 }),
  capacity: quantity('Memory the grid may use across the cluster, e.g. 2Gi.'),
  timeToLiveSeconds: int('Entries expire this many seconds after their last update; 0 keeps them. Default 0.', { minimum: 0 }),
  lockTimeoutSeconds: int('How long a transaction waits for a lock. Default 15.', { minimum: 1 }),
  transactionTimeoutSeconds: int('How long a transaction may run. Default 30.', { minimum: 1 }),
});
/** Checked where both are set; a sum that only a template and its DataGrid make together is checked when the DataGrid is rendered. */
const replicaSum: CelRule = {
  rule: '!has(self.syncReplicas) || !has(self.asyncReplicas) || self.syncReplicas + self.asyncReplicas <= 9',
  message: 'syncReplicas + asyncReplicas must be at most 9',
};

export const dataGrid: KindDef = {
  kind: 'DataGrid',
  plural: 'datagrids',
  shortNames: ['grid'],
  description:
    'A data grid hosted by a CacheCluster: rendered to a ConfigMap <cache>-grid-<name> labelled kiln.dev/cache=<cache> (grid.json), which the CacheCluster mounts into its members as /opt/kiln/grids/<name>.json. Settings not given here come from spec.template, then from the defaults.',
  spec: obj(
    'The grid configuration.',
    {
      cache: objectName('Name of the CacheCluster (same namespace). Immutable.'),
      template: objectName(
        'Name of a GridTemplate (same namespace) to start from: every setting this DataGrid does not give is taken from it. Until it exists the DataGrid is not Ready and its members do not mount it.',
      ),
      ...gridSettings(),
    },
    { required: ['cache'], 'x-kubernetes-validations': [{ rule: 'self.cache == oldSelf.cache', message: 'cache is immutable' }, replicaSum] },
  ),
  status: status(),
  rules: [
    {
      // <cache>-grid-<name> must be an object name (253), and <name>.json a file name (255).
      rule: 'self.metadata.name.size() + self.spec.cache.size() <= 247',
      message: 'metadata.name and spec.cache together may have at most 247 characters (they name the ConfigMap <cache>-grid-<name>)',
    },
  ],
  columns: [
    { name: 'Cache', type: 'string', jsonPath: '.spec.cache' },
    { name: 'Template', type: 'string', jsonPath: '.spec.template' },
    { name: 'Type', type: 'string', jsonPath: '.spec.gridType', priority: 1 },
    { name: 'Partitions', type: 'integer', jsonPath: '.spec.partitions', priority: 1 },
    ...renderedColumns,
    ageColumn,
  ],
};

export const gridTemplate: KindDef = {
  kind: 'GridTemplate',
  plural: 'gridtemplates',
  shortNames: ['gridtmpl'],
  description:
    'A reusable data grid definition: DataGrids of this namespace that name it in spec.template take every setting they do not give themselves from it. It renders nothing of its own; a change to it re-renders the DataGrids that use it and rolls the members of their CacheClusters.',
  spec: obj('Grid settings, every one optional, with the defaults of a DataGrid.', gridSettings(), { 'x-kubernetes-validations': [replicaSum] }),
  status: status(),
  columns: [{ name: 'Type', type: 'string', jsonPath: '.spec.gridType' }, { name: 'Partitions', type: 'integer', jsonPath: '.spec.partitions' }, ...readyColumns, ageColumn],
};

export const configMapSync: KindDef = {
  kind: 'ConfigMapSync',
  plural: 'configmapsyncs',
  shortNames: ['cms'],
  description:
    'Copies of one ConfigMap in tenant namespaces. Every read and write is made with the rights of spec.serviceAccountName, so a tenant reaches only where its account may write. Copies carry ownership labels, are pruned when a namespace stops being a target, and a ConfigMap kiln does not own is never overwritten.',
  spec: obj(
    'What to copy where.',
    {
      source: obj(
        'The ConfigMap to copy.',
        {
          name: objectName('Name of the source ConfigMap.'),
          namespace: namespaceName("Namespace of the source. Default: this resource's namespace."),
        },
        { required: ['name'] },
      ),
      targets: obj(
        'Namespaces that receive a copy: the listed ones plus those matching the selector.',
        {
          namespaces: list('Target namespaces by name.', namespaceName('A namespace.'), { maxItems: 256, 'x-kubernetes-list-type': 'set' }),
          namespaceSelector: obj('Label selector over namespaces.', {
            matchLabels: stringMap('Labels a namespace must carry.', { maxProperties: 32 }),
            matchExpressions: list(
              'Set-based requirements.',
              obj(
                'A requirement.',
                {
                  key: str('Label key.', { maxLength: 316 }),
                  operator: enumOf('In, NotIn, Exists or DoesNotExist.', ['In', 'NotIn', 'Exists', 'DoesNotExist']),
                  values: list('Values for In and NotIn.', str('A value.', { maxLength: 63 }), { maxItems: 64, 'x-kubernetes-list-type': 'atomic' }),
                },
                { required: ['key', 'operator'] },
              ),
              { maxItems: 16, 'x-kubernetes-list-type': 'atomic' },
            ),
          }),
        },
        {
          'x-kubernetes-validations': [
            {
              rule: '(has(self.namespaces) && self.namespaces.size() > 0) || has(self.namespaceSelector)',
              message: 'targets needs namespaces or a namespaceSelector',
            },
          ],
        },
      ),
      serviceAccountName: str("ServiceAccount in this resource's namespace whose rights every read and write uses.", {
        minLength: 1,
        maxLength: 253,
        pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
      }),
    },
    { required: ['source', 'targets', 'serviceAccountName'] },
  ),
  status: status({
    synced: list('Namespaces holding a current copy.', namespaceName('A namespace.'), { 'x-kubernetes-list-type': 'atomic' }),
    failed: list(
      'Targets that could not be written, with the reason.',
      obj('A failed target.', {
        namespace: namespaceName('The namespace.'),
        reason: str('Why (e.g. the RBAC denial).', { maxLength: 4096 }),
      }),
      { 'x-kubernetes-list-type': 'atomic' },
    ),
  }),
  columns: [{ name: 'Source', type: 'string', jsonPath: '.spec.source.name' }, ...readyColumns, ageColumn],
};

/** The memcached image when spec.image is unset (the operator-sdk tutorial's choice of the official image). */
export const DEFAULT_MEMCACHED_IMAGE = 'docker.io/library/memcached:1.6.38-alpine';

export const memcached: KindDef = {
  kind: 'Memcached',
  plural: 'memcacheds',
  shortNames: ['mc'],
  description:
    'A memcached pool (the operator-sdk tutorial kind): a Deployment of spec.size memcached pods and a Service <name> on port 11211. Stateless: a pod replaced is an empty cache. status.nodes lists the pods.',
  spec: obj('Desired state of the pool.', {
    size: replicas('Number of memcached pods. Default 1.', 1, 100),
    image: str(`Container image of memcached. Default ${DEFAULT_MEMCACHED_IMAGE}.`, { minLength: 1, maxLength: 512, default: DEFAULT_MEMCACHED_IMAGE }),
    imagePullPolicy: imagePullPolicy(),
    memoryMegabytes: int('Item memory of each pod in megabytes (memcached -m). Default 64.', { minimum: 1, maximum: 65536, default: 64 }),
    maxConnections: int('Simultaneous connections each pod accepts (memcached -c). Default 1024.', { minimum: 1, maximum: 65536, default: 1024 }),
    resources: resources('requests cpu 100m and memory memoryMegabytes + 32Mi, limit memory memoryMegabytes + 32Mi'),
    scheduling: scheduling('memcached'),
    progressDeadlineSeconds: progressDeadlineSeconds(),
  }),
  status: status({
    ...replicaStatus(),
    nodes: list('Names of the pods the Deployment runs now, sorted (the operator-sdk tutorial status).', objectName('A pod name.'), { maxItems: 256, 'x-kubernetes-list-type': 'atomic' }),
  }),
  rules: [
    {
      rule: "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
      message: 'metadata.name must be a DNS label starting with a letter (it names a Deployment and a Service)',
    },
  ],
  columns: [{ name: 'Size', type: 'integer', jsonPath: '.spec.size' }, { name: 'Ready-Pods', type: 'integer', jsonPath: '.status.readyReplicas' }, ...renderedColumns, ageColumn],
  scale: { specReplicasPath: '.spec.size' },
};

/** The etcd release an EtcdCluster runs when it sets no version (the one the test harness builds). */
export const DEFAULT_ETCD_VERSION = '3.6.4';
/** etcd v3 releases: major 3, no leading zeros (the agent and the CEL rule compare the numbers). */
const ETCD_VERSION_PATTERN = '^3\\.(0|[1-9][0-9]?)\\.(0|[1-9][0-9]?)$';
const etcdMinor = (v: string) => `int(${v}.split('.')[1])`;

/**
 * etcd supports upgrading one minor version at a time and no downgrade of a
 * minor (its cluster version only moves up). Transition rules: the API server
 * refuses the change before anything rolls. The pattern bounds the string, so
 * split() stays cheap.
 */
const etcdVersionRules = [
  {
    rule: `${etcdMinor('self')} >= ${etcdMinor('oldSelf')}`,
    reason: 'FieldValueForbidden' as const,
    message: 'etcd cannot be downgraded to an older minor version (the cluster version only moves up); restore a snapshot into a new EtcdCluster instead',
  },
  {
    rule: `${etcdMinor('self')} <= ${etcdMinor('oldSelf')} + 1`,
    reason: 'FieldValueForbidden' as const,
    message: 'etcd upgrades one minor version at a time: change version to the next minor first (e.g. 3.5.x -> 3.6.y)',
  },
];

export const etcdCluster: KindDef = {
  kind: 'EtcdCluster',
  plural: 'etcdclusters',
  shortNames: ['etcdc'],
  description:
    'An etcd cluster: a StatefulSet of members (stable names <name>-<i>), a headless peer Service, a <name>-client Service and a PodDisruptionBudget that keeps quorum. The kiln agent owns membership through the etcd API: it adds a member before the StatefulSet grows and removes one before it shrinks, one at a time and only while every member is healthy, and writes the members it knows into the ConfigMap <name>-members that the pods read.',
  spec: obj('Desired state of the cluster.', {
    size: int('Number of members, 1 to 9. Odd sizes tolerate as many failures as the next even size with fewer members to agree. Default 3.', { minimum: 1, maximum: 9, default: 3 }),
    version: str(
      `etcd version, 3.<minor>.<patch>; selects the image gcr.io/etcd-development/etcd:v<version> unless image is set. Default ${DEFAULT_ETCD_VERSION}. A downgrade of the minor version or a skipped minor is refused.`,
      {
        maxLength: 8,
        pattern: ETCD_VERSION_PATTERN,
        default: DEFAULT_ETCD_VERSION,
        'x-kubernetes-validations': etcdVersionRules,
      },
    ),
    image: image('etcd'),
    imagePullPolicy: imagePullPolicy(),
    storage: storage('8Gi'),
    resources: resources('requests cpu 250m, memory 512Mi and limit memory 1Gi'),
    tls: obj(
      'TLS you bring (e.g. made by cert-manager): Secrets with tls.crt, tls.key and ca.crt. Certificates must name <name>-<i>.<name>.<namespace>.svc (peer) and <name>-client.<namespace>.svc plus the member names (client).',
      {
        peerSecret: objectName('Secret for member-to-member TLS (peer URLs become https, client certificates required).'),
        clientSecret: objectName("Secret for the client URLs (https, client certificates required); the kiln agent connects with this Secret's certificate."),
      },
    ),
    scheduling: scheduling('etcd'),
    progressDeadlineSeconds: progressDeadlineSeconds(),
  }),
  status: status({
    ...replicaStatus(),
    members: list(
      'Members as the etcd API reports them (kiln agent).',
      obj('A member.', {
        id: str('Member ID, hexadecimal.', { maxLength: 16 }),
        name: str('Member name (the pod name).', { maxLength: 253 }),
        leader: bool('Whether it leads the cluster.'),
        version: str('etcd version it runs.', { maxLength: 32 }),
        healthy: bool('Whether its status endpoint answered.'),
        dbSize: { type: 'integer', format: 'int64', description: 'Size of its backend database in bytes.' },
      }),
      { maxItems: 16, 'x-kubernetes-list-type': 'atomic' },
    ),
    lastSnapshot: obj('The snapshot the agent took before the last version change.', {
      name: str("File name in the agent's snapshot directory.", { maxLength: 253 }),
      size: { type: 'integer', format: 'int64', description: 'Bytes.' },
      revision: { type: 'integer', format: 'int64', description: 'Revision of the store when it was taken.' },
      time: { type: 'string', format: 'date-time', description: 'When it was taken.' },
      version: str('etcd version the cluster ran.', { maxLength: 32 }),
    }),
  }),
  rules: statefulName(),
  columns: [
    { name: 'Size', type: 'integer', jsonPath: '.spec.size' },
    { name: 'Ready-Members', type: 'integer', jsonPath: '.status.readyReplicas' },
    { name: 'Version', type: 'string', jsonPath: '.spec.version' },
    ...renderedColumns,
    ageColumn,
  ],
  scale: { specReplicasPath: '.spec.size' },
};

export const KINDS: KindDef[] = [directoryService, directoryBackup, directoryRestore, postgresInstance, postgresDatabase, cacheCluster, dataGrid, gridTemplate, configMapSync, memcached, etcdCluster];

export { DNS_LABEL };
