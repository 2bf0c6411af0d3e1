/**
 * ConfigMapSync in the controller: apply mode runs its own reconciler
 * (reconcile.ts: copies written with the tenant's ServiceAccount), and turns
 * what it did into conditions and events; git mode cannot carry it out.
 */
import { readyConditions } from '../../kube/status.js';
import type { CustomEnv, CustomReconciler } from '../kind.js';
import { ServiceAccountTokens } from '../../kube/service-account-clients.js';
import { reconcileConfigMapSync, type ConfigMapSyncDeps } from './reconcile.js';

export function configMapSyncReconciler(env: CustomEnv): CustomReconciler {
  // One token cache per controller: tokens are requested per ServiceAccount and reused until they near expiry.
  const deps: ConfigMapSyncDeps = { kc: env.kc, fieldManager: env.fieldManager, tokens: new ServiceAccountTokens(env.kc), log: env.log };
  return {
    async reconcile(live, io) {
      const outcome = await reconcileConfigMapSync(live, deps);
      if (live.metadata.deletionTimestamp) return;
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
  };
}
