/**
 * What Flux did with kiln's commits, read from the Kustomization that applies
 * kiln's directory (`kiln controller --mode git --flux <namespace>/<name>`).
 *
 * A commit kiln pushed is applied once it is an ancestor of (or equal to) the
 * commit in the Kustomization's `lastAppliedRevision`: Flux applies whole
 * revisions, so every resource committed before that revision is in the
 * cluster. It failed when Flux attempted a revision holding it
 * (`lastAttemptedRevision`) and says Ready=False: a dry-run Flux could not
 * pass applies nothing of that revision, so every resource first committed
 * there is refused with Flux's message (the message names the object). With
 * `wait: true` (what `kiln gitops bootstrap --flux` prints) Ready=True also
 * means Flux's health checks passed: the StatefulSets rolled out.
 *
 * Revisions look like `main@sha1:<40 hex>` (Flux v2.1+), `sha1:<hex>` or the
 * older `main/<hex>`.
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export interface FluxRef {
  namespace: string;
  name: string;
}

/** `namespace/name` of a Kustomization; throws a message naming the flag. */
export function parseFluxRef(text: string): FluxRef {
  const parts = text.split('/');
  if (parts.length !== 2 || parts[0]!.length > 63 || !DNS_LABEL.test(parts[0]!) || parts[1]!.length > 253 || !DNS_SUBDOMAIN.test(parts[1]!)) {
    throw new Error(`--flux must be <namespace>/<kustomization> (got ${JSON.stringify(text)})`);
  }
  return { namespace: parts[0]!, name: parts[1]! };
}

export interface FluxCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

export interface KustomizationStatus {
  observedGeneration?: number;
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  conditions?: FluxCondition[];
}

export type FluxVerdict = { state: 'applied'; sha: string } | { state: 'failed'; sha: string; reason: string; message: string } | { state: 'pending'; message: string };

/** The commit a Flux revision names, lower-case; undefined when it names none. */
export function revisionCommit(revision: string | undefined): string | undefined {
  if (!revision) return undefined;
  const m = /(?:^|[@:/])([0-9a-f]{40}|[0-9a-f]{64})$/i.exec(revision.trim());
  return m ? m[1]!.toLowerCase() : undefined;
}

/** Flux's messages are the cluster's words; a status carries a bounded part of them. */
const MAX_MESSAGE = 1024;
const bounded = (text: string) => (text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 1)}…` : text);

/**
 * `commit`: the commit holding the resource's content; `isAncestor(a, b)`:
 * whether a is b or one of its ancestors (undefined: not known yet, e.g. b not
 * fetched), answered from kiln's clone.
 */
export async function fluxVerdict(commit: string, status: KustomizationStatus | undefined, isAncestor: (a: string, b: string) => Promise<boolean | undefined>, name: string): Promise<FluxVerdict> {
  if (!status) return { state: 'pending', message: `waiting for Flux Kustomization ${name}: it does not exist (yet)` };
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  const applied = revisionCommit(status.lastAppliedRevision);
  const attempted = revisionCommit(status.lastAttemptedRevision);
  const failure = (sha: string): FluxVerdict => ({
    state: 'failed',
    sha,
    reason: ready?.reason || 'Failed',
    message: bounded(`Flux Kustomization ${name} failed at ${sha.slice(0, 12)}: ${ready?.message ?? ''}`.trimEnd()),
  });
  if (applied && (await isAncestor(commit, applied))) {
    // Applied; its health is in doubt only while Flux is still checking (or failed) that very revision.
    if (ready?.status === 'True' || (attempted !== undefined && attempted !== applied)) return { state: 'applied', sha: applied };
    if (ready?.status === 'False') return failure(applied);
    return { state: 'pending', message: `applied by Flux Kustomization ${name} at ${applied.slice(0, 12)}; waiting for its health checks` };
  }
  if (attempted && ready?.status === 'False' && (await isAncestor(commit, attempted))) return failure(attempted);
  return {
    state: 'pending',
    message: `waiting for Flux Kustomization ${name} to apply ${commit.slice(0, 12)}${applied ? ` (it last applied ${applied.slice(0, 12)})` : ''}`,
  };
}
