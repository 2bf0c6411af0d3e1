/**
 * Plain scalars that YAML 1.1 readers read as another value than kiln does.
 *
 * kiln reads YAML 1.2 (core schema), as kustomize and Flux do; kubectl and the
 * API server's YAML path (sigs.k8s.io/yaml, go-yaml v2) and PyYAML read YAML
 * 1.1. The same unquoted text can then mean two things: `size: 010` is 10 to
 * kiln and 8 to kubectl; `enabled: yes` a string to kiln and true to kubectl.
 * An input like that is refused, so what kiln renders is what its author
 * meant whichever tool they checked it with.
 */
import { isPair, isScalar, isSeq, Scalar, visit, type Document } from 'yaml';

interface Reading {
  pattern: RegExp;
  /** A further condition on the text. */
  when?: (text: string) => boolean;
  why: (text: string) => string;
}

const YAML11 = 'YAML 1.1 readers (kubectl, PyYAML)';
const digits = (t: string) => t.replace(/_/g, '');

/** First match wins. */
const READINGS: Reading[] = [
  {
    pattern: /^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/,
    why: (t) => `${t} is a string to kiln (YAML 1.2) but the boolean ${/^(y|yes|on)$/i.test(t)} to ${YAML11}: write true/false for a boolean, or quote it for a string`,
  },
  {
    pattern: /^[-+]?0[0-7_]+$/,
    when: (t) => /[0-7]/.test(t.slice(1)),
    why: (t) => `${t} is ${/_/.test(t) ? 'a string' : Number(t)} to kiln (YAML 1.2) but the octal ${parseInt(digits(t), 8)} to ${YAML11}: write it without the leading zero, or quote it for a string`,
  },
  { pattern: /^[-+]?0[0-9_]+$/, why: (t) => `${t} has a leading zero, which ${YAML11} do not read as kiln does (YAML 1.2): write it without the leading zero, or quote it for a string` },
  {
    pattern: /^[-+]?0o[0-7]+$/,
    why: (t) => `${t} is the octal number ${parseInt(t.replace('0o', ''), 8)} to kiln (YAML 1.2) but a string to ${YAML11}: write it in decimal, or quote it for a string`,
  },
  { pattern: /^[-+]?0b[01_]+$/, why: (t) => `${t} is a string to kiln (YAML 1.2) but a binary number to ${YAML11}: quote it for a string, or write it in decimal` },
  {
    pattern: /^[-+]0x[0-9a-fA-F_]+$|^0x[0-9a-fA-F]*_[0-9a-fA-F_]*$/,
    why: (t) => `${t} is a string to kiln (YAML 1.2) but a number to ${YAML11}: quote it for a string, or write the number in decimal`,
  },
  { pattern: /^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$/, why: (t) => `${t} is a string to kiln (YAML 1.2) but a base-60 number to ${YAML11}: quote it` },
  {
    pattern: /^[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?$/,
    when: (t) => t.includes('_'),
    why: (t) => `${t} is a string to kiln (YAML 1.2) but a number to ${YAML11}: quote it for a string, or write the number without underscores`,
  },
  { pattern: /^<<$/, why: () => `<< merges a mapping for ${YAML11} but is an ordinary key to kiln (YAML 1.2): write the keys out` },
];

/** Why a plain scalar's text reads otherwise in YAML 1.1, or undefined. */
export function yaml11Reading(text: string): string | undefined {
  return READINGS.find((r) => r.pattern.test(text) && (!r.when || r.when(text)))?.why(text);
}

export interface Ambiguity {
  /** Field path: `spec.size`, `spec.env[2].value`; a key's own path for a key. */
  path: string;
  message: string;
}

function keyText(node: unknown): string {
  return isScalar(node) ? String(node.value) : String(node);
}

/** `spec.env[2].value` for a node under these ancestors (a key's path is its own field's). */
function pathOf(ancestors: readonly unknown[], node: unknown): string {
  let out = '';
  for (let i = 0; i < ancestors.length; i++) {
    const parent = ancestors[i];
    const child = ancestors[i + 1] ?? node;
    if (isPair(parent)) out += `${out ? '.' : ''}${keyText(parent.key)}`;
    else if (isSeq(parent)) out += `[${parent.items.indexOf(child)}]`;
  }
  return out;
}

/** Every plain scalar (key or value) of the document that a YAML 1.1 reader reads otherwise. */
export function yaml11Ambiguities(doc: Document): Ambiguity[] {
  const found: Ambiguity[] = [];
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (node.type !== Scalar.PLAIN || node.tag) return;
      const text = node.source ?? String(node.value);
      const why = yaml11Reading(text);
      if (why) found.push({ path: pathOf(ancestors, node), message: why });
    },
  });
  return found;
}
