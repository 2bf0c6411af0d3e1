/**
 * SCRAM-SHA-256 verifiers (RFC 5802/7677) computed on kiln's side, so the
 * cleartext password never travels to or through the server: Postgres stores
 * exactly the string built here, and the role logs in with the cleartext.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

const ITERATIONS = 4096;
/**
 * The most iterations verifierMatches() will compute: the stored verifier
 * comes from the server, which may be hostile, and PBKDF2 runs on the event
 * loop (2^31 iterations would stall every tenant's work for minutes). The
 * same bound as pg's scramMaxIterations.
 */
export const MAX_CHECKED_ITERATIONS = 100_000;

function keys(password: string, salt: Buffer, iterations: number): { storedKey: Buffer; serverKey: Buffer } {
  // SASLprep is the identity for the printable ASCII passwords kiln generates;
  // Postgres itself falls back to the raw bytes when a password is not valid UTF-8 SASLprep input.
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

/** `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, Postgres's pg_authid.rolpassword format. */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = ITERATIONS): string {
  const { storedKey, serverKey } = keys(password, salt, iterations);
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Whether a stored verifier was made from `password` (false for MD5 hashes, cleartext, no password, or too many iterations to check). */
export function verifierMatches(stored: string | null | undefined, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(stored ?? '');
  if (!m || Number(m[1]) > MAX_CHECKED_ITERATIONS) return false;
  const { storedKey, serverKey } = keys(password, Buffer.from(m[2]!, 'base64'), Number(m[1]));
  const wantStored = Buffer.from(m[3]!, 'base64');
  const wantServer = Buffer.from(m[4]!, 'base64');
  return wantStored.length === storedKey.length && wantServer.length === serverKey.length && timingSafeEqual(wantStored, storedKey) && timingSafeEqual(wantServer, serverKey);
}
