import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../kube/informer.js';
import { controllerOf, generationChanged, inputsChanged, lifecycleChanged } from '../../kube/predicates.js';

const obj = (metadata: Partial<KubeObject['metadata']>, status?: unknown): KubeObject => ({
  apiVersion: 'kiln.dev/v1alpha1',
  kind: 'DirectoryService',
  metadata: { name: 'ds', namespace: 'ns', uid: 'u1', generation: 1, ...metadata },
  status,
});

describe('predicates', () => {
  it('a status-only update changes no input', () => {
    const a = obj({ labels: { a: '1' }, finalizers: ['f'] }, { ready: false });
    const b = obj({ labels: { a: '1' }, finalizers: ['f'] }, { ready: true });
    expect(generationChanged(a, b)).toBe(false);
    expect(lifecycleChanged(a, b)).toBe(false);
    expect(inputsChanged(a, b)).toBe(false);
  });
  it('spec, deletion, finalizers, labels, annotations and a new object (uid) are inputs', () => {
    const a = obj({});
    expect(inputsChanged(a, obj({ generation: 2 }))).toBe(true);
    expect(inputsChanged(a, obj({ deletionTimestamp: '2026-12-04T00:00:00Z' }))).toBe(true);
    expect(lifecycleChanged(a, obj({ finalizers: ['kiln.dev/x'] }))).toBe(true);
    expect(inputsChanged(a, obj({ labels: { b: '2' } }))).toBe(true);
    expect(inputsChanged(a, obj({ annotations: { c: '3' } }))).toBe(true);
    expect(inputsChanged(a, obj({ uid: 'u2' }))).toBe(true);
  });
  it('controllerOf: the controlling owner of the group only', () => {
    const child = {
      metadata: {
        ownerReferences: [
          { apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', name: 'ds', uid: 'u', controller: false },
          { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 's', uid: 'v', controller: true },
        ],
      },
    };
    expect(controllerOf(child, 'kiln.dev')).toBeUndefined();
    expect(controllerOf(child, 'apps')?.name).toBe('s');
    expect(controllerOf({ metadata: {} }, 'kiln.dev')).toBeUndefined();
  });
});
