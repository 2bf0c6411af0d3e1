/**
 * One YAML dialect for everything kiln writes, so output is byte-stable.
 *
 * Rendered objects are plain JSON data (objects, arrays, strings, numbers,
 * booleans, null), so kiln emits them with a small dedicated writer: the
 * general-purpose YAML libraries spend most of their time on features JSON
 * data never needs, and rendering 10,000 resources is dominated by it. Strings
 * that could read as anything but a string (yes, 1e3, 0x1F, ...) are quoted;
 * multi-line strings become literal blocks so config files stay reviewable.
 * Input files are read by parseInputYaml: js-yaml for well-formed streams
 * without aliases, the `yaml` package (which bounds alias expansion) otherwise.
 */
import { CORE_SCHEMA, defineScalarTag, load, loadAll, NOT_RESOLVED, Schema } from 'js-yaml';
import { parseAllDocuments } from 'yaml';
import { yaml11Ambiguities, yaml11Reading } from './yaml11.js';

const PLAIN = /^[A-Za-z_/][A-Za-z0-9_/.\-=,@+: ]*$/;
/** YAML 1.1 readers (go-yaml, PyYAML) take these as booleans or null. */
const RESERVED = /^(y|n|yes|no|on|off|true|false|null|~)$/i;

// Keys and many values (labels, kinds, images) repeat across objects: remember their spelling.
const spelled = new Map<string, string>();

function scalarString(s: string): string {
  let out = spelled.get(s);
  if (out === undefined) {
    out = spell(s);
    if (spelled.size < 50_000) spelled.set(s, out);
  }
  return out;
}

function spell(s: string): string {
  if (s.length > 0 && PLAIN.test(s) && !RESERVED.test(s) && !s.endsWith(':') && !s.endsWith(' ') && !s.includes(': ') && !s.includes(' #')) return s;
  return doubleQuoted(s);
}

/**
 * Characters written as escapes: control and format characters, and what YAML
 * 1.1 readers (libyaml, go-yaml) take as a line break: U+0085, U+2028, U+2029.
 * Written raw, a line break ends a literal block or folds a quoted string for
 * those readers, so a value could close its document and start another one
 * (`\u2028---\u2028kind: ClusterRoleBinding`) that kiln never meant to write.
 * Non-characters and lone surrogates cannot be written raw at all.
 */
const ESCAPED = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\uFFFE\uFFFF]/u;
const ESCAPED_ALL = new RegExp(`${ESCAPED.source}|["\\\\]`, 'gu');
const NAMED: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r', '"': '\\"', '\\': '\\\\', '\u0085': '\\N', '\u2028': '\\L', '\u2029': '\\P' };

function escape(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.codePointAt(0)!;
  // A lone surrogate has no UTF-8 form: written raw it would become U+FFFD anyway.
  if (code >= 0xd800 && code <= 0xdfff) return '\\uFFFD';
  const hex = code.toString(16);
  return code < 0x100 ? `\\x${hex.padStart(2, '0')}` : code < 0x10000 ? `\\u${hex.padStart(4, '0')}` : `\\U${hex.padStart(8, '0')}`;
}

/** A double-quoted scalar every YAML reader (1.1 and 1.2) reads back as exactly `s`. */
function doubleQuoted(s: string): string {
  return `"${s.replace(ESCAPED_ALL, escape)}"`;
}

const keyString = scalarString;

/** A literal block (`|`) when the string is multi-line text that survives it unchanged. */
function literalBlock(s: string, indent: string): string | undefined {
  if (!s.includes('\n') || ESCAPED.test(s.replaceAll('\n', '')) || /[ \t]\n|[ \t]$/.test(s) || s.startsWith(' ') || s.startsWith('\n')) return undefined;
  const body = s.endsWith('\n') ? s.slice(0, -1) : s;
  if (body.endsWith('\n')) return undefined; // several trailing newlines: keep it simple, quote it
  const chomp = s.endsWith('\n') ? '|' : '|-';
  return `${chomp}\n${body
    .split('\n')
    .map((l) => (l.length > 0 ? indent + l : ''))
    .join('\n')}`;
}

function emit(value: unknown, indent: string, out: string[]): void {
  // Called for values that need their own lines (non-empty objects and arrays).
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) {
      if (item !== null && typeof item === 'object' && !isEmpty(item)) {
        const lines: string[] = [];
        emit(item, `${indent}  `, lines);
        // The first line of the item shares the dash.
        out.push(`${indent}- ${lines[0]!.slice(indent.length + 2)}`);
        for (let i = 1; i < lines.length; i++) out.push(lines[i]!);
      } else {
        out.push(`${indent}- ${inline(item, `${indent}  `)}`);
      }
    }
    return;
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined) continue;
    if (v !== null && typeof v === 'object' && !isEmpty(v)) {
      out.push(`${indent}${keyString(k)}:`);
      emit(v, Array.isArray(v) ? `${indent}  ` : `${indent}  `, out);
    } else {
      out.push(`${indent}${keyString(k)}: ${inline(v, `${indent}  `)}`);
    }
  }
}

function isEmpty(v: object): boolean {
  return Array.isArray(v) ? v.length === 0 : Object.keys(v).length === 0;
}

/**
 * JavaScript writes 1e+21 and 1e-7; YAML 1.1 readers (PyYAML) take a float
 * only with a dot in it, and would read those as strings.
 */
function number(v: number): string {
  const s = String(v);
  return s.includes('e') && !s.includes('.') ? s.replace('e', '.0e') : s;
}

function inline(v: unknown, indent: string): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return literalBlock(v, indent) ?? scalarString(v);
  if (typeof v === 'number') return Number.isFinite(v) ? number(v) : JSON.stringify(String(v));
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return '[]';
  if (typeof v === 'object') return '{}';
  throw new Error(`cannot write ${typeof v} as YAML`);
}

export function toYaml(value: unknown): string {
  if (value === null || typeof value !== 'object' || isEmpty(value)) return `${inline(value, '')}\n`;
  const out: string[] = [];
  emit(value, '', out);
  return `${out.join('\n')}\n`;
}

/** Several objects as one multi-document stream. */
export function toYamlStream(values: readonly unknown[]): string {
  return values.map((v) => toYaml(v)).join('---\n');
}

export function crdYaml(crd: unknown): string {
  return `# Generated by npm run crds from crds/schema; do not edit.\n${toYaml(crd)}`;
}

/** Reads one YAML document (kiln's own files). */
export function fromYaml(text: string): unknown {
  return load(text, { schema: CORE_SCHEMA });
}

export interface YamlDocument {
  index: number;
  value: unknown;
  error?: string;
}

/**
 * Alias expansion allowed per document: the `yaml` package's count of nodes
 * reached through aliases. A few anchors reused are fine; a "billion laughs"
 * document (aliases of aliases) is stopped long before it fills the memory.
 */
const MAX_ALIAS_COUNT = 1000;

/**
 * Parses a multi-document stream, each document on its own: a broken one is
 * reported by position and the rest can still be used. Read as inputs are
 * (parseInputYaml), so aliases are bounded.
 */
export function parseYamlStream(text: string): YamlDocument[] {
  return parseInputYaml(text).map(({ index, value, errors }) => ({ index, value, ...(errors ? { error: errors.map((e) => e.message).join('; ') } : {}) }));
}

export interface InputYamlDocument {
  index: number;
  value: unknown;
  /** Why the document cannot be used: YAML errors (path ""), or fields YAML 1.1 readers read otherwise. */
  errors?: { path: string; message: string }[];
}

/** Thrown by the fast reader at a value YAML 1.1 reads otherwise; the thorough reader then says where. */
class Yaml11Ambiguous extends Error {}

/**
 * Plain scalars that read otherwise in YAML 1.1 stop the fast reader: tried
 * before the core schema's own (a `010` never reaches the integer resolver).
 */
const YAML11_AMBIGUOUS = defineScalarTag('tag:kiln.dev,2026:yaml11-ambiguous', {
  implicit: true,
  implicitFirstChars: [...'0123456789+-yYnNoO<'],
  resolve: (source: string) => {
    if (yaml11Reading(source)) throw new Yaml11Ambiguous(source);
    return NOT_RESOLVED;
  },
  identify: () => false,
});
const INPUT_SCHEMA = new Schema([YAML11_AMBIGUOUS, ...CORE_SCHEMA.tags]);

/**
 * Reads input YAML (YAML 1.2, core schema: what JSON can say, no timestamps,
 * no YAML 1.1 booleans). A document is refused when it is not well-formed, when
 * its aliases expand past MAX_ALIAS_COUNT, or when a plain value would read as
 * something else in YAML 1.1 (`size: 010`, `enabled: yes`): see yaml11.ts.
 *
 * The fast reader (js-yaml) takes well-formed streams without aliases and
 * without such values; anything else is read again, one document at a time, by
 * the `yaml` package, which bounds what aliases expand to and finds the path of
 * every ambiguous value. (js-yaml shares an aliased node rather than copying it,
 * so its alias count alone would not bound what later walks of the value cost.)
 */
export function parseInputYaml(text: string): InputYamlDocument[] {
  let fast: unknown[];
  try {
    fast = loadAll(text, { schema: INPUT_SCHEMA, maxAliases: 0 });
  } catch {
    return parseInputYamlThoroughly(text);
  }
  const docs: InputYamlDocument[] = [];
  fast.forEach((value, index) => {
    if (value !== null && value !== undefined) docs.push({ index, value });
  });
  return docs;
}

function parseInputYamlThoroughly(text: string): InputYamlDocument[] {
  const docs: InputYamlDocument[] = [];
  parseAllDocuments(text, { schema: 'core', version: '1.2' }).forEach((doc, index) => {
    if (doc.errors.length > 0) {
      docs.push({ index, value: undefined, errors: doc.errors.map((e) => ({ path: '', message: e.message })) });
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      docs.push({ index, value: undefined, errors: [{ path: '', message: `${(err as Error).message} (aliases may expand to at most ${MAX_ALIAS_COUNT} nodes)` }] });
      return;
    }
    if (value === null || value === undefined) return;
    const ambiguous = yaml11Ambiguities(doc);
    docs.push(ambiguous.length > 0 ? { index, value, errors: ambiguous } : { index, value });
  });
  return docs;
}
