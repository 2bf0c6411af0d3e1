/**
 * The one scrubber for text that leaves a process (log lines, status fields,
 * Events, errors): credentials in URIs, Authorization headers and bearer
 * tokens, JWTs, SCRAM verifiers, and every value the caller knows to be
 * secret, as written and URL-encoded. Over-redacting is the safe mistake.
 */
export const REDACTED = '***';

// `scheme://user:password@` keeps the user; `scheme://token@` (a token as the user) loses it all.
const URI_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):[^@\s/]*@/gi;
const URI_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^:/?#@\s*]+@/gi;
const AUTHORIZATION = /(authorization:\s*\S+\s+)\S+/gi;
const BEARER = /\b(Bearer\s+)[^\s"',;]+/gi;
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+/g;
const SCRAM_VERIFIER = /SCRAM-SHA-256\$[^\s'"]+/g;

export function redact(text: string, secrets: Iterable<string | undefined> = []): string {
  let out = text;
  // Known values first, longest first, so a secret that contains another is replaced whole.
  const values = [...new Set([...secrets].flatMap((s) => (s ? [s, encodeURIComponent(s)] : [])))].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  for (const s of values) out = out.split(s).join(REDACTED);
  return out
    .replace(URI_PASSWORD, `$1:${REDACTED}@`)
    .replace(URI_USERINFO, `$1${REDACTED}@`)
    .replace(AUTHORIZATION, `$1${REDACTED}`)
    .replace(BEARER, `$1${REDACTED}`)
    .replace(JWT, REDACTED)
    .replace(SCRAM_VERIFIER, `SCRAM-SHA-256$${REDACTED}`);
}
