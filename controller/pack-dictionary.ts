/**
 * The preset dictionary the caches deflate with: what a cached kiln resource
 * and the children rendered for it look like. Cached objects share most of
 * their text (keys, kinds, image names, condition messages), so a dictionary
 * holding one of each cuts a cached DirectoryService from ~950 to ~150 bytes
 * (measured): at 10,000 resources that is megabytes of heap.
 */
import { render } from '../kinds/render.js';
import { KILN_API_VERSION } from '../kinds/registry.js';
import { validate } from '../validate/index.js';

/** Samples of the kinds kiln renders most (the same shape as examples/). */
export const SAMPLES = [
  { kind: 'PostgresInstance', spec: { version: 16, replicas: 1, storage: { size: '50Gi' }, resources: { requests: { cpu: '500m', memory: '1Gi' } } } },
  { kind: 'CacheCluster', spec: { size: 5, catalogServers: 3, capacity: '4Gi', image: 'registry.example.com/cache/xsld:8.6.1', storage: { size: '5Gi' } } },
  {
    kind: 'DirectoryService',
    spec: {
      replicas: 3,
      image: 'registry.example.com/forgerock/ds:7.5.1',
      resources: { requests: { cpu: '1', memory: '3Gi' }, limits: { memory: '3Gi' } },
      storage: { size: '100Gi', storageClassName: 'fast' },
      secrets: { masterKeypair: 'ds-master-keypair', sslKeypair: 'ds-ssl-keypair', truststore: 'ds-truststore' },
      passwords: { 'uid=admin': { secretName: 'ds-passwords', key: 'dirmanager.pw' } },
      scheduling: { tolerateDedicatedNodes: true, antiAffinity: 'Soft' },
    },
  },
];

const STATUS_SAMPLE = {
  observedGeneration: 1,
  conditions: [
    ...['Ready', 'Reconciling', 'Stalled'].map((type) => ({
      type,
      status: 'True',
      reason: 'RolloutComplete',
      message: '3/3 members ready',
      lastTransitionTime: '2026-01-01T00:00:00Z',
      observedGeneration: 1,
    })),
    ...['Synced', 'Available'].map((type) => ({
      type,
      status: 'False',
      reason: 'Applied',
      message: '4 objects applied and in sync',
      lastTransitionTime: '2026-01-01T00:00:00Z',
      observedGeneration: 1,
    })),
  ],
  revision: 'sha256:',
  replicas: 0,
  readyReplicas: 0,
};

function build(): Buffer {
  const parts: string[] = ['"managedFields":[{"manager":"kiln","operation":"Apply"},{"manager":"kiln","operation":"Update"},{"manager":"kubectl","operation":"Apply","subresource":"status"}]'];
  for (const s of SAMPLES) {
    const resource = { apiVersion: KILN_API_VERSION, kind: s.kind, metadata: { name: 'sample', namespace: 'default' }, spec: s.spec };
    // A sample that no longer validates or renders only makes the dictionary less apt (a unit test
    // keeps them valid).
    try {
      const v = validate(resource);
      if (v.ok) parts.push(...render(v.resource).map((o) => JSON.stringify(o)));
    } catch {
      // as above
    }
    parts.push(JSON.stringify({ ...resource, status: STATUS_SAMPLE }));
  }
  // zlib uses the last 32 KiB: the most common kind goes last.
  return Buffer.from(parts.join('').slice(-32_768), 'utf8');
}

let dictionary: Buffer | undefined;

export function packDictionary(): Buffer {
  return (dictionary ??= build());
}
