import { describe, expect, it } from 'vitest';
import { bytesToQuantity, quantityToNumber } from '../../kinds/shared/quantity.js';
import { matchesSelector } from '../../lib/context.js';

describe('quantities', () => {
  it('parses every suffix form', () => {
    expect(quantityToNumber('1Gi')).toBe(2 ** 30);
    expect(quantityToNumber('1.5Gi')).toBe(1.5 * 2 ** 30);
    expect(quantityToNumber('500M')).toBe(5e8);
    expect(quantityToNumber('250m')).toBe(0.25);
    expect(quantityToNumber('1e9')).toBe(1e9);
    expect(quantityToNumber('.5Ki')).toBe(512);
    expect(() => quantityToNumber('ten gigs')).toThrow(/not a quantity/);
  });
  it('formats bytes in whole Mi, as Gi when exact', () => {
    expect(bytesToQuantity(6 * 2 ** 30)).toBe('6Gi');
    expect(bytesToQuantity(1.5 * 2 ** 30)).toBe('1536Mi');
    expect(bytesToQuantity(1)).toBe('1Mi');
  });
});

describe('label selectors', () => {
  const labels = { tier: 'tenant', team: 'a' };
  it('matchLabels and every operator', () => {
    expect(matchesSelector(labels, { matchLabels: { tier: 'tenant' } })).toBe(true);
    expect(matchesSelector(labels, { matchLabels: { tier: 'system' } })).toBe(false);
    expect(matchesSelector(labels, { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] })).toBe(true);
    expect(matchesSelector(labels, { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a'] }] })).toBe(false);
    expect(matchesSelector(labels, { matchExpressions: [{ key: 'x', operator: 'Exists' }] })).toBe(false);
    expect(matchesSelector(labels, { matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] })).toBe(true);
    expect(matchesSelector(undefined, {})).toBe(true);
  });
});
