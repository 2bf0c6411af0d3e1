/**
 * Offline admission: the same decisions the API server makes with kiln's CRDs.
 * The resource is checked against the CRD's openAPIV3Schema (Ajv, with
 * Kubernetes' defaulting and strict unknown-field handling), then the CRD's
 * CEL rules are evaluated (@bufbuild/cel). The CRD YAML files in crds/ are
 * the single source for both this and the API server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { celEnv, celFunc, CelScalar, isCelError, parse, plan } from '@bufbuild/cel';
import { RE2JS } from '@bufbuild/re2';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { QUANTITY_PATTERN, type CelRule, type Schema } from '../crds/schema/builders.js';
import { crdDirectory } from '../lib/paths.js';
import { fromYaml } from '../lib/yaml.js';
import type { FieldError } from './errors.js';

interface LoadedKind {
  schema: Schema;
  validate: ValidateFunction;
}

const quantityRe = new RegExp(QUANTITY_PATTERN);
// CEL's matches() compiles its pattern on every call; the patterns in kiln's
// rules are constants, so compile each once (same RE2 engine).
const compiled = new Map<string, { test(text: string): boolean }>();
const re2 = {
  compile(pattern: string) {
    let m = compiled.get(pattern);
    if (!m) {
      const p = RE2JS.compile(pattern);
      m = { test: (text: string) => p.test(text) };
      compiled.set(pattern, m);
    }
    return m;
  },
};
const env = celEnv({
  funcs: [celFunc('isQuantity', [CelScalar.STRING], CelScalar.BOOL, (s: string) => quantityRe.test(s))],
  re2,
});
type Program = (ctx: { self: unknown }) => unknown;
const programs = new Map<string, Program>();

function program(rule: string): Program {
  let p = programs.get(rule);
  if (!p) {
    p = plan(env, parse(rule)) as unknown as Program;
    programs.set(rule, p);
  }
  return p;
}

/** Kubernetes rejects unknown fields (kubectl's default strict field validation): say so to Ajv. */
function strictCopy(s: Schema): Schema {
  const out: Schema = { ...s };
  if (s.properties) {
    out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, strictCopy(v)]));
    if (s.additionalProperties === undefined && !s['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false;
  }
  if (s.additionalProperties && typeof s.additionalProperties === 'object') out.additionalProperties = strictCopy(s.additionalProperties);
  if (s.items) out.items = strictCopy(s.items);
  // CEL rules run separately, after defaulting, as the API server does.
  delete out['x-kubernetes-validations'];
  return out;
}

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, validateFormats: true });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  for (const kw of [
    'x-kubernetes-int-or-string',
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-list-type',
    'x-kubernetes-list-map-keys',
    'x-kubernetes-map-type',
    'x-kubernetes-validations',
  ]) {
    ajv.addKeyword(kw);
  }
  return ajv;
}

let loaded: Map<string, LoadedKind> | undefined;

function kinds(): Map<string, LoadedKind> {
  if (loaded) return loaded;
  const ajv = newAjv();
  loaded = new Map();
  const dir = crdDirectory();
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const crd = fromYaml(readFileSync(join(dir, file), 'utf8')) as {
      spec: { group: string; names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
    };
    for (const version of crd.spec.versions) {
      const schema = version.schema.openAPIV3Schema;
      loaded.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, { schema, validate: ajv.compile(strictCopy(schema)) });
    }
  }
  return loaded;
}

/** `/spec/passwords/uid=admin` -> `spec.passwords[uid=admin]`, the API server's spelling. */
export function fieldPath(segments: string[]): string {
  let out = '';
  for (const s of segments) {
    if (/^[0-9]+$/.test(s)) out += `[${s}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(s)) out += out ? `.${s}` : s;
    else out += `[${s}]`;
  }
  return out;
}

function pointerSegments(pointer: string): string[] {
  return pointer === ''
    ? []
    : pointer
        .slice(1)
        .split('/')
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function ajvError(e: ErrorObject): FieldError {
  const segments = pointerSegments(e.instancePath);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return { path: fieldPath([...segments, String(p['additionalProperty'])]), message: 'field not declared in schema (unknown field)' };
    case 'required':
      return { path: fieldPath([...segments, String(p['missingProperty'])]), message: 'Required value' };
    case 'enum':
      return { path: fieldPath(segments), message: `Unsupported value: supported values: ${(p['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'minimum':
    case 'maximum':
      return { path: fieldPath(segments), message: `Invalid value: should be ${e.keyword === 'minimum' ? 'greater' : 'less'} than or equal to ${String(p['limit'])}` };
    case 'pattern':
      return { path: fieldPath(segments), message: `Invalid value: should match '${String(p['pattern'])}'` };
    default:
      return { path: fieldPath(segments), message: `Invalid value: ${e.message ?? e.keyword}` };
  }
}

/** Integers become CEL ints (bigint); the schema says which numbers are integers. */
function toCel(value: unknown, schema: Schema | undefined): unknown {
  if (value === null || value === undefined) return value;
  if (typeof value === 'number') return schema?.type === 'integer' || (Number.isInteger(value) && schema?.type !== 'number') ? BigInt(value) : value;
  if (Array.isArray(value)) return value.map((v) => toCel(v, schema?.items));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const sub = schema?.properties?.[k] ?? (typeof schema?.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      out[k] = toCel(v, sub);
    }
    return out;
  }
  return value;
}

/** Walks the CEL-typed copy of the resource, evaluating each node's rules on it. */
function celErrors(value: unknown, schema: Schema, segments: string[], out: FieldError[]): void {
  if (value === undefined || value === null) return;
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    // Transition rules compare with the stored object; on create there is none,
    // and the API server skips them too.
    if (/\boldSelf\b/.test(rule.rule)) continue;
    const verdict = evaluate(rule, value);
    if (verdict !== true) {
      const path = rule.fieldPath ? fieldPath([...segments, ...rule.fieldPath.replace(/^\./, '').split('.')]) : fieldPath([...segments, ...soleField(rule.rule)]);
      out.push({ path, message: verdict === false ? `Invalid value: ${ruleMessage(rule, value)}` : verdict });
    }
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((v, i) => celErrors(v, schema.items!, [...segments, String(i)], out));
  } else if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    for (const [k, v] of Object.entries(obj)) {
      const sub = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      if (sub) celErrors(v, sub, [...segments, k], out);
    }
  }
}

/**
 * A rule that reads a single field of self (e.g. self.metadata.name, where the
 * API server forbids a fieldPath) is reported at that field.
 */
function soleField(rule: string): string[] {
  const refs = new Set([...rule.matchAll(/\bself((?:\.[A-Za-z_][A-Za-z0-9_]*)+?)(?=\.(?:size|matches|startsWith|endsWith)\(|[\s)=<>!]|$)/g)].map((m) => m[1]!));
  return refs.size === 1 ? [...refs][0]!.slice(1).split('.') : [];
}

/**
 * The message of a failed rule, as the API server builds it: messageExpression
 * when it evaluates to a non-empty string, else message, else the rule itself.
 */
function ruleMessage(rule: CelRule, value: unknown): string {
  if (rule.messageExpression) {
    const m = program(rule.messageExpression)({ self: value });
    if (typeof m === 'string' && m.trim() !== '') return m;
  }
  return rule.message ?? `failed rule: ${rule.rule}`;
}

function evaluate(rule: CelRule, value: unknown): boolean | string {
  const result = program(rule.rule)({ self: value });
  if (isCelError(result)) return `Internal error: rule ${rule.rule} could not be evaluated: ${result.message}`;
  return result === true;
}

/**
 * Validates and defaults `resource` in place (as admission would) and returns
 * every error. An unknown kind is itself an error.
 */
export function admit(resource: Record<string, unknown>): { errors: FieldError[]; blocking: boolean } {
  const apiVersion = text(resource['apiVersion']);
  const kind = text(resource['kind']);
  const entry = kinds().get(`${apiVersion}/${kind}`);
  if (!entry) return { errors: [{ path: 'kind', message: `kiln serves no ${apiVersion}/${kind}` }], blocking: true };
  const errors: FieldError[] = [];
  const schemaErrors = entry.validate(resource) ? [] : (entry.validate.errors ?? []);
  errors.push(...schemaErrors.map(ajvError));
  // Like the API server, CEL rules are skipped only after a "blocking" error
  // (a wrong type or an unsupported value) that would make them meaningless.
  const blocking = schemaErrors.some((e) => e.keyword === 'type' || e.keyword === 'enum' || e.keyword === 'format');
  if (!blocking) celErrors(toCel(resource, entry.schema), entry.schema, [], errors);
  return { errors, blocking };
}

/** A field of an unvalidated resource, for a lookup key and a message. */
const text = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));

export function knownKinds(): string[] {
  return [...kinds().keys()];
}
