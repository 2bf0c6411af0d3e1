import { describe, expect, it } from 'vitest';
import { renderManifest } from '../../gitops/layout.js';

const resource = (objects: Record<string, unknown>[], name = 'ds') => ({ kind: 'DirectoryService', namespace: 'ns', name, objects: objects as never });

describe('renderManifest refusals', () => {
  it('says why a change is refused as a code, not only in the message', () => {
    const secret = renderManifest(resource([{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'ns' }, data: { k: 'dg==' } }]));
    expect(secret).toMatchObject({ ok: false, refusal: 'SecretInRender' });
    const badName = renderManifest(resource([], '../x'));
    expect(badName).toMatchObject({ ok: false, refusal: 'NotCommittable' });
    expect(renderManifest(resource([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'ns' } }]))).toMatchObject({ ok: true });
  });
});
