/**
 * Self-test of the throwaway PostgreSQL and OpenLDAP harnesses against the
 * real Debian servers: auth over TCP/TLS with the client libraries the agent
 * uses (pg, ldapts), stop/start on the same ports and data, statement logging,
 * and passwords stored hashed.
 */
import { Client as LdapClient, InvalidCredentialsError } from 'ldapts';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../harness/postgres.js';
import { startSlapd, type SlapdServer } from '../harness/slapd.js';

const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
  const t0 = performance.now();
  const v = await fn();
  console.log(`[servers] ${what}: ${Math.round(performance.now() - t0)} ms`);
  return v;
};

async function pgQuery(s: PostgresServer, password: string, query: string): Promise<unknown[]> {
  const c = new pg.Client({ host: s.host, port: s.port, user: s.superuser, password, database: 'postgres', connectionTimeoutMillis: 5_000 });
  await c.connect();
  try {
    return (await c.query(query)).rows;
  } finally {
    await c.end();
  }
}

describe('PostgreSQL harness', () => {
  let s: PostgresServer;
  beforeAll(async () => {
    s = await timed('postgres start (initdb + pg_ctl start)', () => startPostgres());
  });
  afterAll(async () => {
    await s?.destroy();
  });

  it('answers psql over the socket and pg over TCP with the superuser password only', async () => {
    expect(await s.sql('select 1')).toBe('1');
    expect(await s.sql("select 'a' union all select 'b'")).toBe('a\nb');
    await expect(s.sql('select no_such_column')).rejects.toThrow(/no_such_column/);
    expect(s.host).toBe('127.0.0.1');
    expect(await pgQuery(s, s.password, 'select current_user as u')).toEqual([{ u: 'postgres' }]);
    await expect(pgQuery(s, `${s.password}x`, 'select 1')).rejects.toThrow(/password authentication failed/);
  });

  it('logs every statement', async () => {
    const marker = `kiln_marker_${Date.now()}`;
    await pgQuery(s, s.password, `select '${marker}' as m`);
    expect(s.readLog()).toContain(`statement: select '${marker}' as m`);
  });

  it('stops (connections refused) and starts again on the same port and data', async () => {
    await s.sql('create table survives (x int); insert into survives values (42)');
    await timed('postgres stop', () => s.stop());
    await expect(pgQuery(s, s.password, 'select 1')).rejects.toThrow(/ECONNREFUSED/);
    await expect(s.sql('select 1')).rejects.toThrow();
    await timed('postgres restart', () => s.start());
    expect(await pgQuery(s, s.password, 'select x from survives')).toEqual([{ x: 42 }]);
    expect(await s.sql('select x from survives')).toBe('42');
  });
});

describe('OpenLDAP harness', () => {
  const configDn = 'uid=am-config,ou=admins,dc=kiln,dc=test';
  const bobDn = 'uid=bob,ou=people,dc=kiln,dc=test';
  let s: SlapdServer;
  beforeAll(async () => {
    s = await timed('slapd start (config + slapadd + start)', () => startSlapd({ accounts: [{ dn: configDn, password: 'initial-config-pw' }] }));
  });
  afterAll(async () => {
    await s?.destroy();
  });

  async function ldapsBind(dn: string, password: string): Promise<string> {
    const c = new LdapClient({ url: s.ldapsUrl, tlsOptions: { ca: [s.caPem] }, connectTimeout: 5_000, timeout: 5_000 });
    try {
      await c.bind(dn, password);
      return (await c.exop('1.3.6.1.4.1.4203.1.11.3')).value ?? ''; // Who am I?
    } finally {
      await c.unbind();
    }
  }

  it('binds the admin, rejects a wrong password, loads the base DIT and accounts', async () => {
    expect(s.url).toMatch(/^ldap:\/\/127\.0\.0\.1:\d+$/);
    expect(s.ldapsUrl).toMatch(/^ldaps:\/\/127\.0\.0\.1:\d+$/);
    expect(s.suffix).toBe('dc=kiln,dc=test');
    expect(s.adminDn).toBe('uid=admin,dc=kiln,dc=test');
    expect(await s.canBind(s.adminDn, s.adminPassword)).toBe(true);
    expect(await s.canBind(s.adminDn, `${s.adminPassword}x`)).toBe(false);
    expect(await s.canBind(configDn, 'initial-config-pw')).toBe(true);
    expect(await s.canBind(configDn, 'wrong')).toBe(false);
    expect(await s.userPasswords(configDn)).toEqual([expect.stringMatching(/^\{SSHA\}/)]);
  });

  it('sets passwords as admin (Password Modify), stored as {SSHA}', async () => {
    await s.addAccount(bobDn, 'bob-1');
    expect(await s.canBind(bobDn, 'bob-1')).toBe(true);
    await s.setPassword(bobDn, 'bob-2');
    expect(await s.canBind(bobDn, 'bob-2')).toBe(true);
    expect(await s.canBind(bobDn, 'bob-1')).toBe(false);
    const stored = await s.userPasswords(bobDn);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatch(/^\{SSHA\}/);
    expect(stored[0]).not.toContain('bob-2');
    await s.setPassword(configDn, 'rotated-config-pw');
    expect(await s.canBind(configDn, 'rotated-config-pw')).toBe(true);
  });

  it('serves ldaps with the self-signed certificate (ldapts, CA = caPem)', async () => {
    expect(s.caPem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(await ldapsBind(s.adminDn, s.adminPassword)).toBe(`dn:${s.adminDn}`);
    await expect(ldapsBind(bobDn, 'nope')).rejects.toBeInstanceOf(InvalidCredentialsError);
    // Without the CA the certificate is not trusted.
    const c = new LdapClient({ url: s.ldapsUrl, connectTimeout: 5_000 });
    await expect(c.bind(s.adminDn, s.adminPassword)).rejects.toThrow(/self[- ]signed|certificate/i);
    await c.unbind().catch(() => {});
  });

  it('stops (connections fail) and starts again on the same ports and data', async () => {
    await timed('slapd stop', () => s.stop());
    await expect(ldapsBind(s.adminDn, s.adminPassword)).rejects.toThrow(/ECONNREFUSED|connect/i);
    await expect(s.canBind(s.adminDn, s.adminPassword)).rejects.toThrow(/ldapwhoami .* exited/);
    await timed('slapd restart', () => s.start());
    expect(await ldapsBind(bobDn, 'bob-2')).toBe(`dn:${bobDn}`);
    expect(await s.canBind(s.adminDn, s.adminPassword)).toBe(true);
  });
});
