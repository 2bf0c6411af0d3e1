/** The agent's pure parts: SCRAM verifiers, name validation, redaction, claims, endpoints. */
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Endpoints, parseEndpoint } from '../../agent/context.js';
import { claimant, type PostgresDatabase } from '../../agent/database-reconciler.js';
import { isAdminDn } from '../../agent/directory.js';
import { databaseName, extensionName, InvalidNameError, quoteIdent, roleName } from '../../agent/names.js';
import { formatMarker, parseMarker } from '../../agent/postgres.js';
import { errorMessage, generatePassword, redact } from '../../agent/redact.js';
import { scramVerifier, verifierMatches } from '../../agent/scram.js';
import { trustedCas } from '../../agent/secrets.js';

describe('SCRAM-SHA-256 verifier', () => {
  it("has Postgres's format and the RFC 5802 keys", () => {
    const salt = Buffer.from('0123456789abcdef');
    const v = scramVerifier('pencil', salt);
    const salted = pbkdf2Sync('pencil', salt, 4096, 32, 'sha256');
    const stored = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest('base64');
    const server = createHmac('sha256', salted).update('Server Key').digest('base64');
    expect(v).toBe(`SCRAM-SHA-256$4096:${salt.toString('base64')}$${stored}:${server}`);
  });
  it('matches its own password and no other', () => {
    const v = scramVerifier('correct horse');
    expect(verifierMatches(v, 'correct horse')).toBe(true);
    expect(verifierMatches(v, 'correct horsf')).toBe(false);
    expect(verifierMatches('md5abc', 'x')).toBe(false);
    expect(verifierMatches(null, 'x')).toBe(false);
  });
  it('uses a fresh salt each time', () => {
    expect(scramVerifier('x')).not.toBe(scramVerifier('x'));
  });
});

describe('SQL names', () => {
  it('accepts identifiers and quotes them', () => {
    expect(databaseName('orders_2')).toBe('orders_2');
    expect(quoteIdent(roleName('app'))).toBe('"app"');
  });
  it.each([['a"; DROP DATABASE postgres; --'], ['Orders'], ['1abc'], ['a'.repeat(64)], [''], ['a-b']])('refuses %j, naming the field', (name) => {
    expect(() => databaseName(name, 'spec.name')).toThrow(InvalidNameError);
    expect(() => databaseName(name, 'spec.name')).toThrow(/^spec\.name: /);
  });
  it('refuses system databases and reserved roles', () => {
    expect(() => databaseName('template1')).toThrow(/system database/);
    expect(() => roleName('pg_monitor')).toThrow(/reserved/);
    expect(() => roleName('postgres')).toThrow(/superuser/);
    expect(() => extensionName('x; drop')).toThrow(InvalidNameError);
  });
  it('whatever it accepts is a plain identifier (property)', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          databaseName(s);
        } catch {
          return;
        }
        expect(s).toMatch(/^[a-z_][a-z0-9_]{0,62}$/);
      }),
    );
  });
});

describe('redaction', () => {
  it('removes known secrets, URI passwords and SCRAM verifiers', () => {
    const out = redact('auth failed for postgresql://app:s3cr3tpw@db:5432/x with s3cr3tpw and SCRAM-SHA-256$4096:abc$def:ghi', ['s3cr3tpw']);
    expect(out).not.toContain('s3cr3tpw');
    expect(out).not.toContain('def:ghi');
    expect(out).toContain('postgresql://app:***@db:5432/x');
  });
  it('scrubs error messages', () => {
    expect(errorMessage(new Error('password hunter22 rejected'), ['hunter22'])).toBe('password *** rejected');
  });
  it('generates 32 letters and digits, all different', () => {
    const seen = new Set(Array.from({ length: 200 }, () => generatePassword()));
    expect(seen.size).toBe(200);
    for (const p of seen) expect(p).toMatch(/^[A-Za-z0-9]{32}$/);
  });
});

describe('ownership markers', () => {
  it('round-trip and ignore foreign comments', () => {
    const m = { resource: 'shop/orders', uid: 'u-1', created: true };
    expect(parseMarker(formatMarker(m))).toEqual(m);
    expect(parseMarker('hand-made database')).toBeUndefined();
    expect(parseMarker('kiln.dev {broken')).toBeUndefined();
    expect(parseMarker(null)).toBeUndefined();
  });
});

describe('claims', () => {
  const db = (name: string, uid: string, created: string, spec: Partial<PostgresDatabase['spec']> = {}): PostgresDatabase => ({
    apiVersion: 'kiln.dev/v1alpha1',
    kind: 'PostgresDatabase',
    metadata: { name, namespace: 'shop', uid, creationTimestamp: created },
    spec: { instance: 'pg', name: 'orders', ...spec },
  });
  it('the oldest resource claiming a database keeps it; the other is told who holds it', () => {
    const a = db('a', '1', '2026-01-01T00:00:00Z');
    const b = db('b', '2', '2026-01-02T00:00:00Z');
    expect(claimant([a, b], a)).toBeUndefined();
    expect(claimant([a, b], b)?.metadata.name).toBe('a');
  });
  it('same owner role is a conflict too; other instances and names are not', () => {
    const a = db('a', '1', '2026-01-01T00:00:00Z', { name: 'one', owner: 'app' });
    const b = db('b', '2', '2026-01-02T00:00:00Z', { name: 'two', owner: 'app' });
    const c = db('c', '3', '2026-01-01T00:00:00Z', { name: 'one', instance: 'other' });
    const d = db('d', '4', '2026-01-01T00:00:00Z', { name: 'four' });
    expect(claimant([a, b, c, d], b)?.metadata.name).toBe('a');
    expect(claimant([a, b, c, d], c)).toBeUndefined();
    expect(claimant([a, b, c, d], d)).toBeUndefined();
  });
  it('same creation second: the name decides, so both agents agree', () => {
    const a = db('a', '1', '2026-01-01T00:00:00Z');
    const b = db('b', '2', '2026-01-01T00:00:00Z');
    expect(claimant([b, a], b)?.metadata.name).toBe('a');
    expect(claimant([b, a], a)).toBeUndefined();
  });
});

describe('endpoints and DNs', () => {
  it('default to the Services kiln renders', () => {
    const e = new Endpoints();
    expect(e.directory('identity', 'ds')).toBe('ldaps://ds-0.ds.identity.svc:1636');
    expect(e.postgres('shop', 'pg', 5433)).toEqual({ host: 'pg-client.shop.svc', port: 5433 });
  });
  it('take overrides from --endpoint', () => {
    const e = new Endpoints(Object.fromEntries([parseEndpoint('PostgresInstance/shop/pg=127.0.0.1:6543'), parseEndpoint('DirectoryService/identity/ds=ldap://127.0.0.1:3890')]));
    expect(e.postgres('shop', 'pg', 5432)).toEqual({ host: '127.0.0.1', port: 6543 });
    expect(e.directory('identity', 'ds')).toBe('ldap://127.0.0.1:3890');
    expect(() => parseEndpoint('Secret/x/y=z')).toThrow(/--endpoint/);
  });
  it('the admin entry is the one whose first RDN is uid=admin', () => {
    expect(isAdminDn('uid=admin')).toBe(true);
    expect(isAdminDn('UID=Admin,dc=kiln,dc=test')).toBe(true);
    expect(isAdminDn('uid=administrator,dc=x')).toBe(false);
    expect(isAdminDn('uid=am,ou=admin')).toBe(false);
  });
  it('truststore: ca.crt, else every certificate', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n';
    const b = (s: string) => Buffer.from(s).toString('base64');
    expect(trustedCas({ metadata: { name: 't' }, data: { 'ca.crt': b(pem), other: b('x') } })).toBe(pem);
    expect(trustedCas({ metadata: { name: 't' }, data: { 'a.pem': b(pem), 'b.txt': b('x') } })).toBe(pem);
    expect(trustedCas(undefined)).toBeUndefined();
  });
});
