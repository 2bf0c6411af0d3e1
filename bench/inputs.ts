/** Generated benchmark inputs: a realistic mix of every kind. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toYamlStream } from '../lib/yaml.js';

/** A realistic mix: every kind, varied specs, one namespace per 50 resources. */
export function mixedResources(n: number): unknown[] {
  const docs: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const namespace = `team-${Math.floor(i / 50)}`;
    const name = `r${i}`;
    const meta = { name, namespace };
    const k = i % 8;
    const base = { apiVersion: 'kiln.dev/v1alpha1', metadata: meta };
    if (k === 0)
      docs.push({
        ...base,
        kind: 'DirectoryService',
        spec: {
          replicas: 3,
          image: 'registry.example.com/ds:7.5.1',
          passwords: { 'uid=admin': { secretName: `${name}-pw` }, 'uid=am-config,ou=admins,ou=am-config': { secretName: `${name}-pw`, key: 'am', create: true } },
          storage: { size: '20Gi' },
        },
      });
    if (k === 1) docs.push({ ...base, kind: 'PostgresInstance', spec: { version: 16, parameters: { max_connections: '100' }, service: { type: 'LoadBalancer' } } });
    if (k === 2) docs.push({ ...base, kind: 'PostgresDatabase', spec: { instance: 'pg', name: `db_${i}` } });
    if (k === 3) docs.push({ ...base, kind: 'CacheCluster', spec: { size: 5, catalogServers: 3, capacity: '2Gi', image: 'registry.example.com/cache:1' } });
    if (k === 4) docs.push({ ...base, kind: 'DataGrid', spec: { cache: 'c', partitions: 13 } });
    if (k === 5) docs.push({ ...base, kind: 'DirectoryBackup', spec: { directoryService: 'ds', image: 'registry.example.com/ds:7.5.1' } });
    if (k === 6) docs.push({ ...base, kind: 'DirectoryRestore', spec: { backup: 'b', image: 'registry.example.com/ds:7.5.1' } });
    if (k === 7) {
      docs.push({ ...base, kind: 'ConfigMapSync', spec: { source: { name: `${name}-src` }, targets: { namespaces: ['tenant-a', 'tenant-b'] }, serviceAccountName: 'sync' } });
      docs.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${name}-src`, namespace }, data: { 'app.properties': `id=${i}\n` } });
    }
  }
  return docs;
}

export function writeMixedInputs(dir: string, n: number): void {
  mkdirSync(dir, { recursive: true });
  const docs = mixedResources(n);
  const perFile = 100;
  for (let f = 0; f * perFile < docs.length; f++) {
    writeFileSync(join(dir, `batch-${String(f).padStart(4, '0')}.yaml`), toYamlStream(docs.slice(f * perFile, (f + 1) * perFile)));
  }
}
