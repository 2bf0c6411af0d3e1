import { describe, expect, it } from 'vitest';
import { fitStatus, statusSchemaOf, truncate } from '../../controller/status-bounds.js';

describe('status bounds', () => {
  it('truncate keeps short text and cuts long text to the limit with a marker', () => {
    expect(truncate('abc', 10)).toBe('abc');
    const cut = truncate('x'.repeat(100), 40);
    expect(Array.from(cut).length).toBeLessThanOrEqual(40);
    expect(cut).toMatch(/^x+… \(\d+ more characters\)$/);
    // The marker counts exactly what was cut.
    expect(Number(/\((\d+) more/.exec(cut)![1])).toBe(100 - cut.indexOf('…'));
  });

  it('truncate counts code points and never splits a surrogate pair', () => {
    const text = '😀'.repeat(50); // 100 UTF-16 units, 50 characters
    expect(truncate(text, 50)).toBe(text);
    const cut = truncate(text, 30);
    expect(Array.from(cut).length).toBeLessThanOrEqual(30);
    expect(cut).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });

  it('fits a 105 KB condition message, and every other bounded string, to the limits of the generated CRD schema', () => {
    const schema = statusSchemaOf('DirectoryService')!;
    const limit = schema.properties!['conditions']!.items!.properties!['message']!.maxLength!;
    const reasonLimit = schema.properties!['conditions']!.items!.properties!['reason']!.maxLength!;
    expect(limit).toBe(32768);
    const status = {
      observedGeneration: 3,
      conditions: [{ type: 'Stalled', status: 'True', reason: 'R'.repeat(5000), message: 'm'.repeat(105_000), observedGeneration: 3 }],
      inventory: [{ apiVersion: 'v1', kind: 'Service', namespace: 'ns', name: 'n'.repeat(400) }],
      replicas: 2,
    };
    const fitted = fitStatus('DirectoryService', status);
    expect(fitted.conditions[0]!.message.length).toBeLessThanOrEqual(limit);
    expect(fitted.conditions[0]!.message.length).toBeGreaterThan(limit - 40);
    expect(fitted.conditions[0]!.message).toContain('more characters)');
    expect(fitted.conditions[0]!.reason.length).toBeLessThanOrEqual(reasonLimit);
    expect(fitted.inventory[0]!.name.length).toBeLessThanOrEqual(253);
    expect(fitted.replicas).toBe(2);
    expect(fitted.observedGeneration).toBe(3);
    // Within bounds: unchanged.
    const small = { conditions: [{ type: 'Ready', status: 'True', reason: 'Applied', message: 'ok' }] };
    expect(fitStatus('DirectoryService', small)).toEqual(small);
  });
});
