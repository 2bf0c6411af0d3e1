/**
 * Label selectors in the text form the API server takes (`?labelSelector=`),
 * parsed as apimachinery's labels.Parse does: requirements joined by commas,
 * each `key`, `!key`, `key=value`, `key==value`, `key!=value`,
 * `key in (a,b)` or `key notin (a,b)`. Parsed here so that a wrong
 * `--watch-label-selector` stops the command at start with the reason, not as
 * a 400 on every list, and so that the keys it names are known: kiln copies
 * those labels from a resource onto every object it renders for it, so the
 * selector that picks the resource picks its children too.
 */

export type Operator = 'exists' | 'notexists' | '=' | '!=' | 'in' | 'notin';

export interface Requirement {
  key: string;
  operator: Operator;
  values: string[];
}

/** A qualified name (optional DNS-subdomain prefix, `/`, a name of at most 63 characters), as label keys are. */
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A label value: empty, or a name of at most 63 characters. */
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export class SelectorError extends Error {
  constructor(selector: string, reason: string) {
    super(`invalid label selector ${JSON.stringify(selector)}: ${reason}`);
    this.name = 'SelectorError';
  }
}

function checkKey(selector: string, key: string): string {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !PREFIX.test(prefix))) throw new SelectorError(selector, `${JSON.stringify(key)}: the prefix must be a DNS subdomain`);
  if (!NAME.test(name))
    throw new SelectorError(selector, `${JSON.stringify(key)} is not a label key (at most 63 characters: letters, digits, '-', '_', '.', starting and ending with a letter or digit)`);
  return key;
}

function checkValue(selector: string, value: string): string {
  if (!VALUE.test(value)) throw new SelectorError(selector, `${JSON.stringify(value)} is not a label value (at most 63 characters: letters, digits, '-', '_', '.')`);
  return value;
}

/** Splits at commas outside parentheses. */
function splitRequirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) throw new SelectorError(selector, 'unbalanced parentheses');
  }
  if (depth !== 0) throw new SelectorError(selector, 'unbalanced parentheses');
  parts.push(selector.slice(start));
  return parts.map((p) => p.trim());
}

/** The requirements of `selector`; throws SelectorError naming what is wrong. An empty selector selects everything. */
export function parseSelector(selector: string): Requirement[] {
  if (selector.length > 4096) throw new SelectorError(selector.slice(0, 40) + '…', 'longer than 4096 characters');
  if (selector.trim() === '') return [];
  return splitRequirements(selector).map((part): Requirement => {
    if (part === '') throw new SelectorError(selector, 'an empty requirement (two commas, or one at an end)');
    let m = /^!\s*([^\s=!(),]+)$/.exec(part);
    if (m) return { key: checkKey(selector, m[1]!), operator: 'notexists', values: [] };
    m = /^([^\s=!(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part);
    if (m) {
      const values = m[3]!.split(',').map((v) => checkValue(selector, v.trim()));
      return { key: checkKey(selector, m[1]!), operator: m[2] as 'in' | 'notin', values };
    }
    m = /^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$/.exec(part);
    if (m) return { key: checkKey(selector, m[1]!), operator: m[2] === '!=' ? '!=' : '=', values: [checkValue(selector, m[3]!)] };
    m = /^([^\s=!(),]+)$/.exec(part);
    if (m) return { key: checkKey(selector, m[1]!), operator: 'exists', values: [] };
    throw new SelectorError(selector, `cannot read ${JSON.stringify(part)} (expected key, !key, key=value, key!=value, key in (a,b) or key notin (a,b))`);
  });
}

/** The label keys a selector names, each once. */
export function selectorKeys(selector: string): string[] {
  return [...new Set(parseSelector(selector).map((r) => r.key))];
}

/** Whether `labels` satisfy every requirement (the API server's rule: `!=` and `notin` also match a missing label). */
export function matches(requirements: readonly Requirement[], labels: Record<string, string> | undefined): boolean {
  return requirements.every((r) => {
    const v = labels?.[r.key];
    switch (r.operator) {
      case 'exists':
        return v !== undefined;
      case 'notexists':
        return v === undefined;
      case '=':
        return v === r.values[0];
      case '!=':
        return v !== r.values[0];
      case 'in':
        return v !== undefined && r.values.includes(v);
      case 'notin':
        return v === undefined || !r.values.includes(v);
    }
  });
}

/** Both selectors at once (requirements are ANDed by a comma); either may be empty. */
export function andSelectors(...selectors: (string | undefined)[]): string | undefined {
  const parts = selectors.filter((s): s is string => !!s && s.trim() !== '');
  return parts.length > 0 ? parts.join(',') : undefined;
}
