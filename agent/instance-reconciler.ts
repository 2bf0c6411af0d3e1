/**
 * PostgresInstance: when spec.superuserSecret names no Secret, the agent
 * generates `<name>-superuser` (keys username and password) before the
 * StatefulSet needs it. The Secret has no owner: like the data volume, it
 * outlives the resource, because the data directory keeps that password.
 */
import type { KubeObject } from '../kube/informer.js';
import type { AgentContext } from './context.js';
import type { NamespacedName, Reconciler, Result } from '../kube/reconcile.js';
import type { StatusWriter } from '../kube/status.js';
import { generatePassword } from './redact.js';
import { ensureSecretKey, secretValue } from './secrets.js';
import { condition } from './status.js';

export type PostgresInstance = KubeObject & {
  spec: {
    superuserSecret?: { name?: string; key?: string };
    service?: { port?: number };
    tls?: { secretName: string };
    allowInsecureAuth?: boolean;
  };
};

export const SUPERUSER_READY = 'SuperuserSecretReady';

export function superuserSecretRef(pi: PostgresInstance): { name: string; key: string; generated: boolean } {
  const name = pi.spec.superuserSecret?.name;
  return name ? { name, key: pi.spec.superuserSecret?.key ?? 'password', generated: false } : { name: `${pi.metadata.name}-superuser`, key: 'password', generated: true };
}

export class InstanceReconciler implements Reconciler<NamespacedName> {
  constructor(
    private readonly ctx: AgentContext,
    private readonly status: StatusWriter,
  ) {}

  async reconcile({ namespace, name }: NamespacedName): Promise<Result> {
    const { ctx } = this;
    const pi = ctx.caches.get('PostgresInstance', namespace, name) as PostgresInstance | undefined;
    if (!pi || pi.metadata.deletionTimestamp) return {};
    const ref = superuserSecretRef(pi);
    const gen = pi.metadata.generation;
    let present = secretValue(ctx.caches.get('Secret', namespace, ref.name), ref.key) !== undefined;
    if (!present && ref.generated) {
      await ensureSecretKey(ctx.client, { namespace, name: ref.name }, ref.key, () => generatePassword(), {
        labels: { 'app.kubernetes.io/managed-by': 'kiln-agent', 'kiln.dev/postgres-instance': name },
        data: { username: 'postgres' },
      });
      ctx.events.normal(pi, 'SuperuserSecretGenerated', `generated the superuser password into Secret ${ref.name}`);
      ctx.task('PostgresInstance', 'superuser-secret', 'success');
      present = true;
    }
    await this.status.write(pi, {
      superuserSecret: ref.name,
      conditions: [
        present
          ? condition(SUPERUSER_READY, true, 'SecretPresent', `Secret ${ref.name} holds the superuser password (key ${ref.key})`, gen)
          : condition(SUPERUSER_READY, false, 'SecretMissing', `spec.superuserSecret: Secret ${ref.name} has no key ${ref.key}; the server cannot start without it`, gen),
      ],
    });
    return {};
  }
}
