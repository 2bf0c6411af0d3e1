import { describe, expect, it } from 'vitest';
import type { KubeApi } from '../../kube/client.js';
import { StatusWriter, type Status, type StatusTarget } from '../../kube/status.js';

/** Records status applies and answers with the next resourceVersion; nothing else is asked of it. */
class StatusApplies implements KubeApi {
  readonly sent: { fieldManager: string; status: Status }[] = [];
  private rv = 100;
  apply<T>(obj: { metadata: { name: string } }, fieldManager: string): Promise<T> {
    this.sent.push({ fieldManager, status: (obj as unknown as { status: Status }).status });
    return Promise.resolve({ metadata: { resourceVersion: String(++this.rv), generation: 3 } } as T);
  }
  request(): never {
    throw new Error('not used');
  }
  get(): never {
    throw new Error('not used');
  }
  list(): never {
    throw new Error('not used');
  }
  mergePatch(): never {
    throw new Error('not used');
  }
  create(): never {
    throw new Error('not used');
  }
  delete(): never {
    throw new Error('not used');
  }
  watch(): never {
    throw new Error('not used');
  }
}

const cached = (resourceVersion: string, status?: Status): StatusTarget => ({
  apiVersion: 'kiln.dev/v1alpha1',
  kind: 'DirectoryService',
  metadata: { name: 'ds', namespace: 'ns', uid: 'u1', resourceVersion, generation: 3 },
  status,
});
const ready = (message: string): Status => ({ conditions: [{ type: 'Ready', status: 'True', reason: 'Ok', message }] });

describe('StatusWriter', () => {
  it('does not write the same status again while the cache still holds the version it wrote over', async () => {
    const client = new StatusApplies();
    const writer = new StatusWriter(client, 'kiln');
    expect((await writer.write(cached('7'), ready('a'))).written).toBe(true);
    expect(writer.behind(cached('7'))).toBe(true);
    // The watch event of our write has not come: same cached copy, same status.
    expect((await writer.write(cached('7'), ready('a'))).written).toBe(false);
    expect(client.sent).toHaveLength(1);
    // A different status is written, memo or not.
    expect((await writer.write(cached('7'), ready('b'))).written).toBe(true);
    expect(client.sent).toHaveLength(2);
  });

  it("is behind as well while the cache holds the version the caller's own metadata patch made before the status write", async () => {
    const client = new StatusApplies();
    const writer = new StatusWriter(client, 'kiln');
    // The reconcile read version 7, patched the resource's metadata (version 8), then wrote its status.
    await writer.write(cached('7'), ready('a'), { supersedes: ['8'] });
    // The watch brought the metadata patch (8, still the old status) but not the status write yet.
    const patched = cached('8', { conditions: [] });
    expect(writer.behind(patched)).toBe(true);
    expect(writer.current(patched)).toMatchObject(ready('a'));
    expect((await writer.write(patched, ready('a'))).written).toBe(false);
    expect(client.sent).toHaveLength(1);
  });

  it('compares with the cache once the cache has moved past its write', async () => {
    const client = new StatusApplies();
    const writer = new StatusWriter(client, 'kiln');
    const w = await writer.write(cached('7'), ready('a'));
    expect(w).toMatchObject({ written: true, resourceVersion: '101', generation: 3 });
    // Someone else's later version no longer says it: written again.
    expect(writer.behind(cached('102', { conditions: [] }))).toBe(false);
    expect((await writer.write(cached('102', { conditions: [] }), ready('a'))).written).toBe(true);
  });

  it('keeps its memo per instance (two managers in one process share nothing) and forgets a deleted object', async () => {
    const client = new StatusApplies();
    const one = new StatusWriter(client, 'kiln');
    const two = new StatusWriter(client, 'kiln');
    await one.write(cached('7'), ready('a'));
    expect(two.behind(cached('7'))).toBe(false);
    expect((await two.write(cached('7'), ready('a'))).written).toBe(true);
    const ref = { kind: 'DirectoryService', metadata: { namespace: 'ns', name: 'ds' } };
    expect(one.remembers(ref)).toBe(true);
    one.forget(ref);
    expect(one.remembers(ref)).toBe(false);
    expect(one.size).toBe(0);
    expect((await one.write(cached('7'), ready('a'))).written).toBe(true);
  });

  it('does not take its write for a same-named successor (another uid)', async () => {
    const writer = new StatusWriter(new StatusApplies(), 'kiln');
    await writer.write(cached('7'), ready('a'));
    const successor = { ...cached('7'), metadata: { ...cached('7').metadata, uid: 'u2' } };
    expect(writer.behind(successor)).toBe(false);
  });

  it('sets observedGeneration only when it owns it', async () => {
    const client = new StatusApplies();
    await new StatusWriter(client, 'kiln-agent', { ownsObservedGeneration: false }).write(cached('7'), ready('a'));
    await new StatusWriter(client, 'kiln').write(cached('7'), ready('a'));
    expect(client.sent.map((s) => s.status.observedGeneration)).toEqual([undefined, 3]);
  });
});
