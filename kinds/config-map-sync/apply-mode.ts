/**
 * ConfigMapSync in the controller: apply mode runs its own reconciler
 * (reconcile.ts: copies written with the tenant's ServiceAccount), and turns
 * what it did into conditions and events; git mode cannot carry it out. Each
 * live ConfigMapSync's source and selected namespaces are watched with the
 * same account's token (watches.ts), so a change is carried out in seconds.
 */
import { readyConditions } from '../../kube/status.js';
import type { CustomEnv, CustomReconciler } from '../kind.js';
import { ServiceAccountTokens } from '../../kube/service-account-clients.js';
import { validate } from '../../validate/index.js';
import { sourceOf, type ConfigMapSyncResource } from './chart.js';
import { reconcileConfigMapSync, type ConfigMapSyncDeps } from './reconcile.js';
import { ConfigMapSyncWatches } from './watches.js';

export function configMapSyncReconciler(env: CustomEnv): CustomReconciler {
  // One token cache per controller: tokens are requested per ServiceAccount and reused until they near expiry.
  const tokens = new ServiceAccountTokens(env.kc);
  const deps: ConfigMapSyncDeps = { kc: env.kc, fieldManager: env.fieldManager, tokens, log: env.log, copyLabels: env.copyLabels };
  // The watches run for the ConfigMapSyncs this controller reconciles, so a shard watches for its own
  // only (its informer is selected); what they watch (a source ConfigMap, Namespaces) is the tenant's,
  // not labelled by shard, and is not selected.
  const watches = new ConfigMapSyncWatches(tokens, (key) => env.requeue(key), env.log);
  return {
    async reconcile(live, io) {
      const key = `ConfigMapSync/${live.metadata.namespace}/${live.metadata.name}`;
      const outcome = await reconcileConfigMapSync(live, deps);
      if (live.metadata.deletionTimestamp) {
        watches.forget(key);
        return;
      }
      // The source and the selected namespaces are watched from now on, so a change reaches the copies in seconds.
      const v = validate(live);
      if (v.ok) {
        const cms = v.resource as ConfigMapSyncResource;
        watches.ensure(key, {
          namespace: live.metadata.namespace ?? 'default',
          serviceAccount: cms.spec.serviceAccountName,
          source: sourceOf(cms),
          selectsNamespaces: cms.spec.targets.namespaceSelector !== undefined,
        });
      } else {
        watches.forget(key);
      }
      const generation = live.metadata.generation;
      const failed = outcome.failed.length > 0 ? `; not synced: ${outcome.failed.map((f) => `${f.namespace} (${f.reason})`).join(', ')}` : '';
      const conditions = outcome.stalled
        ? readyConditions({ kind: 'stalled', reason: outcome.stalled.reason, message: outcome.stalled.message + failed }, generation)
        : outcome.failed.length > 0
          ? readyConditions({ kind: 'stalled', reason: 'TargetsDenied', message: `synced to ${outcome.synced.length} namespaces${failed}` }, generation)
          : readyConditions({ kind: 'ready', reason: 'Synced', message: `synced to ${outcome.synced.length} namespaces` }, generation);
      if (outcome.pruned.length > 0) io.events.normal(live, 'Pruned', `removed copies from ${outcome.pruned.join(', ')}`);
      const written = await io.writeStatus({ conditions, synced: outcome.synced, failed: outcome.failed });
      if (outcome.stalled && written) io.events.warning(live, outcome.stalled.reason, outcome.stalled.message);
    },
    forget: (key) => watches.forget(key),
    stop: () => watches.stop(),
  };
}
