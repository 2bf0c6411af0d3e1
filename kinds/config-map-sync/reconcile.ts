/**
 * ConfigMapSync in apply mode: copies one ConfigMap into tenant namespaces with
 * the rights of the resource's own ServiceAccount.
 *
 * Identities:
 *  - deps.kc (the controller) only requests ServiceAccount tokens
 *    (`serviceaccounts/token` create) and patches the ConfigMapSync itself
 *    (its finalizer, ./finalizer.ts).
 *  - every read of the source, every namespace list and every read, write and
 *    delete in a target namespace is made with a bearer token for
 *    spec.serviceAccountName obtained through the TokenRequest API
 *    (kube/service-account-clients.ts), so a tenant reaches only where its
 *    account may go.
 *
 * This module decides what to do (invalid spec, no token, live or deleted);
 * ./sync.ts and ./finalize.ts do it, ./copies.ts writes and deletes the
 * copies. Tokens are never logged or returned: every message that leaves is
 * redacted by the token cache.
 */
import { KubeClient } from '../../kube/client.js';
import type { ClusterConfigInput } from '../../kube/kubeconfig.js';
import { ServiceAccountTokens } from '../../kube/service-account-clients.js';
import { formatErrors, validate } from '../../validate/index.js';
import { ownerLabels, selectorString } from '../shared/labels.js';
import type { KilnResource } from '../types.js';
import type { ConfigMapSyncResource } from './chart.js';
import { apiMessage, statusOf, who, type Ctx } from './context.js';
import { finalize } from './finalize.js';
import { addFinalizer, CONFIGMAPSYNC_FINALIZER, removeFinalizer } from './finalizer.js';
import { sync } from './sync.js';

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface ConfigMapSyncDeps {
  /** The controller's own identity (its cluster configuration or a client): used ONLY to request tokens and to patch the ConfigMapSync itself. */
  kc: ClusterConfigInput | KubeClient;
  /** 'kiln' */
  fieldManager: string;
  /** Shared token cache (one per deps.kc is created if absent). */
  tokens?: ServiceAccountTokens;
  log?: LogFn;
  /** Labels of the ConfigMapSync its copies carry too (the keys --watch-label-selector names), kept equal on every sync. */
  copyLabels?: readonly string[];
}

export interface ConfigMapSyncOutcome {
  /** Namespaces holding a current copy. */
  synced: string[];
  /** Targets that could not be written (or pruned), with the API's reason; never a token. */
  failed: { namespace: string; reason: string }[];
  /** Why the resource cannot make progress without a change from someone. */
  stalled?: { reason: string; message: string };
  /** Namespaces whose copy was removed. */
  pruned: string[];
}

/** Namespaces status recorded: synced, and all (synced plus failed: a failed target may still hold a stale copy). */
export interface RecordedNamespaces {
  synced: string[];
  all: string[];
}

const sharedTokens = new WeakMap<object, ServiceAccountTokens>();
function tokensFor(deps: ConfigMapSyncDeps): ServiceAccountTokens {
  if (deps.tokens) return deps.tokens;
  let t = sharedTokens.get(deps.kc);
  if (!t) {
    t = new ServiceAccountTokens(deps.kc);
    sharedTokens.set(deps.kc, t);
  }
  return t;
}

function recordedNamespaces(resource: KilnResource): RecordedNamespaces {
  const status = (resource.status ?? {}) as { synced?: unknown; failed?: unknown };
  const synced = Array.isArray(status.synced) ? status.synced.filter((s): s is string => typeof s === 'string') : [];
  const failed = Array.isArray(status.failed) ? status.failed.map((f) => (f as { namespace?: unknown })?.namespace).filter((s): s is string => typeof s === 'string') : [];
  const sortedUnique = (xs: string[]) => [...new Set(xs)].sort();
  return { synced: sortedUnique(synced), all: sortedUnique([...synced, ...failed]) };
}

/**
 * Reconciles one ConfigMapSync (already fetched, possibly with
 * deletionTimestamp). status.synced (and status.failed) of the resource are
 * the namespaces that may hold a copy from an earlier reconcile.
 */
export async function reconcileConfigMapSync(resource: KilnResource, deps: ConfigMapSyncDeps): Promise<ConfigMapSyncOutcome> {
  const log: LogFn = deps.log ?? (() => undefined);
  const tokens = tokensFor(deps);
  const recorded = recordedNamespaces(resource);
  const untouched = (stalled: ConfigMapSyncOutcome['stalled']): ConfigMapSyncOutcome => ({
    // Nothing was checked or changed: keep what status recorded, so a later prune still knows it.
    synced: recorded.synced,
    failed: [],
    pruned: [],
    stalled,
  });

  const finalizers = (resource.metadata['finalizers'] as string[] | undefined) ?? [];
  const deleting = Boolean(resource.metadata['deletionTimestamp']);
  if (deleting && !finalizers.includes(CONFIGMAPSYNC_FINALIZER)) return { synced: [], failed: [], pruned: [] };

  const v = validate(resource);
  let cms: ConfigMapSyncResource;
  if (v.ok) {
    cms = v.resource as ConfigMapSyncResource;
  } else {
    const msg = tokens.redact(formatErrors(v.errors));
    log('warn', 'invalid ConfigMapSync', { resource: who(resource), error: msg });
    // Cleanup needs only the ServiceAccount (and status): an invalid spec must not hold a deletion forever.
    const sa = (resource.spec as { serviceAccountName?: unknown } | undefined)?.serviceAccountName;
    if (!deleting || typeof sa !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(sa)) {
      return untouched({ reason: 'InvalidSpec', message: msg });
    }
    cms = resource as ConfigMapSyncResource;
  }
  const namespace = resource.metadata.namespace ?? 'default';
  const owner = ownerLabels({ ...cms, metadata: { ...cms.metadata, namespace } });
  const serviceAccount = cms.spec.serviceAccountName;
  const controller = deps.kc instanceof KubeClient ? deps.kc : tokens.controllerClient();
  const base = { resource, namespace, controller, log };

  if (!deleting && !finalizers.includes(CONFIGMAPSYNC_FINALIZER)) {
    await addFinalizer(base);
  }

  let core: KubeClient;
  try {
    core = await tokens.clientFor(namespace, serviceAccount);
  } catch (err) {
    const code = statusOf(err);
    const message = apiMessage(err);
    // kiln may request tokens only where the platform admin bound its token ClusterRole: say how to grant it.
    const hint =
      code === 403 && !/being terminated/.test(message)
        ? ` (kiln may request ServiceAccount tokens only in namespaces where the platform admin bound its ClusterRole <install name>-controller-serviceaccount-tokens with a RoleBinding, e.g. kiln install --token-namespace ${namespace})`
        : '';
    const msg = `TokenRequest for ServiceAccount ${namespace}/${serviceAccount}: ${tokens.redact(message)}${hint}`;
    log('warn', 'cannot obtain a ServiceAccount token', { resource: who(resource), code, error: msg });
    if (deleting && (code === 404 || (code === 403 && /being terminated/.test(message)))) {
      // The ServiceAccount is gone, or its namespace is being deleted (no TokenRequest there any more).
      // kiln never uses its own rights in tenant namespaces, so the copies stay: say so, and do not
      // hold the deletion forever.
      await removeFinalizer(base);
      return { synced: [], pruned: [], failed: recorded.all.map((ns) => ({ namespace: ns, reason: `copy left in place: ${msg}` })) };
    }
    return untouched({ reason: 'TokenRequestFailed', message: msg });
  }
  const ctx: Ctx = { ...base, deps, cms, serviceAccount, owner, ownerSelector: selectorString(owner), tokens, core, sawUnauthorized: false };
  try {
    if (deleting) return await finalize(ctx, recorded);
    return await sync(ctx, recorded);
  } finally {
    if (ctx.sawUnauthorized) tokens.invalidate(namespace, serviceAccount);
  }
}
