/**
 * The soak (test/soak/driver.ts) in CI: 3 minutes (KILN_SOAK_MINUTES
 * overrides; KILN_SOAK_SEED repeats a run) of seeded create/update/delete of
 * every kind while the connections of kiln's controller and agent to the API
 * server, PostgreSQL and slapd are delayed, blackholed, reset and half-closed
 * at random; then the consistency check and the processes' growth. It runs on
 * the suite's control plane in namespaces of its own; `npm run soak` is the
 * long version on a control plane of its own.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, inject, it } from 'vitest';
import { connectControlPlane } from '../harness/connect.js';
import { formatReport, runSoak } from '../soak/driver.js';

const minutes = Number(process.env.KILN_SOAK_MINUTES ?? 3);
const seed = Number(process.env.KILN_SOAK_SEED ?? Math.floor(Math.random() * 2 ** 31) + 1);
const settleSeconds = 150;
// Start-up of PostgreSQL, slapd, the Git server and the three processes, the load, the settle period and the namespaces' deletion.
const timeout = (minutes * 60 + settleSeconds + 180 + 130) * 1000;

it(
  `soak: ${minutes} min of random operations and network faults end consistent, without growth`,
  async () => {
    const cp = connectControlPlane(inject('controlPlane'));
    const report = await runSoak(cp, {
      minutes,
      seed,
      rate: 1,
      namespaces: 3,
      settleSeconds,
      warmupSeconds: Math.min(120, minutes * 15),
      workDir: mkdtempSync(join(tmpdir(), 'kiln-soak-')),
      keepOnFailure: true,
      log: (line) => console.log(`[soak] ${line}`),
    });
    console.log(formatReport(report));
    // Every kind was created, updated and deleted, and faults were injected, or the soak proved little.
    for (const [kind, o] of Object.entries(report.operations)) expect(o.create, `${kind} creates`).toBeGreaterThan(0);
    expect(report.faultLog.length).toBeGreaterThan(minutes * 3);
    expect(report.operationErrors).toEqual([]);
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
  },
  timeout,
);
