/**
 * The agent's trust boundaries with PostgreSQL, in their pure parts: which
 * objects kiln may manage, the bound on verifier iterations, one operation
 * per instance, the operator's policy, and the TLS render of a PostgresInstance.
 */
import { describe, expect, it } from 'vitest';
import { InstanceGate } from '../../agent/instance-gate.js';
import { DEFAULT_EXTENSIONS, postgresPolicy } from '../../agent/policy.js';
import { mayManage, type Marker } from '../../agent/postgres.js';
import { MAX_CHECKED_ITERATIONS, scramVerifier, verifierMatches } from '../../agent/scram.js';
import { render } from '../../kinds/render.js';
import type { K8sObject } from '../../kinds/types.js';
import { contextFromObjects } from '../../lib/context.js';
import { validate } from '../../validate/index.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

describe('which roles and databases kiln may manage', () => {
  const want: Marker = { resource: 'shop/orders', uid: 'u-1', created: true };
  it('its own marker (same uid), or the same resource made again after a Retain delete', () => {
    expect(mayManage({ resource: 'shop/orders', uid: 'u-1', created: true }, want)).toBe(true);
    expect(mayManage({ resource: 'shop/orders', uid: 'u-0', created: true }, want)).toBe(true);
  });
  it("never an object without a marker, or another resource's", () => {
    expect(mayManage(undefined, want)).toBe(false);
    expect(mayManage({ resource: 'shop/invoices', uid: 'u-2', created: true }, want)).toBe(false);
    expect(mayManage({ resource: 'other/orders', uid: 'u-3', created: true }, want)).toBe(false);
  });
});

describe('SCRAM verifiers read from a server', () => {
  it("are not checked when they ask for more iterations than pg's own limit (PBKDF2 runs on the event loop)", () => {
    const huge = scramVerifier('pw', Buffer.alloc(16, 1), 4096).replace('$4096:', '$2000000000:');
    const started = performance.now();
    expect(verifierMatches(huge, 'pw')).toBe(false);
    expect(performance.now() - started).toBeLessThan(100);
    expect(verifierMatches(scramVerifier('pw', undefined, MAX_CHECKED_ITERATIONS), 'pw')).toBe(true);
  });
});

describe('InstanceGate', () => {
  it('runs one operation per instance; another instance is not held up', async () => {
    const gate = new InstanceGate();
    let release!: () => void;
    const first = gate.tryRun('ns/a', () => new Promise<string>((r) => (release = () => r('first'))));
    expect(await gate.tryRun('ns/a', () => Promise.resolve('second'))).toBeUndefined();
    expect(await gate.tryRun('ns/b', () => Promise.resolve('other'))).toEqual({ value: 'other' });
    release();
    expect(await first).toEqual({ value: 'first' });
    expect(await gate.tryRun('ns/a', () => Promise.resolve('third'))).toEqual({ value: 'third' });
  });
  it('is free again after a failure', async () => {
    const gate = new InstanceGate();
    await expect(gate.tryRun('k', () => Promise.reject(new Error('x')))).rejects.toThrow('x');
    expect(gate.isBusy('k')).toBe(false);
  });
});

describe("the agent's PostgreSQL policy", () => {
  it('defaults to trusted contrib extensions, no insecure auth, 30 s statements', () => {
    const p = postgresPolicy({});
    expect([...p.extensions]).toEqual(DEFAULT_EXTENSIONS);
    for (const dangerous of ['file_fdw', 'dblink', 'postgres_fdw', 'adminpack', 'plpython3u', 'plperlu', 'pageinspect', 'pg_buffercache']) expect(p.extensions.has(dangerous)).toBe(false);
    expect(p.insecureAuthNamespaces.size).toBe(0);
    expect(p.timeouts).toMatchObject({ statementMs: 30_000, queryMs: 35_000, connectMs: 10_000, lockMs: 10_000 });
  });
  it("takes the flags' lists", () => {
    const p = postgresPolicy({ extensions: ['postgis'], insecureAuthNamespaces: ['legacy'], timeoutSeconds: 6 });
    expect([...p.extensions]).toEqual(['postgis']);
    expect(p.insecureAuthNamespaces.has('legacy')).toBe(true);
    expect(p.timeouts).toMatchObject({ statementMs: 6_000, queryMs: 11_000 });
  });
});

describe('PostgresInstance spec.tls', () => {
  const instance = (spec: Record<string, unknown>) => {
    const v = validate({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'db', namespace: 'shop' }, spec });
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    const objs = render(v.resource, contextFromObjects(v.resource, []));
    const sts = objs.find((o: K8sObject) => o.kind === 'StatefulSet') as Any;
    const conf = (objs.find((o: K8sObject) => o.kind === 'ConfigMap') as Any).data['postgresql.conf'] as string;
    return { sts, conf, pod: sts.spec.template.spec };
  };
  it('mounts the Secret (0640, group postgres) and turns ssl on with its files, over spec.parameters', () => {
    const { conf, pod } = instance({ tls: { secretName: 'db-tls' }, parameters: { ssl: 'off', ssl_cert_file: '/tmp/x' } });
    expect(conf).toContain("ssl = 'on'");
    expect(conf).toContain("ssl_cert_file = '/etc/postgresql/tls/tls.crt'");
    expect(conf).toContain("ssl_key_file = '/etc/postgresql/tls/tls.key'");
    expect(conf).toContain("ssl_ca_file = '/etc/postgresql/tls/ca.crt'");
    expect(conf).not.toContain('/tmp/x');
    expect(pod.volumes).toContainEqual({
      name: 'tls',
      secret: {
        secretName: 'db-tls',
        defaultMode: 0o640,
        items: [
          { key: 'tls.crt', path: 'tls.crt' },
          { key: 'tls.key', path: 'tls.key' },
          { key: 'ca.crt', path: 'ca.crt' },
        ],
      },
    });
    expect(pod.securityContext.fsGroup).toBe(999);
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/postgresql/tls', readOnly: true });
  });
  it('without it, nothing about TLS is rendered', () => {
    const { conf, pod } = instance({});
    expect(conf).not.toMatch(/ssl/);
    expect(pod.volumes.map((v: Any) => v.name)).not.toContain('tls');
  });
  it('a TLS change restarts the server (the config hash changes)', () => {
    const a = instance({}).sts.spec.template.metadata.annotations['kiln.dev/config-sha256'];
    const b = instance({ tls: { secretName: 'db-tls' } }).sts.spec.template.metadata.annotations['kiln.dev/config-sha256'];
    expect(a).not.toBe(b);
  });
});
