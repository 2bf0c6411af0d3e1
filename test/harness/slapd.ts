/**
 * A throwaway OpenLDAP server (Debian's slapd 2.5) for integration tests: a
 * private cn=config and mdb database in a temp dir, listening on free loopback
 * ports for ldap:// and ldaps:// (self-signed certificate, SAN IP:127.0.0.1).
 *
 * Directory: `dc=kiln,dc=test` with `ou=admins` and `ou=people`; the rootdn
 * `uid=admin,dc=kiln,dc=test` binds with `adminPassword` (an {SSHA} olcRootPW)
 * and, as rootdn, may change any password. Account passwords are only ever
 * stored as {SSHA} hashes (slapadd/ldapadd of a precomputed hash, or the
 * Password Modify extended operation); never as cleartext.
 *
 * Lifetime: slapd runs in the foreground (`-d none`) through a bash wrapper
 * that kills it and removes the temp dir when this Node process goes away;
 * destroy() and a process 'exit' hook kill it eagerly. Recipes: /work/shared/reference/test-servers.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from './ports.js';
import { run } from './run.js';

export interface SlapdServer {
  /** ldap://127.0.0.1:<port> */
  url: string;
  /** ldaps://127.0.0.1:<port>, self-signed certificate with SAN IP:127.0.0.1 */
  ldapsUrl: string;
  /** PEM of that certificate: clients trust it as the CA */
  caPem: string;
  /** 'dc=kiln,dc=test' */
  suffix: string;
  /** 'uid=admin,dc=kiln,dc=test', the rootdn: it may change any password */
  adminDn: string;
  adminPassword: string;
  /** temp dir holding config, data, certificate and slapd.log */
  dir: string;
  /** slapd's stdout/stderr (`-d none`: only fatal errors) */
  logFile: string;
  /** true on success, false on invalidCredentials (49); throws on any other error */
  canBind(dn: string, password: string): Promise<boolean>;
  /** as admin via the Password Modify extended operation (ldappasswd -s): stored as {SSHA} */
  setPassword(dn: string, password: string): Promise<void>;
  /** an inetOrgPerson entry (cn, sn and the RDN attribute from the DN) with that password, stored as {SSHA} */
  addAccount(dn: string, password: string): Promise<void>;
  /** the stored userPassword values of `dn`, read as admin (e.g. to assert they are hashed) */
  userPasswords(dn: string): Promise<string[]>;
  /** SIGTERM, wait for exit; start() again later on the same ports and data */
  stop(): Promise<void>;
  /** start again (no-op while running); resolves when it answers binds on both URLs */
  start(): Promise<void>;
  /** stop and remove the temp dir */
  destroy(): Promise<void>;
}

export interface SlapdOptions {
  /** extra accounts loaded with the base DIT (passwords stored as {SSHA}) */
  accounts?: { dn: string; password: string }[];
}

const SLAPD = '/usr/sbin/slapd';
const SLAPADD = '/usr/sbin/slapadd';
const SCHEMA_DIR = '/etc/ldap/schema';
const MODULE_DIR = '/usr/lib/ldap';
const CLIENTS = ['ldapwhoami', 'ldappasswd', 'ldapadd', 'ldapsearch'];
const SUFFIX = 'dc=kiln,dc=test';
const ADMIN_DN = `uid=admin,${SUFFIX}`;

// ---------------------------------------------------------------------------
// helpers

async function runOk(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const shown = args.map((a, i) => (args[i - 1] === '-w' || args[i - 1] === '-s' ? '***' : a)); // no passwords in errors
    throw new Error(`${path.basename(cmd)} ${shown.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

function which(bin: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/sbin', '/bin', '/sbin'])) {
    if (d && existsSync(path.join(d, bin))) return path.join(d, bin);
  }
  return undefined;
}

function requireBinaries(): void {
  const missing: string[] = [];
  if (!existsSync(SLAPD) || !existsSync(SLAPADD) || !existsSync(path.join(SCHEMA_DIR, 'inetorgperson.ldif'))) missing.push('slapd');
  if (CLIENTS.some((c) => !which(c))) missing.push('ldap-utils');
  if (!which('openssl')) missing.push('openssl');
  if (missing.length) {
    throw new Error(`test LDAP server: missing Debian package(s) ${missing.join(', ')}: run \`DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing.join(' ')}\``);
  }
}

/** {SSHA}: base64(SHA1(password + salt) + salt), as slappasswd -h {SSHA} makes it. */
export function sshaHash(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password, 'utf8').update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

/** One LDIF attribute line; base64 (`::`) unless the value is a plain SAFE-STRING. */
function ldifLine(attr: string, value: string): string {
  // eslint-disable-next-line no-control-regex -- RFC 2849 SAFE-STRING is defined by control-character ranges
  return /^[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*$/.test(value) && !value.endsWith(' ')
    ? `${attr}: ${value}`
    : `${attr}:: ${Buffer.from(value, 'utf8').toString('base64')}`;
}

/** The first RDN of a DN as attribute and (unescaped) value. */
function firstRdn(dn: string): { attr: string; value: string } {
  const m = /^\s*([A-Za-z][A-Za-z0-9-]*)\s*=((?:[^,+\\]|\\.)*)(?:,|$)/.exec(dn);
  if (!m) throw new Error(`test LDAP server: cannot parse the RDN of ${JSON.stringify(dn)}`);
  const value = m[2]!.replace(/\\([0-9a-fA-F]{2}|.)/g, (_, e: string) => (e.length === 2 ? String.fromCharCode(parseInt(e, 16)) : e));
  return { attr: m[1]!, value };
}

function accountEntry(dn: string, password: string): string {
  const { attr, value } = firstRdn(dn);
  const lower = attr.toLowerCase();
  const lines = [ldifLine('dn', dn), 'objectClass: inetOrgPerson', ldifLine('cn', value), ldifLine('sn', value)];
  if (lower !== 'cn' && lower !== 'sn') lines.push(ldifLine(attr, value));
  lines.push(`userPassword: ${sshaHash(password)}`);
  return lines.join('\n') + '\n';
}

function configLdif(dir: string, rootPwHash: string): string {
  const schema = ['core', 'cosine', 'inetorgperson', 'nis'].map((s) => `include: file://${SCHEMA_DIR}/${s}.ldif`).join('\n\n');
  return `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: ${dir}/slapd.pid
olcArgsFile: ${dir}/slapd.args
olcLogLevel: none
olcTLSCertificateFile: ${dir}/cert.pem
olcTLSCertificateKeyFile: ${dir}/key.pem

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: ${MODULE_DIR}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

${schema}

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcPasswordHash: {SSHA}

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: ${SUFFIX}
olcRootDN: ${ADMIN_DN}
olcRootPW: ${rootPwHash}
olcDbDirectory: ${dir}/data
olcDbMaxSize: 67108864
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by self read by users read by * none
`;
}

function baseLdif(accounts: { dn: string; password: string }[]): string {
  const base = `dn: ${SUFFIX}
objectClass: dcObject
objectClass: organization
dc: kiln
o: kiln

dn: ou=admins,${SUFFIX}
objectClass: organizationalUnit
ou: admins

dn: ou=people,${SUFFIX}
objectClass: organizationalUnit
ou: people
`;
  return [base, ...accounts.map((a) => accountEntry(a.dn, a.password))].join('\n');
}

// ---------------------------------------------------------------------------
// process lifetime

/*
 * Runs the server so that it dies with its owner: a background loop polls the
 * owner pid and the server pid and TERMs (then KILLs) the server once the
 * owner is gone, then removes the temp dir. `exec` keeps the server's pid
 * equal to the one Node sees. argv: owner-pid, temp dir, binary, args...
 */
const WRAPPER = `
owner=$1; dir=$2; shift 2
self=$$
(
  trap '' INT HUP TERM
  while kill -0 "$owner" 2>/dev/null && kill -0 "$self" 2>/dev/null; do sleep 1; done
  kill -0 "$owner" 2>/dev/null && sleep 1 # slapd killed by the owner's exit hook: let the owner finish exiting
  if ! kill -0 "$owner" 2>/dev/null; then
    if kill -0 "$self" 2>/dev/null; then
      kill -TERM "$self" 2>/dev/null
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$self" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$self" 2>/dev/null
      sleep 0.2
    fi
    case "$dir" in */kiln-slapd-*) rm -rf -- "$dir" ;; esac
  fi
) </dev/null >/dev/null 2>&1 &
exec "$@"
`;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        process.kill(child.pid!, 'SIGKILL'); // slapd only: its watchdog then removes the temp dir
      } catch {
        /* gone */
      }
    }
  });
}

// ---------------------------------------------------------------------------

export async function startSlapd(opts: SlapdOptions = {}): Promise<SlapdServer> {
  requireBinaries();
  installExitHook();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-slapd-'));
  try {
    const [port, ldapsPort] = (await freePorts(2)) as [number, number];
    const url = `ldap://127.0.0.1:${port}`;
    const ldapsUrl = `ldaps://127.0.0.1:${ldapsPort}`;
    const adminPassword = randomBytes(18).toString('base64url');
    const logFile = path.join(dir, 'slapd.log');
    const adminPwFile = path.join(dir, 'admin.pw');
    const certFile = path.join(dir, 'cert.pem');

    await runOk('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      certFile,
    ]);
    const caPem = readFileSync(certFile, 'utf8');
    await writeFile(adminPwFile, adminPassword, { mode: 0o600 }); // -y reads the whole file: no newline
    await writeFile(path.join(dir, 'ldap.conf'), `TLS_CACERT ${certFile}\nTLS_REQCERT demand\n`);
    await mkdir(path.join(dir, 'slapd.d'));
    await mkdir(path.join(dir, 'data'));
    await writeFile(path.join(dir, 'config.ldif'), configLdif(dir, sshaHash(adminPassword)), { mode: 0o600 });
    await writeFile(path.join(dir, 'base.ldif'), baseLdif(opts.accounts ?? []), { mode: 0o600 });
    await runOk(SLAPADD, ['-n0', '-F', path.join(dir, 'slapd.d'), '-l', path.join(dir, 'config.ldif')]);
    await runOk(SLAPADD, ['-q', '-n1', '-F', path.join(dir, 'slapd.d'), '-l', path.join(dir, 'base.ldif')]);

    // Client tools see only our ldap.conf: no system/user defaults, no LDAP* variables of the caller.
    const clientEnv: NodeJS.ProcessEnv = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LDAP'))),
      LDAPCONF: path.join(dir, 'ldap.conf'),
      LDAPRC: 'kiln-no-ldaprc',
    };
    const asAdmin = ['-x', '-H', url, '-D', ADMIN_DN, '-y', adminPwFile];

    let child: ChildProcess | undefined;
    let exited: Promise<void> = Promise.resolve();

    const adminBinds = async (u: string) => (await run('ldapwhoami', ['-x', '-H', u, '-D', ADMIN_DN, '-y', adminPwFile, '-o', 'nettimeout=2'], { env: clientEnv, timeoutMs: 5_000 })).code === 0;

    const start = async () => {
      if (child) return;
      const fh = await open(logFile, 'a');
      const c = spawn('bash', ['-c', WRAPPER, 'kiln-slapd', String(process.pid), dir, SLAPD, '-d', 'none', '-F', path.join(dir, 'slapd.d'), '-h', `${url}/ ${ldapsUrl}/`], {
        cwd: dir,
        stdio: ['ignore', fh.fd, fh.fd],
        detached: true, // own process group: stop() kills slapd and its watchdog together
      });
      await fh.close();
      c.unref();
      child = c;
      live.add(c);
      let gone = false;
      exited = new Promise<void>((resolve) => {
        const done = () => {
          gone = true;
          live.delete(c);
          if (child === c) child = undefined;
          resolve();
        };
        c.on('exit', done);
        c.on('error', done);
      });
      const deadline = Date.now() + 20_000;
      for (;;) {
        if (gone) throw new Error(`slapd exited during startup; log ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-4000)}`);
        if ((await adminBinds(url)) && (await adminBinds(ldapsUrl))) return;
        if (Date.now() > deadline) {
          await stop();
          throw new Error(`slapd not ready on ${url} and ${ldapsUrl} after 20 s; log ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-4000)}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    };

    const stop = async () => {
      const c = child;
      if (!c?.pid) return;
      try {
        process.kill(-c.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 10_000)))]);
      clearTimeout(timer);
      if (!done) {
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await exited;
      }
    };

    const server: SlapdServer = {
      url,
      ldapsUrl,
      caPem,
      suffix: SUFFIX,
      adminDn: ADMIN_DN,
      adminPassword,
      dir,
      logFile,
      async canBind(dn, password) {
        const r = await run('ldapwhoami', ['-x', '-H', url, '-D', dn, '-w', password], { env: clientEnv });
        if (r.code === 0) return true;
        if (r.code === 49) return false;
        throw new Error(`ldapwhoami as ${dn} exited ${r.code}: ${r.stderr.trim()}`);
      },
      async setPassword(dn, password) {
        await runOk('ldappasswd', [...asAdmin, '-s', password, dn], { env: clientEnv });
      },
      async addAccount(dn, password) {
        await runOk('ldapadd', asAdmin, { env: clientEnv, input: accountEntry(dn, password) });
      },
      async userPasswords(dn) {
        const out = await runOk('ldapsearch', [...asAdmin, '-LLL', '-o', 'ldif-wrap=no', '-s', 'base', '-b', dn, '(objectClass=*)', 'userPassword'], { env: clientEnv });
        return out.split('\n').flatMap((l) => {
          if (l.startsWith('userPassword:: ')) return [Buffer.from(l.slice(15), 'base64').toString('utf8')];
          if (l.startsWith('userPassword: ')) return [l.slice(14)];
          return [];
        });
      },
      stop,
      start,
      async destroy() {
        await stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
    await start();
    return server;
  } catch (e) {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw e;
  }
}
