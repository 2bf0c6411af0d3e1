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
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { render } from '../../kinds/render.js';
import { KINDS } from '../../crds/schema/kinds.js';
import { contextFromObjects } from '../../lib/context.js';
import { validate } from '../../validate/index.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { examplePlainObjects, exampleResources, INVALID, INVALID_BY_KILN, OLD_SPELLINGS } from '../unit/fixtures.js';

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
    const out = await cp.kubectlOk([
      'get',
      'crd',
      '-l',
      'app.kubernetes.io/part-of=kiln',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}',
    ]);
    expect(out.trim().split('\n').sort()).toEqual([
      'cacheclusters.kiln.dev=True',
      'configmapsyncs.kiln.dev=True',
      'datagrids.kiln.dev=True',
      'directorybackups.kiln.dev=True',
      'directoryrestores.kiln.dev=True',
      'directoryservices.kiln.dev=True',
      'etcdclusters.kiln.dev=True',
      'gridtemplates.kiln.dev=True',
      'memcacheds.kiln.dev=True',
      'postgresdatabases.kiln.dev=True',
      'postgresinstances.kiln.dev=True',
    ]);
  });
  it('explain their fields (descriptions reach kubectl explain)', async () => {
    const out = await cp.kubectlOk(['explain', 'directoryservices.spec.scheduling.antiAffinity']);
    expect(out).toContain('Spread members over nodes');
  });
  it('answer to their short names and the kiln category', async () => {
    await cp.kubectlOk(['get', 'dirsvc,pgi,pgdb,cache,grid,gridtmpl,cms,dsbackup,dsrestore', '-A']);
    await cp.kubectlOk(['get', 'kiln', '-A']);
  });
});

/** One served resource as aggregated discovery (apidiscovery.k8s.io/v2) lists it. */
interface Served {
  group: string;
  resource: string;
  singular: string;
  shortNames: string[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function getJson(path: string, accept: string): Promise<any> {
  const url = new URL(path, cp.server);
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: readFileSync(cp.caFile), headers: { authorization: `Bearer ${cp.adminToken}`, accept } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`GET ${path}: ${res.statusCode} ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Every resource the API server serves: the core group and every API group, CRDs and aggregated APIs included. */
async function servedResources(): Promise<Served[]> {
  const accept = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';
  const out: Served[] = [];
  for (const path of ['/api', '/apis']) {
    const list = await getJson(path, accept);
    expect(list.kind).toBe('APIGroupDiscoveryList');
    for (const g of list.items) {
      for (const v of g.versions) {
        for (const r of v.resources ?? []) {
          out.push({ group: g.metadata.name ?? '', resource: r.resource, singular: r.singularResource || r.responseKind.kind.toLowerCase(), shortNames: r.shortNames ?? [] });
        }
      }
    }
  }
  return out;
}

/** The names kubectl resolves for a resource: plural, singular, short names. */
const namesOf = (r: Served) => [r.resource, r.singular, ...r.shortNames];

/** `name` collides with every resource outside kiln.dev answering to it (as `group/resource: the name`). */
function collisions(name: string, served: Served[]): string[] {
  return [...new Set(served.filter((r) => r.group !== 'kiln.dev' && namesOf(r).includes(name)).map((r) => `${r.group || 'core'}/${r.resource}`))];
}

describe('short names on the real API server', () => {
  let served: Served[];
  beforeAll(async () => {
    served = await servedResources();
  });

  it('discovery serves the short names crds/ declares (DirectoryService: dirsvc, not ds)', () => {
    for (const def of KINDS) {
      const r = served.find((s) => s.group === 'kiln.dev' && s.resource === def.plural);
      expect(r?.shortNames.sort(), def.kind).toEqual([...def.shortNames].sort());
    }
    expect(served.find((s) => s.group === 'kiln.dev' && s.resource === 'directoryservices')!.shortNames).toEqual(['dirsvc']);
  });

  it("the check finds a collision where there is one (ds is DaemonSets' short name)", () => {
    expect(collisions('ds', served)).toContain('apps/daemonsets');
    expect(collisions('svc', served)).toContain('core/services');
    expect(collisions('deployment', served)).toContain('apps/deployments');
  });

  it('no kiln short name is the name, plural, singular or short name of any other resource served', () => {
    expect(served.filter((s) => s.group !== 'kiln.dev').length).toBeGreaterThan(40);
    const found = KINDS.flatMap((def) => def.shortNames.flatMap((n) => collisions(n, served).map((c) => `${def.kind} ${n}: ${c}`)));
    expect(found).toEqual([]);
    // ...nor another kiln kind's.
    const kiln = served.filter((s) => s.group === 'kiln.dev');
    for (const r of kiln) {
      for (const n of r.shortNames)
        expect(
          kiln.filter((o) => o !== r && namesOf(o).includes(n)).map((o) => o.resource),
          n,
        ).toEqual([]);
    }
  });

  it('kubectl get ds means DaemonSets, with no warning about directoryservices', async () => {
    const r = await cp.kubectl(['get', 'ds', '-A']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/directoryservice|could also match/);
  });
});

describe('API conventions at admission', () => {
  for (const c of OLD_SPELLINGS) {
    it(`${c.kind} ${c.field}: "${c.old}" is refused offline and at admission, naming "${c.now}"`, async () => {
      const offline = validate(c.doc);
      expect(!offline.ok && offline.errors).toEqual([{ path: c.field, message: `Invalid value: ${c.message}` }]);
      const r = await dryRunApply(c.doc);
      expect(r.code, r.stdout).not.toBe(0);
      expect(r.stderr).toContain(`${c.field}: Invalid value: "string": ${c.message}`);
      // The new spelling is admitted.
      const fixed = JSON.parse(JSON.stringify(c.doc).replace(`"${c.old}"`, `"${c.now}"`));
      const ok = await dryRunApply(fixed);
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
    });
  }

  it('PostgresInstance version is a range of majors: 14 and 18 admitted, 13 and 100 refused (as offline)', async () => {
    const pg = (name: string, version: number) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name, namespace: 'default' }, spec: { version } });
    for (const v of [14, 18]) {
      expect(validate(pg(`pg-v${v}`, v)).ok).toBe(true);
      const r = await dryRunApply(pg(`pg-v${v}`, v));
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    for (const [v, bound] of [
      [13, 'greater than or equal to 14'],
      [100, 'less than or equal to 99'],
    ] as const) {
      expect(validate(pg(`pg-v${v}`, v))).toEqual({ ok: false, errors: [{ path: 'spec.version', message: `Invalid value: should be ${bound}` }] });
      const r = await dryRunApply(pg(`pg-v${v}`, v));
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`spec.version: Invalid value: ${v}: spec.version in body should be ${bound}`);
    }
  });
});

describe('PostgresInstance major version changes at admission (a transition rule: offline validation has no old object)', () => {
  const ns = 'admission-pg-major';
  const pg = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name, namespace: ns }, spec });
  const apply = (obj: unknown) => cp.kubectl(['apply', '--server-side', '--field-manager=kiln-test', '-f', '-'], { input: JSON.stringify(obj) });
  const refusal = 'the PostgreSQL major version cannot change in place';

  beforeAll(async () => {
    await ensureNamespace(ns);
  });

  it('version 16 -> 17 is refused naming spec.version and saying how to upgrade; 16 -> 16 (no change) is admitted', async () => {
    expect((await apply(pg('by-version', { version: 16 }))).code).toBe(0);
    const r = await apply(pg('by-version', { version: 17 }));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('spec.version: Forbidden');
    expect(r.stderr).toContain(refusal);
    expect(r.stderr).toContain('pg_dumpall');
    expect((await apply(pg('by-version', { version: 16, parameters: { max_connections: '200' } }))).code).toBe(0);
  });

  it('no version (the default, 16) -> 17 is refused, -> 16 admitted', async () => {
    expect((await apply(pg('by-default', {}))).code).toBe(0);
    const r = await apply(pg('by-default', { version: 17 }));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(refusal);
    expect((await apply(pg('by-default', { version: 16 }))).code).toBe(0);
  });

  it("an image is the user's to choose: a tag change is admitted (not parsed: a regex over it exceeds the CEL cost budget)", async () => {
    expect((await apply(pg('by-image', { image: 'docker.io/library/postgres:16.4' }))).code).toBe(0);
    expect((await apply(pg('by-image', { image: 'registry.example:5000/mirror/postgres:16.6-bookworm' }))).code).toBe(0);
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
