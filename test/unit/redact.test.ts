import { describe, expect, it } from 'vitest';
import { redact } from '../../kube/redact.js';

describe('redact: the one scrubber', () => {
  it('hides the password of a URI and keeps the user', () => {
    expect(redact('connect postgresql://app:s3cr3t@db:5432/x failed')).toBe('connect postgresql://app:***@db:5432/x failed');
  });
  it('hides a token given as the user of a URI', () => {
    expect(redact('fatal: https://ghp_abcdef123456@github.com/o/r.git: 403')).toBe('fatal: https://***@github.com/o/r.git: 403');
  });
  it('hides Authorization headers, bearer tokens, JWTs and SCRAM verifiers', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
    const out = redact(`Authorization: Basic dXNlcjpwYXNz\nBearer abc.def-ghi; token ${jwt}; SCRAM-SHA-256$4096:c2FsdA==$a:b`);
    expect(out).toBe('Authorization: Basic ***\nBearer ***; token ***; SCRAM-SHA-256$***');
  });
  it('hides known values, as written and URL-encoded, the longest first', () => {
    const out = redact('p=pa ss/word&q=pa%20ss%2Fword&r=pass', ['pa ss/word', 'pass']);
    expect(out).toBe('p=***&q=***&r=***');
  });
  it('leaves short values (they would hide ordinary words) and plain text alone', () => {
    expect(redact('ok: the abc is fine', ['abc'])).toBe('ok: the abc is fine');
  });
});
