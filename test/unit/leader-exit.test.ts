/**
 * Lost leadership ends the process even when stopping never finishes (work
 * in flight on a server that never answers): exit 1 after the grace period,
 * with a clear log line (issue #19).
 */
import { describe, expect, it, vi } from 'vitest';
import { exitOnLostLeadership, lostLeadershipGraceMs } from '../../kube/leader.js';

describe('exitOnLostLeadership', () => {
  it('exits 1 after the grace period when stop() never settles', async () => {
    vi.useFakeTimers();
    try {
      const lines: string[] = [];
      const exit = vi.fn();
      exitOnLostLeadership({ component: 'agent', log: (level, msg) => lines.push(`${level} ${msg}`), stop: () => new Promise(() => {}), graceMs: 1500, exit })();
      expect(lines).toEqual(['error lost leadership: exiting']);
      await vi.advanceTimersByTimeAsync(1499);
      expect(exit).not.toHaveBeenCalled();
      await vi.advanceTimersByTimeAsync(1);
      expect(exit).toHaveBeenCalledWith(1);
      expect(lines[1]).toMatch(/work still in flight after the grace period; exiting now/);
    } finally {
      vi.useRealTimers();
    }
  });

  it('exits 1 as soon as stop() settles, resolved or rejected', async () => {
    for (const stop of [() => Promise.resolve(), () => Promise.reject(new Error('boom'))]) {
      const exit = vi.fn();
      exitOnLostLeadership({ component: 'controller', log: () => {}, stop, graceMs: 60_000, exit })();
      await new Promise((r) => setImmediate(r));
      expect(exit).toHaveBeenCalledTimes(1);
      expect(exit).toHaveBeenCalledWith(1);
    }
  });

  it('the grace period is half the renew deadline, at most 5 s', () => {
    expect(lostLeadershipGraceMs({ renewDeadlineSeconds: 3 })).toBe(1500);
    expect(lostLeadershipGraceMs({ renewDeadlineSeconds: 60 })).toBe(5000);
    expect(lostLeadershipGraceMs(undefined)).toBe(5000);
  });
});
