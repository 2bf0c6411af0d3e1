/** Schema fragments shared by several kinds: one definition, one meaning. */
import { bool, camelEnum, enumOf, int, intOrQuantity, list, namespaceName, obj, objectName, quantity, str, stringMap, type Schema } from './builders.js';

export const image = (what: string): Schema =>
  str(`Container image for ${what}, e.g. registry.example.com/${what}:1.2.3.`, {
    minLength: 1,
    maxLength: 512,
  });

export const imagePullPolicy = (): Schema => enumOf('When the kubelet pulls the image (Always, IfNotPresent, Never). Default IfNotPresent.', ['Always', 'IfNotPresent', 'Never'], 'IfNotPresent');

const resourceList = (what: string): Schema => ({
  type: 'object',
  description: `${what}, keyed by resource name (cpu, memory, ephemeral-storage, ...).`,
  additionalProperties: intOrQuantity('A resource quantity, e.g. 500m or 2Gi.'),
  maxProperties: 16,
});

export const resources = (defaults: string): Schema =>
  obj(`Compute resources of the main container. When omitted kiln sets ${defaults}; kiln never leaves them unset.`, {
    requests: resourceList('Minimum resources the scheduler reserves'),
    limits: resourceList('Maximum resources the container may use'),
  });

const keyRef = (what: string): Schema =>
  obj(
    `Selects a key of a ${what}.`,
    {
      name: objectName(`Name of the ${what} in the resource's namespace.`),
      key: str(`Key within the ${what}.`, { minLength: 1 }),
      optional: bool(`Whether the ${what} or its key may be missing.`),
    },
    { required: ['name', 'key'] },
  );

export const env = (): Schema =>
  list(
    'Extra environment variables of the main container. Names kiln sets itself cannot be overridden.',
    obj(
      'One environment variable: a literal value or a reference.',
      {
        name: str('Variable name.', { minLength: 1, maxLength: 256, pattern: '^[-._a-zA-Z][-._a-zA-Z0-9]*$' }),
        value: str('Literal value.', { maxLength: 32768 }),
        valueFrom: obj(
          'Source of the value when it is not a literal.',
          {
            secretKeyRef: keyRef('Secret'),
            configMapKeyRef: keyRef('ConfigMap'),
            fieldRef: obj('A field of the pod, e.g. metadata.name.', { fieldPath: str('Path of the field, e.g. metadata.name or status.podIP.', { minLength: 1 }) }, { required: ['fieldPath'] }),
          },
          {
            'x-kubernetes-validations': [
              {
                rule: '[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)].filter(x, x).size() == 1',
                message: 'valueFrom must name exactly one of secretKeyRef, configMapKeyRef, fieldRef',
              },
            ],
          },
        ),
      },
      {
        required: ['name'],
        'x-kubernetes-validations': [{ rule: '!(has(self.value) && has(self.valueFrom))', message: 'value and valueFrom are mutually exclusive' }],
      },
    ),
    { maxItems: 128, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] },
  );

export const envFrom = (): Schema =>
  list(
    'Sources of environment variables for the main container, each a whole ConfigMap or Secret.',
    obj(
      'A ConfigMap or a Secret whose keys become variables.',
      {
        prefix: str('Prefix added to every variable name.', { maxLength: 64 }),
        configMapRef: obj('A ConfigMap.', { name: objectName('ConfigMap name.'), optional: bool('Whether it may be missing.') }, { required: ['name'] }),
        secretRef: obj('A Secret.', { name: objectName('Secret name.'), optional: bool('Whether it may be missing.') }, { required: ['name'] }),
      },
      {
        'x-kubernetes-validations': [{ rule: 'has(self.configMapRef) != has(self.secretRef)', message: 'exactly one of configMapRef and secretRef' }],
      },
    ),
    { maxItems: 32, 'x-kubernetes-list-type': 'atomic' },
  );

export const storage = (dflt: string, extra: Record<string, Schema> = {}): Schema =>
  obj(
    'The persistent volume each member claims. The claim outlives the resource unless stated otherwise.',
    {
      size: quantity(`Requested size of each volume, e.g. 100Gi. Default ${dflt}.`, dflt),
      storageClassName: objectName('StorageClass of the volumes. Default: the cluster default class.'),
      ...extra,
    },
    { default: {} },
  );

const toleration = (): Schema =>
  obj('A toleration, as in a Pod spec.', {
    key: str('Taint key to tolerate; empty with Exists tolerates everything.', { maxLength: 316 }),
    operator: enumOf('Exists or Equal (default Equal).', ['Exists', 'Equal']),
    value: str('Taint value for Equal.', { maxLength: 63 }),
    effect: enumOf('Taint effect to match; empty matches all.', ['NoSchedule', 'PreferNoSchedule', 'NoExecute']),
    tolerationSeconds: { type: 'integer', format: 'int64', description: 'For NoExecute: how long the pod stays bound after the taint appears.' },
  });

/** The taint key of nodes set aside for kiln's members: `kiln.dev/dedicated=<value>:NoSchedule`. */
export const DEDICATED_TAINT_KEY = 'kiln.dev/dedicated';

export const scheduling = (dedicatedKey: string): Schema =>
  obj(
    'Where the members run.',
    {
      tolerateDedicatedNodes: bool(
        `Tolerate nodes tainted ${DEDICATED_TAINT_KEY}=${dedicatedKey}:NoSchedule (kubectl taint nodes <node> ${DEDICATED_TAINT_KEY}=${dedicatedKey}:NoSchedule), so the members can use nodes set aside for them. Default true.`,
        true,
      ),
      antiAffinity: camelEnum(
        'antiAffinity',
        'Spread members over nodes: Soft (preferred), Hard (required; members stay Pending when there are fewer nodes than members) or None. Default Soft. The former lower-case spellings are refused.',
        ['Soft', 'Hard', 'None'],
        { soft: 'Soft', hard: 'Hard', none: 'None' },
        'Soft',
      ),
      nodeSelector: stringMap('Labels a node must carry to run a member.', { maxProperties: 32 }),
      tolerations: list('Extra tolerations.', toleration(), { maxItems: 32, 'x-kubernetes-list-type': 'atomic' }),
      priorityClassName: objectName('PriorityClass of the pods.'),
    },
    { default: {} },
  );

export const serviceType = (what: string): Schema =>
  enumOf(
    `Type of the client Service in front of ${what}: ClusterIP, LoadBalancer, NodePort, or None for no client Service (the headless Service is always there). Default ClusterIP.`,
    ['ClusterIP', 'LoadBalancer', 'NodePort', 'None'],
    'ClusterIP',
  );

export const serviceAnnotations = (): Schema => stringMap('Annotations for the client Service (load balancer settings, for example).', { maxProperties: 64 });

export const replicas = (description: string, dflt: number, max?: number): Schema => int(description, { minimum: 0, default: dflt, ...(max === undefined ? {} : { maximum: max }) });

const condition = (): Schema =>
  obj(
    "A kstatus condition (Ready, Reconciling, Stalled, and the agent's own).",
    {
      type: str('Condition type.', { maxLength: 316 }),
      status: enumOf('True, False or Unknown.', ['True', 'False', 'Unknown']),
      observedGeneration: { type: 'integer', format: 'int64', description: 'Generation the condition was computed for.' },
      lastTransitionTime: { type: 'string', format: 'date-time', description: 'When the status last changed.' },
      reason: str('CamelCase reason.', { maxLength: 1024 }),
      message: str('Human-readable detail.', { maxLength: 32768 }),
    },
    { required: ['type', 'status'] },
  );

const inventoryEntry = (): Schema =>
  obj('An object kiln applied for this resource.', {
    apiVersion: str('API version of the object.'),
    kind: str('Kind of the object.'),
    namespace: namespaceName('Namespace of the object; empty for cluster-scoped objects.'),
    name: str('Name of the object.'),
    ownedFieldsDigest: str(
      "Digest of the values kiln's field manager owns in the object, as the API server last returned them: a restarted controller confirms the object unchanged from it without reading the object.",
      { maxLength: 64 },
    ),
  });

/** Status common to every kind; `extra` adds the kind's own fields. */
export const status = (extra: Record<string, Schema> = {}): Schema =>
  obj('Observed state, written by the kiln controller and the kiln agent.', {
    observedGeneration: { type: 'integer', format: 'int64', description: 'The metadata.generation the controller last acted on.' },
    conditions: list("kstatus conditions: Ready, Reconciling, Stalled, plus the agent's.", condition(), {
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    }),
    inventory: list('Objects applied for this resource (apply mode).', inventoryEntry(), { 'x-kubernetes-list-type': 'atomic' }),
    revision: str('Digest of the rendered objects last delivered.'),
    commit: str('Git commit holding the rendered objects (git mode).'),
    pullRequest: str('URL of the pull request carrying the change (git mode, review).', { maxLength: 2048 }),
    ...extra,
  });

export const replicaStatus = (): Record<string, Schema> => ({
  replicas: int('Members the StatefulSet currently has.'),
  readyReplicas: int('Members that are ready.'),
  selector: str('Label selector of the members, for the scale subresource.', { maxLength: 4096 }),
  rollout: obj('The rollout in progress (absent once every member runs the current revision and is ready).', {
    members: str('What the StatefulSet last reported, e.g. "2/3 members ready, 3/3 updated".', { maxLength: 256 }),
    lastProgressTime: { type: 'string', format: 'date-time', description: 'When members last changed; spec.progressDeadlineSeconds counts from here.' },
  }),
});

/** How long a rollout may make no progress before the resource is Stalled (ProgressDeadlineExceeded). */
export const progressDeadlineSeconds = (): Schema =>
  int(
    "Seconds a rollout may go without progress (a member becoming ready or updated) before the resource is reported Stalled with reason ProgressDeadlineExceeded; the rollout itself goes on. Default 600, as a Deployment's.",
    { minimum: 1, default: 600 },
  );
