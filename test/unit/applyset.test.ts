import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  APPLYSET_GROUP_KINDS,
  APPLYSET_ID,
  APPLYSET_TOOLING,
  applySetId,
  belongsTo,
  childCodec,
  contains,
  decorate,
  describeForeign,
  DESIRED_DIGEST,
  drift,
  Interner,
  ownedDigest,
  ownedFieldsDrift,
  OwnWrites,
  PART_OF,
  parentMetadata,
  pickFields,
  projectChild,
  projectedOwnedDigest,
  prunable,
  VERIFY,
} from '../../controller/apply/applyset.js';
import type { KubeObject } from '../../kube/informer.js';
import { statusUpToDate, withTransitionTimes } from '../../kube/status.js';

const parent = { apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g', namespace: 'ns', uid: 'u-1' }, spec: {} };

describe('ApplySet', () => {
  it('ids follow KEP-3659: base64url(sha256(name.namespace.Kind.group)), prefixed and versioned', () => {
    // sha256("g.ns.DataGrid.kiln.dev"), base64url without padding
    expect(applySetId(parent)).toMatch(/^applyset-[A-Za-z0-9_-]{43}-v1$/);
    expect(applySetId(parent)).not.toBe(applySetId({ ...parent, metadata: { ...parent.metadata, namespace: 'other' } }));
  });

  it('decorates children with membership, a controller ownerReference and a digest of the rest', () => {
    const d = decorate({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'ns' } }, parent, 'id-1');
    expect(d.metadata.labels).toEqual({ [PART_OF]: 'id-1' });
    expect(d.metadata['ownerReferences']).toEqual([{ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', name: 'g', uid: 'u-1', controller: true, blockOwnerDeletion: true }]);
    expect(d.metadata.annotations![DESIRED_DIGEST]).toMatch(/^[0-9a-f]{32}$/);
    const other = decorate({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'elsewhere' } }, parent, 'id-1');
    expect(other.metadata['ownerReferences']).toBeUndefined(); // ownerReferences cannot cross namespaces
  });

  it('compares live with desired the way the API server returns objects', () => {
    expect(contains({ a: 1, b: 2 }, { a: 1 })).toBe(true);
    expect(contains({ a: 1 }, { a: 2 })).toBe(false);
    expect(contains({ cpu: '1', memory: '1536Mi' }, { cpu: 1, memory: '1.5Gi' })).toBe(true); // canonical quantities
    expect(contains({}, { publishNotReadyAddresses: false, volumes: [], emptyDir: {} })).toBe(true); // omitempty
    expect(contains({ l: [1, 2, 3] }, { l: [1, 2] })).toBe(true);
    expect(contains({ l: [1] }, { l: [1, 2] })).toBe(false);
  });

  it('says why an object drifted', () => {
    const desired = decorate({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'ns' }, data: { k: 'v' } }, parent, 'id');
    const live = JSON.parse(JSON.stringify(desired)) as KubeObject;
    expect(drift(live, desired)).toBeUndefined();
    (live as unknown as { data: Record<string, string> }).data.k = 'changed by hand';
    expect(drift(live, desired)).toBe('.data.k: "changed by hand" != "v"');
    expect(drift(undefined, desired)).toBe('absent');
  });

  it('prunes only what kiln applied, never claims, never what another controller owns', () => {
    const member = (extra: Partial<KubeObject['metadata']>, kind = 'Service'): KubeObject => ({ kind, metadata: { name: 'x', managedFields: [{ manager: 'kiln', operation: 'Apply' }], ...extra } });
    expect(prunable(member({}), 'u-1')).toBe(true);
    expect(prunable(member({ ownerReferences: [{ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', name: 'g', uid: 'u-1', controller: true }] }), 'u-1')).toBe(true);
    expect(prunable(member({ managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update' }] }), 'u-1')).toBe(false);
    expect(prunable(member({}, 'PersistentVolumeClaim'), 'u-1')).toBe(false);
    expect(prunable(member({ ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 's', uid: 'u-2', controller: true }] }), 'u-1')).toBe(false);
  });
});

describe('status', () => {
  it('keeps lastTransitionTime unless the status flips, and is up to date whatever the key order', () => {
    const live = [{ type: 'Ready', status: 'True' as const, reason: 'Applied', message: 'm', observedGeneration: 1, lastTransitionTime: '2020-01-01T00:00:00Z' }];
    const same = withTransitionTimes([{ type: 'Ready', status: 'True', reason: 'Applied', message: 'm', observedGeneration: 1 }], live);
    expect(same[0]!.lastTransitionTime).toBe('2020-01-01T00:00:00Z');
    const flipped = withTransitionTimes([{ type: 'Ready', status: 'False', reason: 'X', message: 'm', observedGeneration: 1 }], live);
    expect(flipped[0]!.lastTransitionTime).not.toBe('2020-01-01T00:00:00Z');
    expect(statusUpToDate({ conditions: live, inventory: [{ name: 'a', kind: 'K' }] }, { conditions: same, inventory: [{ kind: 'K', name: 'a' }] })).toBe(true);
    expect(statusUpToDate({ conditions: live }, { conditions: flipped })).toBe(false);
  });
});

describe('kiln controller', () => {
  it('exits with a clear error when no cluster configuration is found (never localhost:8080)', () => {
    const home = mkdtempSync(join(tmpdir(), 'kiln-home-'));
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, KUBECONFIG: '' };
    delete env['KUBERNETES_SERVICE_HOST'];
    const r = spawnSync(process.execPath, [new URL('../../bin/kiln.js', import.meta.url).pathname, 'controller', '--health-probe-bind-address', '0'], { env, encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no cluster configuration found');
  });
});

describe('child projection', () => {
  const desired = decorate(
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 's', namespace: 'ns', labels: { app: 'x' } },
      spec: { replicas: 3, template: { spec: { containers: [{ name: 'c', image: 'i:1', resources: { requests: { memory: '1.5Gi' } } }] } } },
    },
    parent,
    'id',
  );
  const fieldsV1 = {
    'f:metadata': { 'f:labels': { 'f:app': {}, [`f:${PART_OF}`]: {} }, 'f:annotations': { [`f:${DESIRED_DIGEST}`]: {} }, 'f:ownerReferences': { 'k:{"uid":"u-1"}': {} } },
    'f:spec': { 'f:replicas': {}, 'f:template': { 'f:spec': { 'f:containers': { 'k:{"name":"c"}': { '.': {}, 'f:name': {}, 'f:image': {}, 'f:resources': { 'f:requests': { 'f:memory': {} } } } } } } },
  };
  const liveObject = (replicasOwner = 'kiln', replicas = 3) => {
    const d = JSON.parse(JSON.stringify(desired)) as KubeObject & { spec: Record<string, unknown> };
    d.metadata = { ...d.metadata, uid: 'c-1', resourceVersion: '7', labels: { ...d.metadata.labels, extra: 'dropped' } };
    d.spec = {
      ...d.spec,
      replicas,
      revisionHistoryLimit: 10,
      template: { spec: { containers: [{ name: 'c', image: 'i:1', imagePullPolicy: 'IfNotPresent', resources: { requests: { memory: '1536Mi' } } }] } },
    };
    const kilnFields = replicasOwner === 'kiln' ? fieldsV1 : { ...fieldsV1, 'f:spec': { ...fieldsV1['f:spec'], 'f:replicas': undefined } };
    d.metadata.managedFields = [
      { manager: 'kiln', operation: 'Apply', fieldsV1: JSON.parse(JSON.stringify(kilnFields)) } as never,
      ...(replicasOwner === 'kiln' ? [] : [{ manager: replicasOwner, operation: 'Update', fieldsV1: { 'f:spec': { 'f:replicas': {} } } } as never]),
    ];
    d.metadata.generation = 4;
    (d as Record<string, unknown>)['status'] = { replicas: 3, readyReplicas: 2, updatedReplicas: 3, observedGeneration: 4, currentRevision: 'r', updateRevision: 'r', collisionCount: 0 };
    return d;
  };

  it('keeps identity, membership, the digests and the status the reconciler reads, not the owned values', () => {
    const live = liveObject();
    const p = projectChild(live);
    expect(p.metadata.labels).toEqual({ [PART_OF]: 'id' });
    expect(p.metadata.managedFields).toEqual([{ manager: 'kiln', operation: 'Apply' }]);
    // The rollout fields; revisions only while they differ (a rollout in progress).
    expect(p['status']).toEqual({ replicas: 3, readyReplicas: 2, updatedReplicas: 3, observedGeneration: 4 });
    expect(p.metadata.generation).toBe(4);
    const rolling = liveObject();
    (rolling as Record<string, unknown>)['status'] = { replicas: 3, readyReplicas: 3, updatedReplicas: 1, currentRevision: 'a', updateRevision: 'b' };
    expect(projectChild(rolling)['status']).toEqual({ replicas: 3, readyReplicas: 3, updatedReplicas: 1, currentRevision: 'a', updateRevision: 'b' });
    expect(JSON.stringify(p)).not.toContain('i:1');
    expect(projectedOwnedDigest(p)).toBe(ownedDigest(live));
    // In sync when the digest is the one recorded; otherwise only the full object can tell.
    expect(drift(p, desired, ownedDigest(live))).toBeUndefined();
    expect(drift(p, desired, undefined)).toBe(VERIFY);
    expect(drift(p, desired, 'another')).toBe(VERIFY);
    expect(ownedFieldsDrift(live, desired)).toBeUndefined();
  });

  it('a change to an owned value changes the digest', () => {
    const edited = liveObject();
    (edited.spec as { template: { spec: { containers: { image: string }[] } } }).template.spec.containers[0]!.image = 'i:2';
    expect(ownedDigest(edited)).not.toBe(ownedDigest(liveObject()));
    expect(ownedFieldsDrift(edited, desired)).toMatch(/image/);
  });

  it('the cache codec gives back the projection it was given', () => {
    const p = projectChild(liveObject());
    const type = { apiVersion: p.apiVersion!, kind: p.kind! };
    const back = childCodec.decode(childCodec.encode(p), type);
    expect(back).toEqual(p);
    expect(drift(back, desired, ownedDigest(liveObject()))).toBeUndefined();
    expect(childCodec.encode(back).length).toBeLessThan(JSON.stringify(back).length / 2);
    const bare = projectChild({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x', namespace: 'n', labels: { other: 'y' } } });
    expect(childCodec.decode(childCodec.encode(bare), { apiVersion: 'v1', kind: 'Service' })).toEqual(bare);
  });

  it('a field another manager took over is drift', () => {
    const taken = liveObject('kubectl-edit', 5);
    expect(ownedFieldsDrift(taken, desired)).toMatch(/replicas/);
    expect(ownedDigest(taken)).not.toBe(ownedDigest(liveObject()));
  });

  it('picks list items by key, value and index', () => {
    expect(
      pickFields(
        [
          { name: 'a', x: 1, y: 2 },
          { name: 'b', x: 3 },
        ],
        { 'k:{"name":"b"}': { 'f:x': {} } },
      ),
    ).toEqual([{ x: 3 }]);
    expect(pickFields(['p', 'q'], { 'v:"q"': {} })).toEqual(['q']);
    expect(pickFields(['p', 'q'], { 'i:0': {} })).toEqual(['p']);
  });
});

describe('ownership and own writes', () => {
  const parent = { metadata: { uid: 'u-1' } };
  const id = 'applyset-x-v1';
  const obj = (meta: Partial<KubeObject['metadata']>): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's', namespace: 'n', ...meta } });

  it('belongsTo: only an object whose controller is the resource (by UID), or a member of its ApplySet without a controller', () => {
    expect(belongsTo(obj({ ownerReferences: [{ apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', name: 'd', uid: 'u-1', controller: true }] }), parent, id)).toBe(true);
    // Same kind and name, another UID: an earlier resource of that name (or a forgery).
    expect(belongsTo(obj({ ownerReferences: [{ apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', name: 'd', uid: 'u-0', controller: true }] }), parent, id)).toBe(false);
    expect(belongsTo(obj({ labels: { [PART_OF]: id } }), parent, id)).toBe(true);
    expect(belongsTo(obj({ labels: { 'app.kubernetes.io/managed-by': 'kiln' } }), parent, id)).toBe(false);
    expect(belongsTo(obj({}), parent, id)).toBe(false);
    expect(describeForeign(obj({}))).toBe('Service n/s exists and was not created by kiln for this resource');
  });

  it('OwnWrites: an own write is used once by its watch event, and forgotten when the object is deleted', () => {
    const writes = new OwnWrites();
    const desired = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's', namespace: 'n' } };
    writes.record(obj({ resourceVersion: '7' }), desired, '6');
    expect(writes.size).toBe(1);
    expect(writes.take('v1/Service/n/s', '6')).toBeUndefined();
    writes.forget(desired);
    expect(writes.size).toBe(0);
    writes.record(obj({ resourceVersion: '8' }), desired, '7');
    expect(writes.take('v1/Service/n/s', '8')).toBeDefined();
    expect(writes.size).toBe(0);
  });
});

describe('ApplySet parts', () => {
  it('parentMetadata: nothing to write when the parent says it all; recorded group-kinds are kept', () => {
    const id = 'applyset-x-v1';
    const have = { metadata: { labels: { [APPLYSET_ID]: id }, annotations: { [APPLYSET_TOOLING]: 'kiln/1', [APPLYSET_GROUP_KINDS]: 'ConfigMap,StatefulSet.apps' } } };
    expect(parentMetadata(have, id, ['StatefulSet.apps'], 'kiln/1')).toBeUndefined();
    expect(parentMetadata(have, id, ['Service'], 'kiln/1')?.annotations[APPLYSET_GROUP_KINDS]).toBe('ConfigMap,Service,StatefulSet.apps');
    expect(parentMetadata(have, id, ['ConfigMap'], 'kiln/2')?.annotations[APPLYSET_TOOLING]).toBe('kiln/2');
  });

  it('projectChild interns with the Interner it is given: two managers keep their own', () => {
    const child = () => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x', namespace: 'tenant-a', labels: {} } }) as KubeObject;
    const one = new Interner();
    const two = new Interner();
    const a = projectChild(child(), undefined, one);
    const b = projectChild(child(), undefined, one);
    expect(one.size).toBe(1);
    expect(two.size).toBe(0);
    expect(a.metadata.namespace).toBe(b.metadata.namespace);
    projectChild(child(), undefined, two);
    expect(two.size).toBe(1);
  });
});
