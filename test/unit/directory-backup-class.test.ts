/**
 * DirectoryService spec.storage.volumeSnapshotClassName is the snapshot class
 * of its backups: a DirectoryBackup that names no class of its own takes it
 * from the DirectoryService it backs up (its render input); its own field wins.
 * Rendered directly, and offline by `kiln synth` with both among the inputs.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { render } from '../../kinds/render.js';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { contextFromObjects, type PlainObject } from '../../lib/context.js';
import { synth } from '../../lib/synth.js';
import { parseYamlStream, toYamlStream } from '../../lib/yaml.js';
import { validate } from '../../validate/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-backup-class-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const directory = (name: string, namespace: string, volumeSnapshotClassName?: string): KilnResource => ({
  apiVersion: 'kiln.dev/v1alpha1',
  kind: 'DirectoryService',
  metadata: { name, namespace },
  spec: { image: 'registry.example.com/forgerock/ds:7.5.1', storage: { size: '10Gi', ...(volumeSnapshotClassName ? { volumeSnapshotClassName } : {}) } },
});
const backup = (volumeSnapshotClassName?: string, namespace = 'identity'): KilnResource => ({
  apiVersion: 'kiln.dev/v1alpha1',
  kind: 'DirectoryBackup',
  metadata: { name: 'nightly', namespace },
  spec: { directoryService: 'ds-idrepo', image: 'registry.example.com/forgerock/ds:7.5.1', ...(volumeSnapshotClassName ? { volumeSnapshotClassName } : {}) },
});

function snapshotClass(objects: K8sObject[]): string | undefined {
  const snap = objects.find((o) => o.kind === 'VolumeSnapshot');
  expect(snap?.metadata.name).toBe('nightly-source');
  return (snap as unknown as { spec: { volumeSnapshotClassName?: string } }).spec.volumeSnapshotClassName;
}

function renderWith(resource: KilnResource, inputs: PlainObject[]): K8sObject[] {
  const v = validate(resource);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return render(v.resource, contextFromObjects(v.resource, inputs));
}

const asPlain = (...r: KilnResource[]) => r as unknown as PlainObject[];

describe("a DirectoryBackup's snapshot class", () => {
  it("is the DirectoryService's spec.storage.volumeSnapshotClassName when the backup sets none", () => {
    expect(snapshotClass(renderWith(backup(), asPlain(directory('ds-idrepo', 'identity', 'csi-ds-snapshots'))))).toBe('csi-ds-snapshots');
  });

  it("the backup's own spec.volumeSnapshotClassName wins", () => {
    expect(snapshotClass(renderWith(backup('csi-own'), asPlain(directory('ds-idrepo', 'identity', 'csi-ds-snapshots'))))).toBe('csi-own');
  });

  it("is left out (the cluster's default) when neither sets one, or the DirectoryService is not at hand", () => {
    expect(snapshotClass(renderWith(backup(), asPlain(directory('ds-idrepo', 'identity'))))).toBeUndefined();
    expect(snapshotClass(renderWith(backup(), []))).toBeUndefined();
  });

  it('comes only from the DirectoryService of that name in the same namespace', () => {
    const others = asPlain(directory('ds-idrepo', 'other-team', 'csi-theirs'), directory('ds-other', 'identity', 'csi-other'));
    expect(snapshotClass(renderWith(backup(), others))).toBeUndefined();
    expect(snapshotClass(renderWith(backup(), [...others, ...asPlain(directory('ds-idrepo', 'identity', 'csi-mine'))]))).toBe('csi-mine');
  });

  it('kiln synth with both among the inputs renders the class; without the DirectoryService it renders none', async () => {
    const both = join(tmp, 'both.yaml');
    // The backup first: its DirectoryService is read from a later document all the same.
    writeFileSync(both, toYamlStream([backup(), directory('ds-idrepo', 'identity', 'csi-ds-snapshots')]));
    const report = await synth({ inputs: [both], outDir: join(tmp, 'both-out'), jobs: 1 });
    expect(report.problems).toEqual([]);
    const file = report.written.find((w) => w.endsWith('identity/directorybackup/nightly.k8s.yaml'))!;
    expect(file).toBeDefined();
    expect(snapshotClass(parseYamlStream(readFileSync(file, 'utf8')).map((d) => d.value) as K8sObject[])).toBe('csi-ds-snapshots');

    const alone = join(tmp, 'alone.yaml');
    writeFileSync(alone, toYamlStream([backup()]));
    const report2 = await synth({ inputs: [alone], outDir: join(tmp, 'alone-out'), jobs: 1 });
    expect(report2.problems).toEqual([]);
    expect(report2.notes).toEqual([]);
    expect(snapshotClass(parseYamlStream(readFileSync(report2.written[0]!, 'utf8')).map((d) => d.value) as K8sObject[])).toBeUndefined();
  });
});
