/**
 * Readers kiln's YAML must mean the same thing to, outside JavaScript: PyYAML
 * with libyaml (YAML 1.1, what many tools and scanners use) and the Go readers
 * of test/yaml-check (kustomize's kyaml, go-yaml v3, kubectl's
 * sigs.k8s.io/yaml). Each call reads many streams in one process, so a property
 * test can afford hundreds of documents.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Documents as the checkers write them: every string (keys too) as its code
 * points in hex ("a\u2028" as "=61.2028"). Node 24's JSON.parse has been seen
 * to misread escaped strings ("\u2028" read as "\\" once a "\\" key was
 * seen), so the checkers' output holds no escapes and the tests compare these
 * forms.
 */
export function tagged(v: unknown): unknown {
  if (typeof v === 'string') return codePoints(v);
  if (Array.isArray(v)) return v.map(tagged);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== undefined)
        .map(([k, x]) => [codePoints(k), tagged(x)]),
    );
  return v;
}

function codePoints(s: string): string {
  return `=${[...s].map((c) => c.codePointAt(0)!.toString(16)).join('.')}`;
}

export interface ReaderResult {
  /** Tagged (see tagged()). */
  docs?: unknown[];
  error?: string;
}

const PYTHON = `
import json, sys, yaml
assert yaml.__with_libyaml__, "PyYAML without libyaml"
def code_points(s): return "=" + ".".join("%x" % ord(c) for c in s)
def tag(v):
    if isinstance(v, str): return code_points(v)
    if isinstance(v, list): return [tag(x) for x in v]
    if isinstance(v, dict): return {code_points(k): tag(x) for k, x in v.items()}
    return v
out = []
for text in json.load(sys.stdin):
    try:
        docs = [d for d in yaml.load_all(text, Loader=yaml.CSafeLoader) if d is not None]
        # A value JSON cannot hold (a date, a set) is a reading kiln did not mean.
        out.append({"docs": tag(json.loads(json.dumps(docs, default=lambda v: {"<not JSON>": repr(v)})))})
    except Exception as e:
        out.append({"error": str(e)})
json.dump(out, sys.stdout)
`;

/** PyYAML's CSafeLoader (libyaml) over every stream; documents tagged. */
export function readWithLibyaml(texts: string[]): ReaderResult[] {
  return JSON.parse(execFileSync('python3', ['-c', PYTHON], { input: JSON.stringify(texts), maxBuffer: 1 << 28 }).toString('utf8')) as ReaderResult[];
}

let goChecker: string | undefined;

/** Builds test/yaml-check once (cached outside the work tree) and returns its path. */
export function goCheckerPath(): string {
  if (!goChecker) {
    const script = fileURLToPath(new URL('../../scripts/build-yaml-check.sh', import.meta.url));
    const lines = execFileSync('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] })
      .toString('utf8')
      .trim()
      .split('\n');
    goChecker = lines[lines.length - 1]!;
  }
  return goChecker;
}

export type GoReader = 'kyaml' | 'yamlv3' | 'kubectl';

/** The Go readers over every stream; documents tagged. */
export function readWithGo(texts: string[]): Record<GoReader, ReaderResult>[] {
  return JSON.parse(execFileSync(goCheckerPath(), [], { input: JSON.stringify(texts), maxBuffer: 1 << 28 }).toString('utf8')) as Record<GoReader, ReaderResult>[];
}
