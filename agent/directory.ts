/**
 * Directory passwords over LDAP (what the directory operator did, kept
 * honest): bind as the admin entry; for every other entry, a bind with the
 * Secret's value tells whether the password is current; if the directory
 * says the credentials are invalid, the RFC 3062 Password Modify extended
 * operation sets it as admin, and a second bind proves it took.
 *
 * Every connection and operation has a deadline (5 s to connect, TLS
 * included; 10 s per operation), and a failure of the connection itself (a
 * deadline passed, a reset, a closed connection) ends the whole sync: the
 * remaining entries would each wait for the same deadlines, holding the
 * agent's worker for minutes on a directory with many entries.
 */
import { BerWriter, Client, InvalidCredentialsError, ResultCodeError } from 'ldapts';

const PASSWORD_MODIFY_OID = '1.3.6.1.4.1.4203.1.11.1';

export interface DirectoryTarget {
  /** ldap:// or ldaps:// URL of one directory server. */
  url: string;
  /** PEM CA certificates for ldaps; the system's trust store when absent. */
  ca?: string;
  adminDn: string;
  adminPassword: string;
  timeoutMs?: number;
}

export interface EntryResult {
  dn: string;
  outcome: 'current' | 'rotated' | 'failed';
  /** Why it failed; never holds a password. */
  error?: string;
}

export class AdminBindError extends Error {
  constructor(
    readonly dn: string,
    reason: string,
  ) {
    super(`bind as ${dn} failed: ${reason}`);
    this.name = 'AdminBindError';
  }
}

/** The admin entry among spec.passwords: the DN whose first RDN is uid=admin. */
export function isAdminDn(dn: string): boolean {
  return /^\s*uid\s*=\s*admin\s*(,|$)/i.test(dn);
}

function passwordModifyRequest(dn: string, newPassword: string): Buffer {
  const w = new BerWriter();
  w.startSequence();
  w.writeString(dn, 0x80); // userIdentity
  // newPasswd is always sent: a server-generated one would come back to us, and kiln owns the value.
  w.writeString(newPassword, 0x82);
  w.endSequence();
  return w.buffer;
}

/** The directory cannot be talked to (as opposed to refusing one request): the sync stops. */
export class DirectoryUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DirectoryUnreachableError';
  }
}

/** A bind with the password just set still fails: that entry's problem, not the connection's. */
class RotationNotEffectiveError extends Error {}

const timeouts = (t: DirectoryTarget) => {
  const operationMs = t.timeoutMs ?? 10_000;
  return { operationMs, connectMs: Math.min(operationMs, 5_000) };
};

/** ldapts' connection-level failures, said with the deadline that passed. */
function unreachable(err: unknown, t: DirectoryTarget): DirectoryUnreachableError {
  const { operationMs, connectMs } = timeouts(t);
  const message = err instanceof Error ? err.message : String(err);
  if (message === 'Connection timeout') return new DirectoryUnreachableError(`no connection within ${connectMs / 1000} s (connect timeout, TLS handshake included)`);
  const op = /^(\w+): Operation timed out$/.exec(message);
  if (op) return new DirectoryUnreachableError(`${op[1]}: no answer within ${operationMs / 1000} s (operation timeout; connection closed)`);
  return new DirectoryUnreachableError(message.split('\n')[0]!);
}

function client(t: DirectoryTarget): Client {
  const { operationMs, connectMs } = timeouts(t);
  return new Client({
    url: t.url,
    timeout: operationMs,
    connectTimeout: connectMs,
    tlsOptions: t.url.startsWith('ldaps:') ? { ca: t.ca ? [t.ca] : undefined, minVersion: 'TLSv1.2' } : undefined,
  });
}

const reason = (err: unknown) => {
  const e = err as { code?: unknown; message?: unknown };
  return `${typeof e?.message === 'string' ? e.message : String(err)}${typeof e?.code === 'number' ? ` (LDAP result ${e.code})` : ''}`;
};

/** Whether `password` is the entry's current password (false on invalid credentials; throws on anything else). */
async function canBind(c: Client, dn: string, password: string): Promise<boolean> {
  try {
    await c.bind(dn, password);
    return true;
  } catch (err) {
    if (err instanceof InvalidCredentialsError) return false;
    throw err;
  }
}

/**
 * Checks every entry and rotates those whose password differs. Throws
 * AdminBindError when the admin cannot bind (nothing else can be done then),
 * and connection errors as they come; per-entry failures are in the result.
 */
export async function syncPasswords(t: DirectoryTarget, entries: { dn: string; password: string }[]): Promise<EntryResult[]> {
  const admin = client(t);
  const probe = client(t);
  try {
    try {
      await admin.bind(t.adminDn, t.adminPassword);
    } catch (err) {
      if (err instanceof InvalidCredentialsError) throw new AdminBindError(t.adminDn, "invalid credentials (the directory does not accept the password in the admin entry's Secret)");
      throw err instanceof ResultCodeError ? err : unreachable(err, t);
    }
    const results: EntryResult[] = [];
    for (const { dn, password } of entries) {
      try {
        if (await canBind(probe, dn, password)) {
          results.push({ dn, outcome: 'current' });
          continue;
        }
        await admin.exop(PASSWORD_MODIFY_OID, passwordModifyRequest(dn, password));
        if (!(await canBind(probe, dn, password))) throw new RotationNotEffectiveError('the directory accepted the new password but a bind with it still fails');
        results.push({ dn, outcome: 'rotated' });
      } catch (err) {
        if (!(err instanceof ResultCodeError) && !(err instanceof RotationNotEffectiveError)) throw unreachable(err, t);
        results.push({ dn, outcome: 'failed', error: reason(err) });
      }
    }
    return results;
  } finally {
    await Promise.allSettled([admin.unbind(), probe.unbind()]);
  }
}
