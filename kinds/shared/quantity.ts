import { k8s } from 'cdk8s-plus-28';
import type { QuantityMap, ResourceRequirements } from '../types.js';

function quantities(map: QuantityMap | undefined): Record<string, k8s.Quantity> | undefined {
  if (!map) return undefined;
  const out: Record<string, k8s.Quantity> = {};
  for (const key of Object.keys(map).sort()) {
    const v = map[key]!;
    out[key] = typeof v === 'number' ? k8s.Quantity.fromNumber(v) : k8s.Quantity.fromString(v);
  }
  return out;
}

/**
 * The user's requests/limits, or the chart's documented defaults when the user
 * set none: kiln never leaves a container without resources.
 */
export function containerResources(given: ResourceRequirements | undefined, defaults: ResourceRequirements): k8s.ResourceRequirements {
  const chosen = given && (given.requests || given.limits) ? given : defaults;
  return { requests: quantities(chosen.requests), limits: quantities(chosen.limits) };
}

/** Parses a quantity into bytes (or units); used where charts derive one size from another. */
export function quantityToNumber(q: string): number {
  const exp = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))[eE]([+-]?[0-9]+)$/.exec(q.trim());
  if (exp) return Number(exp[1]) * 10 ** Number(exp[2]);
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([a-zA-Z]*)$/.exec(q.trim());
  if (!m) throw new Error(`not a quantity: ${q}`);
  const factors: Record<string, number> = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    P: 1e15,
    E: 1e18,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    Pi: 2 ** 50,
    Ei: 2 ** 60,
  };
  const f = factors[m[2]!];
  if (f === undefined) throw new Error(`not a quantity: ${q}`);
  return Number(m[1]) * f;
}

/** Bytes as a binary-suffixed quantity, rounded up to whole Mi. */
export function bytesToQuantity(bytes: number): string {
  const mi = Math.ceil(bytes / 2 ** 20);
  return mi % 1024 === 0 ? `${mi / 1024}Gi` : `${mi}Mi`;
}
