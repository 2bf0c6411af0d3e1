/**
 * Offline validation and the API server agree, and the API server accepts
 * what kiln renders:
 * - every example is accepted (server-side dry run), every invalid resource
 *   of the unit tests is refused by both, naming the same field;
 * - what only kiln's own checks catch is accepted at admission (the
 *   controller reports it as Stalled);
 * - every object rendered from every example passes a server-side dry-run
 *   apply, VolumeSnapshots included (their CRDs come from the CSI
 *   snapshotter's module).
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { render } from '../../charts/render.js';
import { contextFromObjects } from '../../lib/context.js';
import { validate } from '../../validate/index.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { examplePlainObjects, exampleResources, INVALID, INVALID_BY_KILN } from '../unit/fixtures.js';

let cp: ControlPlaneClient;
const examples = exampleResources();

async function ensureNamespace(ns: string): Promise<void> {
  const r = await cp.kubectl(['create', 'namespace', ns]);
  if (r.code !== 0 && !r.stderr.includes('AlreadyExists')) throw new Error(r.stderr);
}

function dryRunApply(obj: unknown) {
  return cp.kubectl(['apply', '--server-side', '--field-manager=kiln', '--dry-run=server', '-f', '-'], { input: JSON.stringify(obj) });
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  const namespaces = new Set(['default', 'tenant-a', 'tenant-b', ...examples.map((e) => e.resource.metadata.namespace ?? 'default')]);
  for (const ns of namespaces) await ensureNamespace(ns);
});

describe('kiln CRDs', () => {
  it('are installed and Established', async () => {
    const out = await cp.kubectlOk(['get', 'crd', '-l', 'app.kubernetes.io/part-of=kiln', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}']);
    expect(out.trim().split('\n').sort()).toEqual([
      'cacheclusters.kiln.dev=True', 'configmapsyncs.kiln.dev=True', 'datagrids.kiln.dev=True', 'directorybackups.kiln.dev=True',
      'directoryrestores.kiln.dev=True', 'directoryservices.kiln.dev=True', 'postgresdatabases.kiln.dev=True', 'postgresinstances.kiln.dev=True',
    ]);
  });
  it('explain their fields (descriptions reach kubectl explain)', async () => {
    const out = await cp.kubectlOk(['explain', 'directoryservices.spec.scheduling.antiAffinity']);
    expect(out).toContain('Spread members over nodes');
  });
  it('answer to their short names and the kiln category', async () => {
    await cp.kubectlOk(['get', 'dirsvc,pgi,pgdb,cache,grid,cms,dsbackup,dsrestore', '-A']);
    await cp.kubectlOk(['get', 'kiln', '-A']);
  });
});

describe('admission agrees with offline validation', () => {
  for (const { resource } of examples) {
    it(`accepts example ${resource.kind} ${resource.metadata.namespace}/${resource.metadata.name}`, async () => {
      expect(validate(resource).ok).toBe(true);
      const r = await dryRunApply(resource);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });
  }

  for (const c of INVALID) {
    it(`refuses ${c.name} (${c.field}) offline and at admission`, async () => {
      const offline = validate(c.doc);
      expect(offline.ok).toBe(false);
      const r = await dryRunApply(c.doc);
      expect(r.code, r.stdout).not.toBe(0);
      // The API server names the field (spec.x or, for unknown fields, .spec.x).
      const field = c.field === 'spec' ? 'spec' : c.field.replace(/\[\d+\]/g, '');
      expect(r.stderr).toContain(field.split('.').slice(-1)[0]);
      expect(r.stderr).toMatch(/invalid|Invalid|unknown field|field not declared in schema|Required|Unsupported|should/);
    });
  }

  for (const c of INVALID_BY_KILN) {
    it(`leaves ${c.name} to kiln's own checks (admitted, refused by validate)`, async () => {
      expect(validate(c.doc).ok).toBe(false);
      const r = await dryRunApply(c.doc);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });
  }
});

describe('rendered objects', () => {
  const plain = examplePlainObjects();
  for (const { resource } of examples) {
    it(`of ${resource.kind} ${resource.metadata.name} pass a server-side dry-run apply`, async () => {
      const v = validate(resource);
      if (!v.ok) throw new Error(JSON.stringify(v.errors));
      const objects = render(v.resource, contextFromObjects(v.resource, plain));
      // Only PostgresDatabase renders nothing (the agent carries it out).
      expect(objects.length === 0).toBe(resource.kind === 'PostgresDatabase');
      for (const o of objects) {
        const r = await dryRunApply(o);
        expect(`${o.kind}/${o.metadata.name}: ${r.stderr}`).toBe(`${o.kind}/${o.metadata.name}: `);
        expect(r.code).toBe(0);
      }
    });
  }
});
