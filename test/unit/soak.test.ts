/** The soak's pure parts: the seeded sequence, the comparison of a render with a live object, the growth limit, the templates. */
import { describe, expect, it } from 'vitest';
import { validate } from '../../validate/index.js';
import { firstDifference } from '../soak/consistency.js';
import { limitFor, rng } from '../soak/driver.js';
import { GIT_KINDS, KINDS, resource, soakLayout } from '../soak/templates.js';

describe('soak', () => {
  it('the same seed gives the same sequence, another seed another', () => {
    const a = rng(42);
    const b = rng(42);
    const c = rng(43);
    const xs = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });

  it('a live object equals its render when it holds every rendered field; server defaults and omitted zero values do not count', () => {
    const rendered = { spec: { replicas: 2, template: { spec: { containers: [{ name: 'm', readOnly: false, ports: [] }] } }, publishNotReadyAddresses: false } };
    const live = { spec: { replicas: 2, revisionHistoryLimit: 10, template: { spec: { containers: [{ name: 'm', imagePullPolicy: 'IfNotPresent' }] } } } };
    expect(firstDifference(rendered, live)).toBeUndefined();
    expect(firstDifference({ spec: { replicas: 2 } }, { spec: { replicas: 3 } })).toBe('.spec.replicas: rendered 2, live 3');
    expect(firstDifference({ a: [1, 2] }, { a: [1] })).toBe('.a: rendered 2 items, live 1 items');
    expect(firstDifference({ port: 5432 }, { port: '5432' })).toBeUndefined();
  });

  it('growth limit: half again or 48 MiB, whichever is more; 24 descriptors', () => {
    expect(limitFor({ rssMiB: 200, fds: 50 })).toEqual({ rssMiB: 300, fds: 74 });
    expect(limitFor({ rssMiB: 60, fds: 10 })).toEqual({ rssMiB: 108, fds: 34 });
  });

  it("every template validates for every variant (an update must not be refused for the soak's own mistake)", () => {
    const layout = soakLayout('abc123', 1);
    for (const kind of KINDS) {
      for (const name of layout.pools[kind]) {
        for (let v = 0; v < 12; v++) {
          const r = validate(resource(kind, layout.namespaces[0]!, name, v, layout));
          expect(r.ok ? [] : r.errors, `${kind} ${name} variant ${v}`).toEqual([]);
        }
      }
    }
    expect(GIT_KINDS.every((k) => KINDS.includes(k))).toBe(true);
  });
});
