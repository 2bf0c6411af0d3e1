/** kiln diff without a cluster: field stripping, the diff's form, the summary and exit status, input checks. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runDiff } from '../../cli/diff-command.js';
import { render } from '../../kinds/render.js';
import { applySetId, decorate, DESIRED_DIGEST, PART_OF } from '../../controller/apply/applyset.js';
import { desiredObjects, diffName, exitCode, formatObjectDiff, formatReport, stripServerFields, summaryLine, type ResourceDiff } from '../../controller/apply/diff.js';
import { validate } from '../../validate/index.js';
import { exampleResources } from './fixtures.js';

/** A Service as the API server returns it: server-owned fields and status around what kiln applied. */
const liveService = () => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: {
    name: 'ds-idrepo',
    namespace: 'identity',
    uid: '3a9c',
    resourceVersion: '4711',
    generation: 1,
    creationTimestamp: '2025-01-01T00:00:00Z',
    labels: { 'app.kubernetes.io/name': 'directory', [PART_OF]: 'applyset-x-v1' },
    annotations: { [DESIRED_DIGEST]: 'abc' },
    ownerReferences: [{ apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', name: 'ds-idrepo', uid: 'p-1', controller: true, blockOwnerDeletion: true }],
    managedFields: [{ manager: 'kiln', operation: 'Apply', apiVersion: 'v1', time: '2025-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': {} } }],
  },
  spec: { clusterIP: 'None', ports: [{ name: 'ldap', port: 1389, protocol: 'TCP', targetPort: 1389 }], publishNotReadyAddresses: true },
  status: { loadBalancer: {} },
});

describe('field stripping', () => {
  it('drops status and the metadata the server owns, keeps what kiln and others set', () => {
    const live = liveService();
    const stripped = stripServerFields(live) as ReturnType<typeof liveService>;
    expect(stripped).not.toHaveProperty('status');
    expect(Object.keys(stripped.metadata).sort()).toEqual(['annotations', 'labels', 'name', 'namespace', 'ownerReferences']);
    expect(stripped.spec).toEqual(live.spec);
    // The input is not changed.
    expect(live.metadata.managedFields).toHaveLength(1);
    expect(live.status).toEqual({ loadBalancer: {} });
  });

  it('two versions that differ only in server-owned fields give no diff', () => {
    const a = liveService();
    const b = liveService();
    b.metadata.resourceVersion = '9999';
    b.metadata.generation = 7;
    b.metadata.uid = 'other';
    b.metadata.creationTimestamp = '2026-01-01T00:00:00Z';
    b.metadata.managedFields = [];
    b.status = { loadBalancer: { ingress: [{ ip: '10.0.0.1' }] } };
    expect(formatObjectDiff('v1.Service.identity.ds-idrepo', a, b)).toBe('');
  });
});

describe('diff output', () => {
  it('names objects as kubectl diff does', () => {
    expect(diffName({ apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns', name: 'a' } })).toBe('v1.Service.ns.a');
    expect(diffName({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { namespace: 'ns', name: 'a' } })).toBe('apps.v1.StatefulSet.ns.a');
    expect(diffName({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { namespace: 'ns', name: 'a' } })).toBe('policy.v1.PodDisruptionBudget.ns.a');
  });

  it('a changed field is a unified diff hunk under kubectl diff headers, as YAML', () => {
    const live = liveService();
    const merged = liveService();
    merged.spec.publishNotReadyAddresses = false;
    const patch = formatObjectDiff('v1.Service.identity.ds-idrepo', live, merged);
    const lines = patch.split('\n');
    expect(lines.slice(0, 3)).toEqual([
      'diff -u -N LIVE/v1.Service.identity.ds-idrepo MERGED/v1.Service.identity.ds-idrepo',
      '--- LIVE/v1.Service.identity.ds-idrepo',
      '+++ MERGED/v1.Service.identity.ds-idrepo',
    ]);
    expect(lines[3]).toMatch(/^@@ -\d+,\d+ \+\d+,\d+ @@$/);
    expect(lines.filter((l) => /^[-+] /.test(l))).toEqual(['-  publishNotReadyAddresses: true', '+  publishNotReadyAddresses: false']);
    // Three lines of context, as diff -u.
    expect(lines.filter((l) => l.startsWith(' ')).length).toBeLessThanOrEqual(6);
    expect(patch).not.toContain('managedFields');
    expect(patch).not.toContain('resourceVersion');
    expect(patch.endsWith('\n')).toBe(true);
  });

  it('a new object diffs against nothing; a pruned one against nothing the other way', () => {
    const created = formatObjectDiff('v1.Service.identity.ds-idrepo', undefined, liveService());
    const body = created.split('\n').slice(4).filter(Boolean);
    expect(created).toContain('@@ -0,0 +1,');
    expect(body.every((l) => l.startsWith('+'))).toBe(true);
    expect(body).toContain('+kind: Service');
    expect(body).not.toContain('+status:');
    const pruned = formatObjectDiff('v1.Service.identity.ds-idrepo', liveService(), undefined);
    expect(pruned).toMatch(/@@ -1,\d+ \+0,0 @@/);
    expect(
      pruned
        .split('\n')
        .slice(4)
        .filter(Boolean)
        .every((l) => l.startsWith('-')),
    ).toBe(true);
  });

  it('the report: patches on stdout; notes, errors and one summary line per changed resource on stderr', () => {
    const changed: ResourceDiff = {
      resource: 'DirectoryService identity/ds-idrepo',
      changes: [
        { action: 'change', object: 'StatefulSet/ds-idrepo', name: 'apps.v1.StatefulSet.identity.ds-idrepo', patch: 'P1\n' },
        { action: 'prune', object: 'Service/ds-idrepo-client', name: 'v1.Service.identity.ds-idrepo-client', patch: 'P2\n' },
      ],
      notes: [],
      errors: [],
    };
    const quiet: ResourceDiff = { resource: 'CacheCluster web/session-cache', changes: [], notes: [], errors: [] };
    const skipped: ResourceDiff = { resource: 'ConfigMapSync platform/ca-bundle', changes: [], notes: ['not covered by kiln diff: x'], errors: [] };
    expect(summaryLine(changed)).toBe('DirectoryService identity/ds-idrepo: would change StatefulSet/ds-idrepo; would prune Service/ds-idrepo-client');
    expect(summaryLine(quiet)).toBeUndefined();
    expect(formatReport([changed, quiet, skipped])).toEqual({
      stdout: 'P1\nP2\n',
      stderr: 'ConfigMapSync platform/ca-bundle: not covered by kiln diff: x\nDirectoryService identity/ds-idrepo: would change StatefulSet/ds-idrepo; would prune Service/ds-idrepo-client\n',
    });
    expect(formatReport([quiet])).toEqual({ stdout: '', stderr: '' });
  });

  it('exit status as kubectl diff: 0 no change, 1 changes, 2 errors (even with changes)', () => {
    const none: ResourceDiff = { resource: 'a', changes: [], notes: ['n'], errors: [] };
    const some: ResourceDiff = { resource: 'b', changes: [{ action: 'create', object: 'x', name: 'x', patch: 'p' }], notes: [], errors: [] };
    const bad: ResourceDiff = { resource: 'c', changes: [], notes: [], errors: ['boom'] };
    expect(exitCode([])).toBe(0);
    expect(exitCode([none])).toBe(0);
    expect(exitCode([none, some])).toBe(1);
    expect(exitCode([some, bad])).toBe(2);
    expect(exitCode([none], 1)).toBe(2);
  });
});

describe('what is diffed is what the reconciler applies', () => {
  const example = exampleResources().find((e) => e.resource.kind === 'DirectoryService')!.resource;
  const v = validate(example);
  if (!v.ok) throw new Error('example invalid');

  it('each rendered object, decorated with the ApplySet label, the ownerReference to the live UID and the digest', () => {
    const id = applySetId(v.resource);
    const objects = desiredObjects(v.resource, 'uid-1');
    const rendered = render(v.resource);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(rendered.map((o) => `${o.kind}/${o.metadata.name}`));
    const parent = { ...v.resource, metadata: { ...v.resource.metadata, uid: 'uid-1' } };
    expect(objects).toEqual(rendered.map((o) => decorate(o, parent, id)));
    for (const o of objects) {
      expect(o.metadata.labels![PART_OF]).toBe(id);
      expect(o.metadata['ownerReferences']).toEqual([expect.objectContaining({ kind: 'DirectoryService', name: 'ds-idrepo', uid: 'uid-1', controller: true })]);
      expect(o.metadata.annotations![DESIRED_DIGEST]).toMatch(/^[0-9a-f]{32}$/);
    }
  });

  it('without a live resource there is no UID to own the objects by: no ownerReference, and another digest', () => {
    const withUid = desiredObjects(v.resource, 'uid-1');
    const without = desiredObjects(v.resource, undefined);
    for (const o of without) expect(o.metadata['ownerReferences']).toBeUndefined();
    expect(without[0]!.metadata.annotations![DESIRED_DIGEST]).not.toBe(withUid[0]!.metadata.annotations![DESIRED_DIGEST]);
  });
});

describe('kiln diff inputs', () => {
  const run = async (inputs: string[], opts: Partial<Parameters<typeof runDiff>[1]> = {}) => {
    const out = new PassThrough();
    const err = new PassThrough();
    let stdout = '';
    let stderr = '';
    out.on('data', (c) => (stdout += c));
    err.on('data', (c) => (stderr += c));
    const code = await runDiff(inputs, { fromCluster: false, namespace: [], concurrency: 4, kubeconfig: '/nonexistent/kubeconfig', ...opts }, out, err);
    return { code, stdout, stderr };
  };

  it('needs files or --from-cluster, not both and not neither', async () => {
    expect(await run([])).toMatchObject({ code: 2, stderr: expect.stringContaining('--from-cluster') });
    expect(await run(['examples'], { fromCluster: true })).toMatchObject({ code: 2, stderr: expect.stringContaining('not both') });
  });

  it('reports invalid resources as kiln synth does (file, document, field) and exits 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-diff-'));
    writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: kiln.dev/v1alpha1\nkind: DirectoryService\nmetadata:\n  name: bad\nspec:\n  replicas: -1\n  image: ds:7\n');
    const r = await run([dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${join(dir, 'bad.yaml')} [document 0] DirectoryService default/bad: spec.replicas:`);
    expect(r.stdout).toBe('');
  });

  it('without a cluster to ask, says so and exits 2', async () => {
    const r = await run(['examples/directory/directoryservice.yaml']);
    expect(r).toEqual({ code: 2, stdout: '', stderr: 'kiln diff: kubeconfig /nonexistent/kubeconfig does not exist\n' });
  });
});
