/**
 * Leader election on a coordination.k8s.io/v1 Lease against the real
 * control plane: one leader at a time, takeover after a crash only once the
 * lease has expired, immediate takeover after a graceful release, and loss of
 * leadership when renewals fail or the lease is taken.
 *
 * Durations are short (lease 3 s, renew deadline 2 s, retry 0.5 s); timing
 * bounds are derived from them in each test.
 */
import { randomBytes } from 'node:crypto';
import { ApiException, CoordinationV1Api, KubeConfig, V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { KubeClient } from '../../kube/client.js';
import { LeaderElectionStoppedError, LeaderElector, LeaseUnavailableError, type LeaderElectionOptions } from '../../kube/leader.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';

const LEASE_S = 3;
const RENEW_S = 2;
const RETRY_S = 0.5;
/** Request latency and scheduling on a shared 2-core machine. */
const SLACK_MS = 400;
/** Wall-clock timestamps in the lease have millisecond resolution (V1MicroTime is made from a Date). */
const ROUNDING_MS = 2;

let cp: ControlPlaneClient;
let kc: KubeConfig;
let ns: string;
const electors: LeaderElector[] = [];

const suffix = () => randomBytes(3).toString('hex');
const MICRO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

interface Logged {
  identity: string;
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}
let logs: Logged[] = [];
const identities = new WeakMap<LeaderElector, string>();
const idOf = (e: LeaderElector) => identities.get(e)!;

function elector(identity: string, lease: string, over: Partial<LeaderElectionOptions> = {}): LeaderElector {
  const e = new LeaderElector({
    kc,
    namespace: ns,
    name: lease,
    identity,
    leaseDurationSeconds: LEASE_S,
    renewDeadlineSeconds: RENEW_S,
    retryPeriodSeconds: RETRY_S,
    log: (level, msg, fields) => logs.push({ identity, level, msg, fields }),
    ...over,
  });
  electors.push(e);
  identities.set(e, identity);
  return e;
}

async function readLease(name: string): Promise<V1Lease> {
  return JSON.parse(await cp.kubectlOk(['get', 'lease', name, '-n', ns, '-o', 'json'])) as V1Lease;
}

/** Wall-clock ms of a MicroTime string as the server returns it. */
const ms = (t: unknown) => Date.parse(String(t));

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await cond()) return performance.now() - start;
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));

/** Start two candidates on one lease; resolves once one of them leads. */
async function pair(lease: string): Promise<{ leader: LeaderElector; standby: LeaderElector; standbyRun: Promise<void> }> {
  const a = elector(`a-${suffix()}`, lease);
  const b = elector(`b-${suffix()}`, lease);
  const runs = new Map([
    [a, a.run()],
    [b, b.run()],
  ]);
  // run() rejects when a candidate is stopped before it leads (afterEach): not an unhandled rejection.
  for (const p of runs.values()) p.catch(() => {});
  const leader = await Promise.race([...runs].map(([e, p]) => p.then(() => e)));
  const standby = leader === a ? b : a;
  return { leader, standby, standbyRun: runs.get(standby)! };
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  ns = `leader-${suffix()}`;
  await cp.kubectlOk(['create', 'namespace', ns]);
});

afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => e.stop().catch(() => {})));
  logs = [];
});

afterAll(async () => {
  await cp?.kubectlOk(['delete', 'namespace', ns, '--wait=false']);
});

describe('leader election', { timeout: 60_000 }, () => {
  it('elects exactly one of two candidates, which keeps renewing the lease', async () => {
    const lease = `elect-${suffix()}`;
    const { leader, standby, standbyRun } = await pair(lease);
    let standbyLed = false;
    void standbyRun.then(
      () => {
        standbyLed = true;
      },
      () => {},
    );
    const leaderId = idOf(leader);

    // Longer than a lease duration: if the leader did not renew, the standby would take over.
    await sleep(LEASE_S * 1000 + 1000);
    expect(leader.isLeader()).toBe(true);
    expect(standby.isLeader()).toBe(false);
    expect(standbyLed).toBe(false);

    const first = await readLease(lease);
    expect(first.spec?.holderIdentity).toBe(leaderId);
    expect(first.spec?.leaseDurationSeconds).toBe(LEASE_S);
    expect(first.spec?.leaseTransitions).toBe(0);
    expect(String(first.spec?.renewTime)).toMatch(MICRO);
    expect(String(first.spec?.acquireTime)).toMatch(MICRO);
    expect(Date.now() - ms(first.spec?.renewTime)).toBeLessThan(RETRY_S * 1000 + 2 * SLACK_MS);

    await sleep(RETRY_S * 1000 * 2 + 100);
    const second = await readLease(lease);
    expect(ms(second.spec?.renewTime)).toBeGreaterThan(ms(first.spec?.renewTime));
    expect(second.spec?.acquireTime).toBe(first.spec?.acquireTime);
    expect(second.spec?.holderIdentity).toBe(leaderId);

    // The standby saw the holder and logged it, and its pending run() rejects when it is stopped.
    expect(logs.some((l) => l.identity === idOf(standby) && l.msg.includes('held by another') && l.fields?.holder === leaderId)).toBe(true);
    await standby.stop();
    await expect(standbyRun).rejects.toBeInstanceOf(LeaderElectionStoppedError);
  });

  it('takes over from a crashed leader only once the lease has expired', async () => {
    const lease = `crash-${suffix()}`;
    const { leader, standby } = await pair(lease);
    let lostCalls = 0;
    leader.onStoppedLeading(() => lostCalls++);
    // Let the standby observe a few renewals.
    await sleep(1500);
    const before = await readLease(lease);

    // Crash: timers stop, nothing is released.
    await leader.stop({ release: false });
    const dead = await readLease(lease);
    expect(dead.spec?.holderIdentity).toBe(idOf(leader));
    const lastRenew = ms(dead.spec?.renewTime);

    const waited = await waitFor('the standby to lead', () => standby.isLeader(), 10_000);
    const after = await readLease(lease);
    expect(after.spec?.holderIdentity).toBe(idOf(standby));
    expect(after.spec?.leaseTransitions).toBe((before.spec?.leaseTransitions ?? 0) + 1);
    expect(leader.isLeader()).toBe(false);
    expect(lostCalls).toBe(0);

    // The standby's clock for expiry starts when it saw the last renewal, which is after the
    // leader wrote it: takeover is never earlier than one lease duration after that renewal,
    // and at most one lease duration + one (jittered) retry period + observation lag later.
    const takeoverAfterLastRenew = ms(after.spec?.acquireTime) - lastRenew;
    console.log(`[leader] crash: takeover ${takeoverAfterLastRenew} ms after the last renewal, ${Math.round(waited)} ms after the crash`);
    expect(takeoverAfterLastRenew).toBeGreaterThanOrEqual(LEASE_S * 1000 - ROUNDING_MS);
    expect(takeoverAfterLastRenew).toBeLessThanOrEqual(LEASE_S * 1000 + RETRY_S * 1000 * 2.2 + SLACK_MS);
    expect(waited).toBeLessThanOrEqual(LEASE_S * 1000 + RETRY_S * 1000 * 1.2 + SLACK_MS);
  });

  it('hands over at once after a graceful stop', async () => {
    // A lone leader's release: no holder, leaseDurationSeconds 1.
    const soloLease = `solo-${suffix()}`;
    const solo = elector(`solo-${suffix()}`, soloLease);
    await solo.run();
    expect((await readLease(soloLease)).spec?.holderIdentity).toBe(idOf(solo));
    await solo.stop();
    expect(solo.isLeader()).toBe(false);
    const released = await readLease(soloLease);
    expect(released.spec?.holderIdentity).toBeUndefined();
    expect(released.spec?.leaseDurationSeconds).toBe(1);
    expect(released.spec?.leaseTransitions).toBe(0);

    const lease = `graceful-${suffix()}`;
    const { leader, standby } = await pair(lease);
    let lostCalls = 0;
    leader.onStoppedLeading(() => lostCalls++);
    await sleep(1000);
    const before = await readLease(lease);

    await leader.stop();
    expect(leader.isLeader()).toBe(false);
    const waited = await waitFor('the standby to lead', () => standby.isLeader(), 10_000);
    console.log(`[leader] graceful: standby leads ${Math.round(waited)} ms after stop() returned`);
    // Its next attempt (within one jittered retry period) acquires: about two retry periods at
    // most, where without the release it would wait out the lease (at least 2.5 s from here).
    expect(waited).toBeLessThanOrEqual(RETRY_S * 1000 * 2 + SLACK_MS);
    const after = await readLease(lease);
    expect(after.spec?.holderIdentity).toBe(idOf(standby));
    expect(after.spec?.leaseDurationSeconds).toBe(LEASE_S);
    expect(after.spec?.leaseTransitions).toBe((before.spec?.leaseTransitions ?? 0) + 1);
    expect(lostCalls).toBe(0);
  });

  it('stops leading when renewals fail for the renew deadline (RBAC revoked)', async () => {
    const lease = `rbac-${suffix()}`;
    const user = `leader-${suffix()}`;
    const id = await cp.mintIdentity(user);
    const rbac = (kind: string, extra: Record<string, unknown>) =>
      cp.kubectlOk(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'rbac.authorization.k8s.io/v1', kind, metadata: { name: 'lease-writer', namespace: ns }, ...extra }),
      });
    await rbac('Role', { rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }] });
    await rbac('RoleBinding', {
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'lease-writer' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
    });
    await waitFor('RBAC to allow lease updates', async () => (await cp.kubectl(['auth', 'can-i', 'update', 'leases', '-n', ns], { kubeconfig: id.kubeconfig })).stdout.trim() === 'yes', 20_000, 200);

    const userKc = new KubeConfig();
    userKc.loadFromFile(id.kubeconfig);
    const e = elector(`rbac-${suffix()}`, lease, { kc: userKc });
    let stoppedAt: number | undefined;
    let lostCalls = 0;
    e.onStoppedLeading(() => {
      stoppedAt = Date.now();
      lostCalls++;
    });
    await e.run();
    expect(e.isLeader()).toBe(true);
    await sleep(1000);
    expect(e.isLeader()).toBe(true);

    await cp.kubectlOk(['delete', 'rolebinding', 'lease-writer', '-n', ns]);
    await waitFor('leadership to be lost', () => lostCalls > 0, 10_000);
    expect(e.isLeader()).toBe(false);

    // The lease still names it (it could not write), with its last successful renewal.
    const last = await readLease(lease);
    expect(last.spec?.holderIdentity).toBe(idOf(e));
    const sinceLastRenew = stoppedAt! - ms(last.spec?.renewTime);
    console.log(`[leader] RBAC revoked: stopped leading ${sinceLastRenew} ms after the last successful renewal`);
    // Not before the renew deadline, and before the lease could expire for anyone else.
    expect(sinceLastRenew).toBeGreaterThanOrEqual(RENEW_S * 1000 - ROUNDING_MS);
    expect(sinceLastRenew).toBeLessThan(LEASE_S * 1000);
    expect(logs.some((l) => l.msg.includes('renew failed') && String(l.fields?.error).includes('HTTP 403'))).toBe(true);

    await sleep(1000);
    expect(lostCalls).toBe(1);
    expect(e.isLeader()).toBe(false);
  });

  it("gives up at once when the Lease's namespace does not exist (404 on create): run() rejects, no retry", async () => {
    const missing = `missing-${suffix()}`;
    const client = new KubeClient(kc, { qps: 0 });
    const e = elector(`m-${suffix()}`, 'kiln-controller', { kc: client, namespace: missing });
    const started = performance.now();
    const err = await e.run().then(
      () => undefined,
      (x: unknown) => x,
    );
    const took = performance.now() - started;
    expect(err).toBeInstanceOf(LeaseUnavailableError);
    expect(err).toMatchObject({ reason: 'NamespaceNotFound', namespace: missing, leaseName: 'kiln-controller', detail: `namespaces "${missing}" not found` });
    expect((err as Error).message).toBe(`the namespace "${missing}" of the Lease ${missing}/kiln-controller does not exist (namespaces "${missing}" not found)`);
    // One attempt (a read that finds no Lease, a create the server refuses), no retry period waited.
    expect(took).toBeLessThan(RETRY_S * 1000);
    expect({ GET: client.counts.GET, POST: client.counts.POST }).toEqual({ GET: 1, POST: 1 });
    await sleep(RETRY_S * 1000 * 3);
    expect(client.counts.GET + client.counts.POST + client.counts.PUT).toBe(2);
    expect(logs.filter((l) => l.msg.includes('acquire failed'))).toEqual([]);
    expect(e.isLeader()).toBe(false);
    await e.stop();
  });

  it("gives up at once when it may not use the Lease (403): run() rejects with the server's words", async () => {
    const user = `no-lease-${suffix()}`;
    const id = await cp.mintIdentity(user);
    const userKc = new KubeConfig();
    userKc.loadFromFile(id.kubeconfig);
    const e = elector(`f-${suffix()}`, `forbidden-${suffix()}`, { kc: userKc });
    const err = await e.run().then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(err).toBeInstanceOf(LeaseUnavailableError);
    expect(err).toMatchObject({ reason: 'Forbidden', namespace: ns });
    expect((err as LeaseUnavailableError).detail).toMatch(new RegExp(`User "${user}" cannot get resource "leases"`));
    expect(logs.filter((l) => l.msg.includes('acquire failed'))).toEqual([]);
  });

  it('stops leading at once when another holder takes the lease', async () => {
    const lease = `taken-${suffix()}`;
    const e = elector(`victim-${suffix()}`, lease);
    let lostCalls = 0;
    e.onStoppedLeading(() => lostCalls++);
    await e.run();
    await sleep(1000);
    expect(e.isLeader()).toBe(true);

    const now = new V1MicroTime().toISOString();
    await cp.kubectlOk([
      'patch',
      'lease',
      lease,
      '-n',
      ns,
      '--type',
      'merge',
      '-p',
      JSON.stringify({
        spec: { holderIdentity: 'intruder', renewTime: now, acquireTime: now, leaseDurationSeconds: 30 },
      }),
    ]);
    const waited = await waitFor('leadership to be lost', () => lostCalls > 0, 10_000);
    console.log(`[leader] lease taken: stopped leading ${Math.round(waited)} ms after the takeover`);
    // Seen on its next renewal, not after the renew deadline.
    expect(waited).toBeLessThan(RENEW_S * 1000);
    expect(e.isLeader()).toBe(false);
    // It did not fight back.
    await sleep(1000);
    expect((await readLease(lease)).spec?.holderIdentity).toBe('intruder');
    expect(lostCalls).toBe(1);
  });

  it('MicroTime: the API server rejects millisecond timestamps, accepts V1MicroTime', async () => {
    const api = kc.makeApiClient(CoordinationV1Api);
    const body = (name: string, t: Date): V1Lease => ({
      metadata: { name, namespace: ns },
      // No cast needed: V1MicroTime adds nothing to Date's type, so a plain Date type-checks.
      spec: { holderIdentity: 'x', leaseDurationSeconds: 1, renewTime: t },
    });
    const err = await api.createNamespacedLease({ namespace: ns, body: body(`ms-${suffix()}`, new Date()) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApiException);
    expect((err as ApiException<string>).code).toBe(400);
    // The server parses MicroTime with exactly six fractional digits; a Date serializes with three.
    const status = JSON.parse(String((err as ApiException<string>).body)) as { message: string };
    expect(status.message).toMatch(/parsing time ".*\.\d{3}Z" as "2006-01-02T15:04:05.000000Z07:00"/);

    const name = `micro-${suffix()}`;
    const created = await api.createNamespacedLease({ namespace: ns, body: body(name, new V1MicroTime()) });
    // client-node does not deserialize MicroTime: what comes back is the server's string.
    expect(typeof created.spec?.renewTime).toBe('string');
    expect(String(created.spec?.renewTime)).toMatch(MICRO);
  });
});
