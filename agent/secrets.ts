/**
 * Reading and writing the Secrets the agent works with. Values are decoded
 * only here and handed to the code that needs them; they never reach a log,
 * a status or an Event.
 */
import type { KubeApi } from '../kube/client.js';
import { isConflict, isNotFound } from '../kube/client.js';
import type { KubeObject } from '../kube/informer.js';
import { FIELD_MANAGER } from './status.js';

export type SecretObject = KubeObject & { data?: Record<string, string>; type?: string };

export function secretValue(secret: SecretObject | undefined, key: string): string | undefined {
  const b64 = secret?.data?.[key];
  return b64 === undefined ? undefined : Buffer.from(b64, 'base64').toString('utf8');
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/**
 * Adds `key` to a Secret (creating the Secret when missing) unless it is
 * already there; returns the value now in the Secret. The merge patch carries
 * the resourceVersion read, so two writers racing cannot both win: the loser
 * re-reads and takes the winner's value.
 */
export async function ensureSecretKey(
  client: KubeApi,
  ref: { namespace: string; name: string },
  key: string,
  generate: () => string,
  extra: { labels?: Record<string, string>; data?: Record<string, string> } = {},
): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    let live: SecretObject | undefined;
    try {
      live = await client.get<SecretObject>({ apiVersion: 'v1', kind: 'Secret', namespace: ref.namespace, name: ref.name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const have = secretValue(live, key);
    if (have !== undefined) return have;
    const value = generate();
    try {
      if (!live) {
        await client.request('POST', `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets`, {
          query: { fieldManager: FIELD_MANAGER },
          body: {
            apiVersion: 'v1',
            kind: 'Secret',
            type: 'Opaque',
            metadata: { name: ref.name, namespace: ref.namespace, labels: extra.labels },
            data: { ...Object.fromEntries(Object.entries(extra.data ?? {}).map(([k, v]) => [k, b64(v)])), [key]: b64(value) },
          },
        });
      } else {
        await client.request('PATCH', `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets/${encodeURIComponent(ref.name)}`, {
          query: { fieldManager: FIELD_MANAGER },
          body: { metadata: { resourceVersion: live.metadata.resourceVersion }, data: { [key]: b64(value) } },
          contentType: 'application/merge-patch+json',
        });
      }
      return value;
    } catch (err) {
      if (!isConflict(err)) throw err; // 409: created or changed meanwhile; read again
    }
  }
  throw new Error(`Secret ${ref.namespace}/${ref.name}: gave up adding key ${key} after repeated conflicts`);
}

/** PEM certificates in a truststore Secret: ca.crt when present, else every value that holds a certificate. */
export function trustedCas(secret: SecretObject | undefined): string | undefined {
  if (!secret?.data) return undefined;
  const ca = secretValue(secret, 'ca.crt');
  if (ca) return ca;
  const pems = Object.keys(secret.data)
    .sort()
    .map((k) => secretValue(secret, k) ?? '')
    .filter((v) => v.includes('-----BEGIN CERTIFICATE-----'));
  return pems.length ? pems.join('\n') : undefined;
}
