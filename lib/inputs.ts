/** Reads the YAML/JSON documents of files and directories, remembering where each came from. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { parseInputYaml } from './yaml.js';
import { InputRefused, type InputLimits, DEFAULT_INPUT_LIMITS } from './input-limits.js';
import { GROUP as KILN_GROUP } from '../kinds/api.js';

export { DEFAULT_INPUT_LIMITS, InputRefused, type InputLimits };

export interface InputDocument {
  file: string;
  /** Position of the document in its file, from 0. */
  index: number;
  value: unknown;
  /** Why the document cannot be used (see parseInputYaml): field path ("" for the whole document) and message. */
  errors?: { path: string; message: string }[];
}

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

function listFiles(path: string): string[] {
  const st = statSync(path);
  if (st.isFile()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((d) => !d.name.startsWith('.'))
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((d) => (d.isDirectory() ? listFiles(join(path, d.name)) : EXTENSIONS.has(extname(d.name)) ? [join(path, d.name)] : []));
}

const mib = (n: number) => `${n} bytes (${(n / 2 ** 20).toFixed(1)} MiB)`;

/**
 * The input files in the order they are read (each directory's entries by
 * name), every one's size checked against the limits before any is read.
 */
export function listInputFiles(paths: string[], limits: InputLimits = DEFAULT_INPUT_LIMITS): { files: string[]; bytes: number } {
  const files = paths.flatMap(listFiles);
  let total = 0;
  for (const file of files) {
    const size = statSync(file).size;
    if (size > limits.maxFileBytes) throw new InputRefused(`${file}: ${mib(size)} is larger than the limit of ${mib(limits.maxFileBytes)} per input file (--max-file-size)`);
    total += size;
  }
  if (total > limits.maxTotalBytes) throw new InputRefused(`the inputs are ${mib(total)} together, more than the limit of ${mib(limits.maxTotalBytes)} (--max-input-size)`);
  return { files, bytes: total };
}

/** The documents of one input file (listed by listInputFiles); a file that grew past the limit since is refused. */
export function readInputFile(file: string, limits: InputLimits = DEFAULT_INPUT_LIMITS): InputDocument[] {
  const bytes = readFileSync(file);
  if (bytes.length > limits.maxFileBytes) throw new InputRefused(`${file}: ${mib(bytes.length)} is larger than the limit of ${mib(limits.maxFileBytes)} per input file (--max-file-size)`);
  return parseInputYaml(bytes.toString('utf8')).map((d) => ({ file, index: d.index, value: d.value, ...(d.errors ? { errors: d.errors } : {}) }));
}

/** Every document of the inputs at once (see listInputFiles); `kiln synth` reads them a file at a time instead. */
export function readInputs(paths: string[], limits: InputLimits = DEFAULT_INPUT_LIMITS): InputDocument[] {
  return listInputFiles(paths, limits).files.flatMap((file) => readInputFile(file, limits));
}

/** Edit distance with transpositions (optimal string alignment), stopping early past `limit`. */
function distance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * Why a document that is not a kiln resource looks as if it was meant to be one,
 * or undefined: a group a typo away from kiln.dev (`kilm.dev/v1alpha1`,
 * `Kiln.dev/v1alpha1`, `kiln.io/v1alpha1`), `kiln.dev` with no version, or one of
 * kiln's kinds with no apiVersion or no group. Such a document would otherwise be
 * taken silently as a plain input (context) and render nothing.
 *
 * A kiln kind in another group altogether (`example.com/v1` DataGrid) is someone
 * else's resource, and not flagged; `kiln.dev/<another version>` is a kiln
 * resource, and refused by validation.
 */
export function kilnLookalike(value: unknown, kinds: readonly string[], apiVersion: string): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { apiVersion: av, kind } = value as { apiVersion?: unknown; kind?: unknown };
  const kilnKind = typeof kind === 'string' ? kinds.find((k) => k.toLowerCase() === kind.toLowerCase()) : undefined;
  const plain = 'so the document is read as a plain input and not rendered';
  if (typeof av !== 'string' || av.trim() === '') {
    return kilnKind ? `kind ${String(kind)} is a kiln kind but the document has no apiVersion (kiln's is ${apiVersion}), ${plain}` : undefined;
  }
  if (av.startsWith(`${KILN_GROUP}/`)) return undefined; // a kiln resource; validation checks its version
  const slash = av.indexOf('/');
  // "kiln.dev" alone is a group without a version, not a core version.
  const group = slash >= 0 ? av.slice(0, slash) : av.includes('.') ? av : '';
  const g = group.toLowerCase();
  if (g === KILN_GROUP || g === 'kiln' || g.startsWith('kiln.') || (g !== '' && distance(g, KILN_GROUP, 2) <= 2)) {
    return `apiVersion ${av} is close to kiln's ${apiVersion} but not it, ${plain}`;
  }
  if (kilnKind && group === '') {
    return `kind ${String(kind)} is a kiln kind but apiVersion ${av} has no group (kiln's is ${apiVersion}), ${plain}`;
  }
  return undefined;
}
