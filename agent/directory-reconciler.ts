/**
 * DirectoryService: keeps the passwords in the directory equal to their
 * Secrets (spec.passwords), generating values for `create: true` entries.
 * Writes status.passwords and the PasswordsSynced condition.
 */
import type { KubeObject } from '../kube/informer.js';
import { AdminBindError, isAdminDn, syncPasswords, type EntryResult } from './directory.js';
import type { AgentContext } from './context.js';
import type { NamespacedName, Reconciler, Result } from '../kube/reconcile.js';
import type { StatusWriter } from '../kube/status.js';
import { errorMessage, generatePassword } from './redact.js';
import { ensureSecretKey, secretValue, trustedCas } from './secrets.js';
import { condition } from './status.js';

interface PasswordRef {
  secretName: string;
  key?: string;
  create?: boolean;
}

type DirectoryService = KubeObject & { spec: { passwords?: Record<string, PasswordRef>; secrets?: { truststore?: string } } };

export const PASSWORDS_SYNCED = 'PasswordsSynced';

/** Thrown after the status says what went wrong, so the queue retries with backoff. */
export class RetryLater extends Error {}

export class DirectoryReconciler implements Reconciler<NamespacedName> {
  constructor(
    private readonly ctx: AgentContext,
    private readonly status: StatusWriter,
  ) {}

  async reconcile({ namespace, name }: NamespacedName): Promise<Result> {
    const { ctx } = this;
    const ds = ctx.caches.get('DirectoryService', namespace, name) as DirectoryService | undefined;
    if (!ds || ds.metadata.deletionTimestamp) return {};
    const passwords = ds.spec.passwords ?? {};
    const dns = Object.keys(passwords).sort();
    const gen = ds.metadata.generation;
    const hadStatus = !!(ds.status as { passwords?: unknown } | undefined)?.passwords;
    if (dns.length === 0 && !hadStatus) return {};

    const secrets: string[] = [];
    const write = async (ok: boolean, reason: string, message: string, synced: number) =>
      (await this.status.write(ds, { passwords: { synced, total: dns.length }, conditions: [condition(PASSWORDS_SYNCED, ok, reason, message, gen)] })).written;

    // Every entry's value, generating those that may be generated.
    const values = new Map<string, string>();
    const missing: string[] = [];
    for (const dn of dns) {
      const ref = passwords[dn]!;
      const key = ref.key ?? 'password';
      let value = secretValue(ctx.caches.get('Secret', namespace, ref.secretName), key);
      if (value === undefined && ref.create) {
        value = await ensureSecretKey(ctx.client, { namespace, name: ref.secretName }, key, () => generatePassword(), {
          labels: { 'app.kubernetes.io/managed-by': 'kiln-agent' },
        });
        ctx.events.normal(ds, 'PasswordGenerated', `generated a password for ${dn} into Secret ${ref.secretName} (key ${key})`);
      }
      if (value === undefined) missing.push(`${dn} (Secret ${ref.secretName}, key ${key})`);
      else values.set(dn, value);
      if (value) secrets.push(value);
    }

    if (dns.length === 0) {
      await write(true, 'NoPasswords', 'spec.passwords is empty', 0);
      return {};
    }
    const adminDn = dns.find(isAdminDn);
    if (!adminDn) {
      await write(false, 'NoAdminEntry', 'spec.passwords has no uid=admin entry: the agent binds as it to change the others', 0);
      return {};
    }
    const adminPassword = values.get(adminDn);
    if (adminPassword === undefined) {
      await write(false, 'SecretMissing', `no value for the admin entry: ${missing.join('; ')}`, 0);
      return { requeueAfterMs: ctx.passwordIntervalMs };
    }

    const truststore = ds.spec.secrets?.truststore;
    const ca = truststore ? trustedCas(ctx.caches.get('Secret', namespace, truststore)) : undefined;
    const url = ctx.endpoints.directory(namespace, name);
    const entries = dns.filter((dn) => dn !== adminDn && values.has(dn)).map((dn) => ({ dn, password: values.get(dn)! }));

    let results: EntryResult[];
    try {
      results = await syncPasswords({ url, ca, adminDn, adminPassword }, entries);
    } catch (err) {
      const message = errorMessage(err, secrets);
      const reason = err instanceof AdminBindError ? 'AdminBindFailed' : 'DirectoryUnreachable';
      ctx.task('DirectoryService', 'passwords', 'error');
      if (await write(false, reason, `${url}: ${message}`, 0)) ctx.events.warning(ds, reason, `${url}: ${message}`);
      throw new RetryLater(`${reason}: ${message}`);
    }

    const rotated = results.filter((r) => r.outcome === 'rotated');
    const failed = results.filter((r) => r.outcome === 'failed');
    for (const r of rotated) ctx.events.normal(ds, 'PasswordRotated', `set the password of ${r.dn} to its Secret's value`);
    const synced = results.length - failed.length + 1; // + the admin entry, which just bound
    const problems = [...failed.map((f) => `${f.dn}: ${errorMessage(f.error, secrets)}`), ...missing.map((m) => `no value for ${m}`)];
    ctx.task('DirectoryService', 'passwords', problems.length ? 'error' : 'success');
    if (rotated.length) ctx.log('info', 'directory passwords rotated', { resource: `${namespace}/${name}`, rotated: rotated.map((r) => r.dn) });
    const wrote = problems.length
      ? await write(false, failed.length ? 'RotationFailed' : 'SecretMissing', problems.join('; '), synced)
      : await write(true, 'PasswordsSynced', `${synced} of ${dns.length} entries match their Secrets`, synced);
    if (wrote && failed.length) ctx.events.warning(ds, 'RotationFailed', problems.join('; '));
    return { requeueAfterMs: failed.length ? Math.min(ctx.passwordIntervalMs, 30_000) : ctx.passwordIntervalMs };
  }
}
