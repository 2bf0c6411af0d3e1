import { describe, expect, it } from 'vitest';
import { fluxVerdict, revisionCommit, type KustomizationStatus } from '../../gitops/flux.js';

const sha = (c: string) => c.repeat(40);
const [A, B, C] = [sha('a'), sha('b'), sha('c')];
/** History A <- B <- C. */
const order = [A, B, C];
const isAncestor = (a: string, b: string) => Promise.resolve(order.indexOf(a) >= 0 && order.indexOf(b) >= 0 ? order.indexOf(a) <= order.indexOf(b) : undefined);
const ready = (status: string, reason = 'ReconciliationSucceeded', message = '') => [{ type: 'Ready', status, reason, message }];
const verdict = (commit: string, status: KustomizationStatus | undefined) => fluxVerdict(commit, status, isAncestor, 'flux-system/kiln');

describe('revisionCommit', () => {
  it.each([
    [`main@sha1:${A}`, A],
    [`sha1:${B.toUpperCase()}`, B],
    [`main/${C}`, C],
    [`refs/heads/main@sha256:${'d'.repeat(64)}`, 'd'.repeat(64)],
    ['main@sha1:abc', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%s -> %s', (revision, commit) => {
    expect(revisionCommit(revision)).toBe(commit);
  });
});

describe('fluxVerdict', () => {
  it('applied: the commit is in the revision Flux applied and Flux is Ready', async () => {
    expect(await verdict(A, { lastAppliedRevision: `main@sha1:${B}`, lastAttemptedRevision: `main@sha1:${B}`, conditions: ready('True') })).toEqual({ state: 'applied', sha: B });
    expect(await verdict(B, { lastAppliedRevision: `main@sha1:${B}`, conditions: ready('True') })).toEqual({ state: 'applied', sha: B });
  });

  it('pending: Flux has not reached the commit yet', async () => {
    const v = await verdict(C, { lastAppliedRevision: `main@sha1:${B}`, lastAttemptedRevision: `main@sha1:${B}`, conditions: ready('True') });
    expect(v).toMatchObject({ state: 'pending' });
    expect(v.state === 'pending' && v.message).toContain(`it last applied ${B.slice(0, 12)}`);
    expect(await verdict(C, undefined)).toMatchObject({ state: 'pending', message: 'waiting for Flux Kustomization flux-system/kiln: it does not exist (yet)' });
  });

  it('failed: Flux attempted a revision holding the commit and is not Ready; its message is kept, bounded', async () => {
    const message = `StatefulSet/ns/blocked dry-run failed: ${'x'.repeat(2000)}`;
    const v = await verdict(C, { lastAppliedRevision: `main@sha1:${B}`, lastAttemptedRevision: `main@sha1:${C}`, conditions: ready('False', 'ReconciliationFailed', message) });
    expect(v).toMatchObject({ state: 'failed', sha: C, reason: 'ReconciliationFailed' });
    expect(v.state === 'failed' && v.message).toMatch(/^Flux Kustomization flux-system\/kiln failed at c{12}: StatefulSet\/ns\/blocked dry-run failed/);
    expect(v.state === 'failed' && v.message.length).toBeLessThanOrEqual(1024);
  });

  it('an earlier commit stays applied while a later revision fails', async () => {
    const v = await verdict(A, { lastAppliedRevision: `main@sha1:${B}`, lastAttemptedRevision: `main@sha1:${C}`, conditions: ready('False', 'ReconciliationFailed', 'boom') });
    expect(v).toEqual({ state: 'applied', sha: B });
  });

  it('health checks: applied but not Ready yet is pending; a failed health check of that revision is a failure', async () => {
    const applying = { lastAppliedRevision: `main@sha1:${B}`, lastAttemptedRevision: `main@sha1:${B}` };
    expect(await verdict(B, { ...applying, conditions: ready('Unknown', 'Progressing') })).toMatchObject({ state: 'pending' });
    expect(await verdict(B, { ...applying, conditions: ready('False', 'HealthCheckFailed', 'timeout waiting for: [StatefulSet/ns/x status: InProgress]') })).toMatchObject({
      state: 'failed',
      reason: 'HealthCheckFailed',
    });
  });

  it('a commit the clone does not know is pending, not applied', async () => {
    const unknown = sha('e');
    expect(await verdict(unknown, { lastAppliedRevision: `main@sha1:${C}`, conditions: ready('True') })).toMatchObject({ state: 'pending' });
  });
});
