/**
 * Static sharding, as Flux does it (`--watch-label-selector`): each controller
 * (and agent) watches the kiln resources a label selector picks, conventionally
 * `kiln.dev/shard=<name>` for a shard and `!kiln.dev/shard` for the rest. What
 * a selector may name, and the short name a shard goes by (its Lease, its
 * git-mode directory), are decided here, once for every command.
 */
import { createHash } from 'node:crypto';
import { parseSelector, SelectorError } from '../kube/label-selector.js';

/** The label kiln's install and documentation use for shards (Flux's is sharding.fluxcd.io/key). */
export const SHARD_LABEL = 'kiln.dev/shard';

/**
 * Label keys kiln sets itself on what it renders: a selector naming one would pick a resource by
 * a label kiln then overwrites on its members (the selector's labels are copied onto them), or
 * select members by kiln's own bookkeeping.
 */
const RESERVED: { test: (key: string) => boolean; why: string }[] = [
  { test: (k) => k.startsWith('app.kubernetes.io/'), why: 'kiln sets the app.kubernetes.io/ labels on every object it renders' },
  { test: (k) => k.startsWith('applyset.kubernetes.io/'), why: "the applyset.kubernetes.io/ labels are kiln's ApplySet membership" },
  { test: (k) => k.startsWith('kiln.dev/owner-'), why: 'kiln sets the kiln.dev/owner-* labels on the copies and members it owns' },
];

/**
 * Checks a --watch-label-selector: the API server's syntax (parseSelector) and no key kiln sets
 * itself. Throws SelectorError naming the selector and what is wrong.
 */
export function checkWatchSelector(selector: string): string {
  const requirements = parseSelector(selector);
  if (requirements.length === 0) throw new SelectorError(selector, 'empty (leave the flag out to watch every resource)');
  for (const r of requirements) {
    const reserved = RESERVED.find((x) => x.test(r.key));
    if (reserved) throw new SelectorError(selector, `${JSON.stringify(r.key)} cannot select a shard: ${reserved.why}; use a label of your own, e.g. ${SHARD_LABEL}=<shard>`);
  }
  return selector.trim();
}

/** A Lease name's and a directory's part: a DNS label. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The name of the shard a selector picks: `<value>` for `key=value`, `unsharded` for `!key`,
 * otherwise (any other selector, `key=unsharded`, or a value that cannot be part of a Lease name)
 * the first 10 hex digits of the selector's SHA-256. The Lease is `kiln-controller-<name>` (`kiln-agent-<name>`).
 */
export function shardName(selector: string): string {
  const requirements = parseSelector(selector);
  const only = requirements.length === 1 ? requirements[0]! : undefined;
  // `key=unsharded` must not share the Lease of `!key`: it goes by its hash.
  if (only?.operator === '=' && DNS_LABEL.test(only.values[0]!) && only.values[0] !== 'unsharded') return only.values[0]!;
  if (only?.operator === 'notexists') return 'unsharded';
  return createHash('sha256').update(selector.trim()).digest('hex').slice(0, 10);
}

/**
 * Git mode: the suffix of a shard's base path (`<base-path>-<suffix>`), or undefined for the
 * unsharded rest (`!key`), which keeps the base path: a writer owns everything under its base path
 * (start-up prunes it, a rebase writes its tree back), so each shard needs a directory of its own,
 * and adding shards to an installation leaves the files of the resources that stay put where they are.
 */
export function shardDirectorySuffix(selector: string): string | undefined {
  const name = shardName(selector);
  return name === 'unsharded' ? undefined : name;
}
