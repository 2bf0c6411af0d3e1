/** kiln diff decorates as a sharded controller does: the shard labels the resource has in the cluster are on its objects. */
import { expect, it } from 'vitest';
import { desiredObjects } from '../../controller/apply/diff.js';
import { exampleResources } from './fixtures.js';

it('copies the dynamic ring label and kiln.dev/shard from the live resource onto every object, and nothing else', () => {
  const ds = exampleResources().find((e) => e.resource.kind === 'DirectoryService')!.resource;
  const live = { 'shard.kiln.dev/controller': 'replica-a1b2c3', 'kiln.dev/shard': 'shard1', team: 'x', 'drain.shard.kiln.dev/controller': 'true' };
  const objs = desiredObjects(ds, 'uid-1', {}, live);
  expect(objs.length).toBeGreaterThan(1);
  for (const o of objs) {
    expect(o.metadata.labels).toMatchObject({ 'shard.kiln.dev/controller': 'replica-a1b2c3', 'kiln.dev/shard': 'shard1' });
    expect(o.metadata.labels?.['team']).toBeUndefined();
    expect(o.metadata.labels?.['drain.shard.kiln.dev/controller']).toBeUndefined();
  }
  for (const o of desiredObjects(ds, 'uid-1', {})) expect(o.metadata.labels?.['shard.kiln.dev/controller']).toBeUndefined();
});
