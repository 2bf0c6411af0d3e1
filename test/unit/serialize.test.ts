/** kiln's fast serializer must equal cdk8s's own, byte for byte. */
import { App } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { chartFactory } from '../../kinds/registry.js';
import { compareObjects } from '../../kinds/render.js';
import { chartObjects } from '../../kinds/serialize.js';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { contextFromObjects } from '../../lib/context.js';
import { toYamlStream } from '../../lib/yaml.js';
import { validate } from '../../validate/index.js';
import { examplePlainObjects, exampleResources } from './fixtures.js';

function both(resource: KilnResource) {
  const v = validate(resource);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  const ctx = contextFromObjects(v.resource, examplePlainObjects());
  const chart = (a: App) => chartFactory(v.resource.apiVersion, v.resource.kind)(a, 'c', v.resource, ctx);
  const sorted = (xs: K8sObject[]) => toYamlStream([...xs].sort(compareObjects));
  return { fast: sorted(chartObjects(chart(new App()))), cdk8s: sorted(chart(new App()).toJson() as K8sObject[]) };
}

describe('chartObjects', () => {
  const variants: KilnResource[] = [];
  for (const { resource } of exampleResources()) {
    variants.push(resource);
    const spec = resource.spec as Record<string, unknown>;
    variants.push({ ...resource, spec: { ...spec, resources: { requests: { cpu: 2, memory: '1Gi' }, limits: { cpu: '1500m' } } } });
    variants.push({ ...resource, spec: { ...spec, scheduling: { antiAffinity: 'Hard', nodeSelector: { zone: 'a' } } } });
  }
  for (const r of variants) {
    it(`equals chart.toJson() for ${r.kind} ${r.metadata.name}`, () => {
      const v = validate(r);
      if (!v.ok) return expect(r.kind).toMatch(/PostgresDatabase|DataGrid|ConfigMapSync|DirectoryBackup|DirectoryRestore/); // variants those kinds do not take
      const { fast, cdk8s } = both(r);
      expect(fast).toBe(cdk8s);
    });
  }
});
