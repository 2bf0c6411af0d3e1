import { describe, expect, it } from 'vitest';
import { andSelectors, matches, parseSelector, selectorKeys } from '../../kube/label-selector.js';

describe('label selectors (apimachinery syntax)', () => {
  it('reads every form the API server takes', () => {
    expect(parseSelector('kiln.dev/shard=shard1')).toEqual([{ key: 'kiln.dev/shard', operator: '=', values: ['shard1'] }]);
    expect(parseSelector('a==b, !kiln.dev/shard ,c!=d')).toEqual([
      { key: 'a', operator: '=', values: ['b'] },
      { key: 'kiln.dev/shard', operator: 'notexists', values: [] },
      { key: 'c', operator: '!=', values: ['d'] },
    ]);
    expect(parseSelector('tier in (a, b),x notin (c),present')).toEqual([
      { key: 'tier', operator: 'in', values: ['a', 'b'] },
      { key: 'x', operator: 'notin', values: ['c'] },
      { key: 'present', operator: 'exists', values: [] },
    ]);
    expect(parseSelector('')).toEqual([]);
  });

  it('refuses what the API server would, naming the part', () => {
    expect(() => parseSelector('a=b,,c')).toThrow(/empty requirement/);
    expect(() => parseSelector('a in (b')).toThrow(/unbalanced/);
    expect(() => parseSelector('a=b c')).toThrow(/cannot read "a=b c"/);
    expect(() => parseSelector('-bad=x')).toThrow(/"-bad" is not a label key/);
    expect(() => parseSelector('Kiln.Dev/shard=x')).toThrow(/prefix must be a DNS subdomain/);
    expect(() => parseSelector(`a=${'v'.repeat(64)}`)).toThrow(/is not a label value/);
  });

  it('names its keys once, and matches as the API server does (!= and notin match a missing label)', () => {
    expect(selectorKeys('kiln.dev/shard=a,kiln.dev/shard!=b,team')).toEqual(['kiln.dev/shard', 'team']);
    const r = parseSelector('kiln.dev/shard!=a');
    expect(matches(r, {})).toBe(true);
    expect(matches(r, { 'kiln.dev/shard': 'a' })).toBe(false);
    expect(matches(parseSelector('!kiln.dev/shard'), { 'kiln.dev/shard': 'a' })).toBe(false);
    expect(matches(parseSelector('x notin (a)'), undefined)).toBe(true);
    expect(matches(parseSelector('x in (a,b)'), { x: 'b' })).toBe(true);
    expect(andSelectors('a=b', undefined, ' ', 'c')).toBe('a=b,c');
    expect(andSelectors()).toBeUndefined();
  });
});
