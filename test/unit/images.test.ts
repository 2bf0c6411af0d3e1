/**
 * The test node has no registry: every image a pod asks for must be one that
 * scripts/build-images.sh builds, under the exact name the kubelet resolves.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { installObjects } from '../../install/install.js';
import { postgresImage, type PostgresInstanceResource } from '../../kinds/postgres-instance/chart.js';
import type { K8sObject } from '../../kinds/types.js';
import { parseYamlStream } from '../../lib/yaml.js';
import { IMAGE_NAMES } from '../harness/images.js';

const root = join(import.meta.dirname, '..', '..');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

/** A reference as containerd's CRI plugin stores it: Docker Hub's defaults filled in. */
function fullyQualified(ref: string): string {
  const slash = ref.indexOf('/');
  const first = slash < 0 ? '' : ref.slice(0, slash);
  const hasRegistry = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  let name = hasRegistry ? ref : `docker.io/${slash < 0 ? 'library/' : ''}${ref}`;
  const lastSegment = name.slice(name.lastIndexOf('/') + 1);
  if (!lastSegment.includes(':') && !name.includes('@')) name += ':latest';
  return name;
}

describe('fullyQualified', () => {
  it('fills in docker.io, library/ and :latest as the kubelet does', () => {
    expect(fullyQualified('kiln:1.0')).toBe('docker.io/library/kiln:1.0');
    expect(fullyQualified('bitnami/postgresql')).toBe('docker.io/bitnami/postgresql:latest');
    expect(fullyQualified('registry.k8s.io/pause:3.10')).toBe('registry.k8s.io/pause:3.10');
    expect(fullyQualified('localhost:5000/x/y:1')).toBe('localhost:5000/x/y:1');
  });
});

describe('built images cover what the tests run', () => {
  it("the quick start's PostgresInstance", () => {
    const docs = parseYamlStream(readFileSync(join(root, 'examples/quickstart/10-postgres.yaml'), 'utf8')).map((d) => d.value as K8sObject);
    const instance = docs.find((d) => d.kind === 'PostgresInstance') as unknown as PostgresInstanceResource;
    expect(instance).toBeDefined();
    expect(IMAGE_NAMES).toContain(fullyQualified(postgresImage(instance.spec)));
  });

  it("kiln's own Deployments as `kiln install` renders them by default", () => {
    const images = installObjects({ mode: 'apply', version })
      .filter((o) => o.kind === 'Deployment')
      .flatMap((d) => (d as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } }).spec.template.spec.containers.map((c) => c.image));
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(IMAGE_NAMES).toContain(fullyQualified(image));
  });

  it("the Dockerfile's base image", () => {
    const bases = [...readFileSync(join(root, 'Dockerfile'), 'utf8').matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
    expect(bases.length).toBeGreaterThan(0);
    for (const base of bases) expect(IMAGE_NAMES).toContain(fullyQualified(base));
  });
});
