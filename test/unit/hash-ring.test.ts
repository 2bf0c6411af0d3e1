import { describe, expect, it } from 'vitest';
import { HashRing } from '../../kube/sharding/ring.js';

const keys = Array.from({ length: 10_000 }, (_, i) => `DirectoryService/ns-${i % 7}/ds-${i}`);
const owners = (ring: HashRing) => new Map(keys.map((k) => [k, ring.owner(k)!]));

describe('HashRing', () => {
  it('spreads keys within a few percent of 1/N, the same on every replica whatever the order of members', () => {
    const a = new HashRing(['r-1', 'r-2', 'r-3']);
    const b = new HashRing(['r-3', 'r-1', 'r-2', 'r-1']);
    const counts = new Map<string, number>();
    for (const k of keys) {
      expect(b.owner(k)).toBe(a.owner(k));
      counts.set(a.owner(k)!, (counts.get(a.owner(k)!) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['r-1', 'r-2', 'r-3']);
    for (const n of counts.values()) expect(Math.abs(n / keys.length - 1 / 3)).toBeLessThan(0.06);
  });

  it('a fourth member takes about a quarter of the keys, all of them from the others; its leaving moves only its keys back', () => {
    const three = owners(new HashRing(['r-1', 'r-2', 'r-3']));
    const four = owners(new HashRing(['r-1', 'r-2', 'r-3', 'r-4']));
    let moved = 0;
    for (const k of keys) {
      if (three.get(k) === four.get(k)) continue;
      moved++;
      expect(four.get(k)).toBe('r-4');
    }
    expect(moved / keys.length).toBeGreaterThan(0.19);
    expect(moved / keys.length).toBeLessThan(0.31);
    const back = owners(new HashRing(['r-1', 'r-2', 'r-3']));
    for (const k of keys) expect(back.get(k)).toBe(three.get(k));
  });

  it('an empty ring owns nothing', () => {
    expect(new HashRing([]).owner('x')).toBeUndefined();
  });
});
