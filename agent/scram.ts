/**
 * SCRAM-SHA-256 verifiers (RFC 5802/7677) computed on kiln's side, so the
 * cleartext password never travels to or through the server: Postgres stores
 * exactly the string built here, and the role logs in with the cleartext.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

const ITERATIONS = 4096;

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

/** Whether a stored verifier was made from `password` (false for MD5 hashes, cleartext or no password). */
export function verifierMatches(stored: string | null | undefined, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(stored ?? '');
  if (!m) return false;
  const { storedKey, serverKey } = keys(password, Buffer.from(m[2]!, 'base64'), Number(m[1]));
  const wantStored = Buffer.from(m[3]!, 'base64');
  const wantServer = Buffer.from(m[4]!, 'base64');
  return wantStored.length === storedKey.length && wantServer.length === serverKey.length
    && timingSafeEqual(wantStored, storedKey) && timingSafeEqual(wantServer, serverKey);
}
