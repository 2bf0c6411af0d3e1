/**
 * A consistent-hash ring (Karger et al.; the scheme Argo CD's consistent-hashing
 * sharding and timebertt/kubernetes-controller-sharding use): each member owns
 * the arcs ending at its virtual nodes, and a key belongs to the first virtual
 * node at or after the key's hash. When a member joins, it takes about 1/N of
 * the keys, all from the others; when one leaves, only its keys move. Members
 * and keys hash the same on every replica (SHA-1, the first 32 bits), so all
 * agree on an owner given the same members.
 */
import { createHash } from 'node:crypto';

/** Virtual nodes per member: with 3-4 members, enough that each member's share is within a few percent of 1/N. */
export const DEFAULT_VIRTUAL_NODES = 256;

const hash32 = (s: string): number => createHash('sha1').update(s).digest().readUInt32BE(0);

export class HashRing {
  /** Virtual-node hashes, ascending, and the member each belongs to (same index). */
  private readonly points: Uint32Array;
  private readonly owners: string[];
  readonly members: readonly string[];

  constructor(members: Iterable<string>, virtualNodes = DEFAULT_VIRTUAL_NODES) {
    this.members = [...new Set(members)].sort();
    const nodes: { at: number; member: string }[] = [];
    for (const m of this.members) for (let i = 0; i < virtualNodes; i++) nodes.push({ at: hash32(`${m}#${i}`), member: m });
    // Ties (two virtual nodes at one point) go to the member that sorts first, on every replica.
    nodes.sort((a, b) => a.at - b.at || (a.member < b.member ? -1 : a.member > b.member ? 1 : 0));
    this.points = Uint32Array.from(nodes.map((n) => n.at));
    this.owners = nodes.map((n) => n.member);
  }

  /** The member owning `key`; undefined when the ring is empty. */
  owner(key: string): string | undefined {
    if (this.owners.length === 0) return undefined;
    const h = hash32(key);
    let lo = 0;
    let hi = this.points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === this.points.length ? 0 : lo];
  }
}
