/**
 * Offline render: input files -> validate -> render -> one YAML file per
 * resource. Shared by `kiln synth`, the cdk8s app (cdk8s.yaml runs `kiln synth`) and the benchmarks.
 * Large inputs are spread over worker threads; the output does not depend on
 * how many.
 */
import { availableParallelism, tmpdir } from 'node:os';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { homedir } from 'node:os';
import { Worker } from 'node:worker_threads';
import { KILN_API_VERSION, KIND_NAMES } from '../kinds/registry.js';
import type { KilnResource, RenderContext } from '../kinds/types.js';
import { contextFromObjects, type PlainObject } from './context.js';
import { InputRefused, kilnLookalike, readInputs, type InputDocument, type InputLimits } from './inputs.js';
import { renderDocument } from './render-document.js';
import type { FieldError } from '../validate/index.js';

export interface SynthOptions {
  inputs: string[];
  outDir: string;
  /** Render the valid resources even when others are invalid (the exit status still reports them). */
  continueOnError?: boolean;
  /** Worker threads; default: one per core when there are enough resources to pay for them. */
  jobs?: number;
  /** Remove outDir first; refused (InputRefused) when outDir holds an input, the current directory or a Git repository's root. */
  clean?: boolean;
  /** Size limits on the inputs (default DEFAULT_INPUT_LIMITS). */
  limits?: InputLimits;
  /**
   * Write every rendered document to this stream as one multi-document YAML
   * stream instead of files (outDir is not used): resources in the order of the
   * files they would be written to (namespace, kind, name), each one's objects
   * in the order of its file.
   */
  stream?: NodeJS.WritableStream;
  /** Documents that look like kiln resources but are not (kilnLookalike) are errors, not warnings. */
  strict?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface Problem {
  file: string;
  index: number;
  resource?: string;
  errors: { path: string; message: string }[];
}

export interface Note {
  file: string;
  index: number;
  resource: string;
  message: string;
}

/** A document that looks like a kiln resource but is not one (see kilnLookalike); an error with `strict`. */
export interface Warning {
  file: string;
  index: number;
  message: string;
}

export interface SynthReport {
  /** The files written (none when the output is a stream). */
  written: string[];
  /** Each resource rendered, in output order, and its file (absent when the output is a stream). */
  rendered: { resource: string; file?: string }[];
  warnings: Warning[];
  problems: Problem[];
  /** Valid resources that render nothing offline, and why (not errors): e.g. one whose render inputs are not among the input files. */
  notes: Note[];
  /** Documents that are not kiln resources (render inputs of those that need some, e.g. a ConfigMap to copy). */
  other: number;
}

export interface WorkItem {
  doc: unknown;
  context: RenderContext;
}

const PER_WORKER_MINIMUM = 1500;

function sizeOf(path: string): number {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (st.isFile()) return st.size;
  return readdirSync(path, { withFileTypes: true }).reduce((n, d) => n + (d.isDirectory() || d.isFile() ? sizeOf(join(path, d.name)) : 0), 0);
}

function describe(value: unknown): string | undefined {
  const v = value as { kind?: string; metadata?: { name?: string; namespace?: string } } | undefined;
  return v?.kind && v.metadata?.name ? `${v.kind} ${v.metadata.namespace ?? 'default'}/${v.metadata.name}` : undefined;
}

/** Messages from lib/render-worker.ts. */
export interface WorkerReply {
  progress?: number;
  /** Per item: its path relative to the output directory, or why it was not rendered. */
  summary?: ({ path: string } | { note: string } | { errors: FieldError[] })[];
}

/**
 * Writes rendered files under a staging directory, from the thread that
 * rendered them (each worker writes its own share). Writes are synchronous on
 * purpose: measured here, firing them concurrently while rendering made the
 * whole run twice as slow, the file system's work competing for the same cores.
 */
export class StagedWriter {
  private readonly dirs = new Set<string>();
  constructor(private readonly root: string) {}

  write(relative: string, yaml: string): string {
    const path = join(this.root, relative);
    const dir = dirname(path);
    if (!this.dirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.dirs.add(dir);
    }
    writeFileSync(path, yaml);
    return relative;
  }
}

/** Moves the staged files into the output directory (one rename when it is new). */
function publish(stagingDir: string, outDir: string, relatives: string[], clean: boolean): void {
  if (clean) rmSync(outDir, { recursive: true, force: true });
  if (!existsSync(outDir)) {
    mkdirSync(dirname(resolve(outDir)), { recursive: true });
    renameSync(stagingDir, outDir);
    return;
  }
  const made = new Set<string>();
  for (const rel of relatives) {
    const dir = dirname(join(outDir, rel));
    if (!made.has(dir)) {
      mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    renameSync(join(stagingDir, rel), join(outDir, rel));
  }
}

type Summary = NonNullable<WorkerReply['summary']>;

/** The order of output files: by path segment (namespace, kind, name), in code-point order (as `LC_ALL=C sort` lists them). */
export function compareOutputPaths(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  }
  return x.length - y.length;
}

/**
 * Writes the staged files to a stream as one YAML stream, in output-file order.
 * A file holds a header comment then its objects, separated by `---`; a file
 * that holds only comments (a kind the agent carries out) gives no document: its
 * comments lead the next document, or end the stream.
 */
async function emit(stagingDir: string, relatives: string[], stream: NodeJS.WritableStream): Promise<void> {
  const write = (text: string) => (stream.write(text) ? Promise.resolve() : new Promise<void>((r) => stream.once('drain', () => r())));
  let documents = 0;
  let comments = '';
  for (const rel of [...relatives].sort(compareOutputPaths)) {
    const text = readFileSync(join(stagingDir, rel), 'utf8');
    if (!/^(?!#|---\s*$)\S/m.test(text)) {
      comments += text;
      continue;
    }
    await write(`${documents > 0 ? '---\n' : ''}${comments}${text}`);
    comments = '';
    documents++;
  }
  if (comments) await write(comments);
}

/** Worker threads that load kiln while the caller is still reading its inputs. */
function startWorkers(jobs: number): Worker[] {
  const fromSource = import.meta.url.endsWith('.ts');
  const workerUrl = new URL(`./render-worker${fromSource ? '.ts' : '.js'}`, import.meta.url);
  // Running from TypeScript sources, the worker needs tsx's loader too.
  return Array.from({ length: jobs }, () =>
    fromSource ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}); })`, { eval: true }) : new Worker(workerUrl),
  );
}

async function renderInWorkers(workers: Worker[], items: WorkItem[], stagingDir: string, onProgress?: (done: number, total: number) => void): Promise<Summary> {
  const size = Math.ceil(items.length / workers.length);
  let done = 0;
  const parts = await Promise.all(
    workers.map(
      (worker, j) =>
        new Promise<Summary>((resolvePart, reject) => {
          worker.on('error', reject);
          worker.on('exit', (code) => reject(new Error(`render worker exited with ${code}`)));
          worker.on('message', (msg: WorkerReply) => {
            if (msg.progress !== undefined) {
              done += msg.progress;
              onProgress?.(done, items.length);
            }
            if (msg.summary) resolvePart(msg.summary);
          });
          worker.postMessage({ items: items.slice(j * size, (j + 1) * size), stagingDir });
        }),
    ),
  );
  await Promise.all(workers.map((w) => w.terminate()));
  return parts.flat();
}

function renderHere(items: WorkItem[], stagingDir: string, onProgress?: (done: number, total: number) => void): Summary {
  const writer = new StagedWriter(stagingDir);
  const summary = items.map((item, i) => {
    if (onProgress && i % 500 === 0) onProgress(i, items.length);
    const o = renderDocument(item.doc, item.context);
    return 'errors' in o ? { errors: o.errors } : 'note' in o ? { note: o.note } : { path: writer.write(o.path(''), o.yaml) };
  });
  return summary;
}

/** The path with its symbolic links resolved, as far as it exists. */
function real(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(real(parent), basename(abs));
  }
}

/** `inner` is `outer` or lies under it. */
function within(inner: string, outer: string): boolean {
  const rel = relative(outer, inner);
  return rel === '' || (rel !== '..' && !rel.startsWith('../') && !rel.startsWith('/'));
}

/**
 * `--clean` removes the output directory: refuse one that holds an input (it
 * would be deleted before it is read), the current directory, the home
 * directory or a Git repository's root, so a mistyped `-o` cannot take the
 * work with it. Nothing has been touched when this throws.
 */
export function checkCleanTarget(outDir: string, inputs: readonly string[]): void {
  const out = real(outDir);
  const refuse = (why: string) => {
    throw new InputRefused(`--clean would delete ${outDir} (${out}), which ${why}; choose an output directory of its own`);
  };
  for (const input of inputs) if (within(real(input), out)) refuse(`holds the input ${input}`);
  if (within(real(process.cwd()), out)) refuse('is or holds the current directory');
  if (within(real(homedir()), out)) refuse('is or holds the home directory');
  if (existsSync(join(out, '.git'))) refuse('is the root of a Git repository');
}

export async function synth(options: SynthOptions): Promise<SynthReport> {
  if (options.clean && !options.stream) checkCleanTarget(options.outDir, options.inputs);
  // Worker count is decided from the input size, but loading kiln in a worker
  // takes as long as reading thousands of documents: start them speculatively
  // when the input looks large, and let them go if it was not.
  const inputBytes = options.inputs.reduce((n, p) => n + sizeOf(p), 0);
  const speculative = options.jobs ?? (inputBytes > PER_WORKER_MINIMUM * 600 ? availableParallelism() : 1);
  const early = speculative > 1 ? startWorkers(speculative) : [];
  try {
    return await synthWith(early, options);
  } catch (err) {
    await Promise.all(early.map((w) => w.terminate()));
    throw err;
  }
}

/** The inputs read and sorted: kiln resources to render (each with its context), the problems found so far. */
export interface CollectedInputs {
  /** One per kiln resource, in input order; `source` is where it came from. */
  items: (WorkItem & { source: InputDocument })[];
  problems: Problem[];
  /** Documents that are not kiln resources. */
  other: number;
  /** Documents that look like kiln resources but are not (with `strict`, they are problems instead). */
  warnings: Warning[];
}

/**
 * Reads files and directories as `kiln synth` does: unreadable YAML is a
 * problem, documents of kiln.dev/ are resources (a resource given twice is a
 * problem), every other document is a render input of the kinds that have
 * some (kinds/registry.ts `inputs`). Shared with `kiln diff`.
 */
export function collectInputs(paths: string[], o: { strict?: boolean; limits?: InputLimits } = {}): CollectedInputs {
  const docs = readInputs(paths, o.limits);
  const problems: Problem[] = [];
  const warnings: Warning[] = [];
  const plain: PlainObject[] = [];
  const candidates: InputDocument[] = [];
  for (const d of docs) {
    if (d.errors) problems.push({ file: d.file, index: d.index, resource: describe(d.value), errors: d.errors.map((e) => ({ path: e.path, message: `YAML: ${e.message}` })) });
    else if (typeof (d.value as PlainObject)?.apiVersion === 'string' && (d.value as PlainObject).apiVersion!.startsWith('kiln.dev/')) candidates.push(d);
    else {
      const lookalike = kilnLookalike(d.value, KIND_NAMES, KILN_API_VERSION);
      if (lookalike && o.strict) problems.push({ file: d.file, index: d.index, resource: describe(d.value), errors: [{ path: 'apiVersion', message: `${lookalike}; --strict makes this an error` }] });
      else if (lookalike) warnings.push({ file: d.file, index: d.index, message: lookalike });
      plain.push(d.value as PlainObject);
    }
  }

  // The same resource twice would overwrite its own output: refuse the later ones.
  const seen = new Map<string, InputDocument>();
  const unique = candidates.filter((d) => {
    const key = describe(d.value);
    if (!key) return true;
    const first = seen.get(key);
    if (first) {
      problems.push({ file: d.file, index: d.index, resource: key, errors: [{ path: 'metadata.name', message: `Duplicate value: ${key} is also defined in ${first.file} document ${first.index}` }] });
      return false;
    }
    seen.set(key, d);
    return true;
  });

  const items = unique.map((d) => ({
    doc: d.value,
    context: (d.value as KilnResource).apiVersion === KILN_API_VERSION ? contextFromObjects(d.value as KilnResource, plain) : {},
    source: d,
  }));
  return { items, problems, other: plain.length, warnings };
}

async function synthWith(early: Worker[], options: SynthOptions): Promise<SynthReport> {
  const { items: sourced, problems, other, warnings } = collectInputs(options.inputs, { strict: options.strict, limits: options.limits });
  const items: WorkItem[] = sourced.map(({ doc, context }) => ({ doc, context }));
  const unique = sourced.map((i) => i.source);
  const wanted = Math.max(1, options.jobs ?? Math.min(availableParallelism(), Math.floor(items.length / PER_WORKER_MINIMUM)));
  const workers = early.slice(0, wanted > 1 ? wanted : 0);
  await Promise.all(early.slice(workers.length).map((w) => w.terminate()));

  let stagingDir: string;
  if (options.stream) {
    stagingDir = mkdtempSync(join(tmpdir(), 'kiln-synth-staging-'));
  } else {
    mkdirSync(dirname(resolve(options.outDir)), { recursive: true });
    stagingDir = mkdtempSync(join(dirname(resolve(options.outDir)), `.${basename(options.outDir)}.staging-`));
  }
  let summary: Summary;
  try {
    summary = workers.length > 1 ? await renderInWorkers(workers, items, stagingDir, options.onProgress) : renderHere(items, stagingDir, options.onProgress);
  } catch (err) {
    rmSync(stagingDir, { recursive: true, force: true });
    throw err;
  }

  let written: string[] = [];
  let rendered: { resource: string; file?: string }[] = [];
  const notes: Note[] = [];
  summary.forEach((o, i) => {
    const d = unique[i]!;
    if ('errors' in o) problems.push({ file: d.file, index: d.index, resource: describe(d.value), errors: o.errors });
    else if ('note' in o) notes.push({ file: d.file, index: d.index, resource: describe(d.value)!, message: o.note });
    else {
      written.push(o.path);
      rendered.push({ resource: describe(d.value) ?? o.path, file: o.path });
    }
  });
  try {
    if (problems.length === 0 || options.continueOnError) {
      if (options.stream) await emit(stagingDir, written, options.stream);
      else publish(stagingDir, options.outDir, written, Boolean(options.clean));
    } else {
      written.length = 0;
      rendered.length = 0;
    }
  } finally {
    rmSync(stagingDir, { recursive: true, force: true });
  }
  problems.sort((a, b) => a.file.localeCompare(b.file) || a.index - b.index);
  options.onProgress?.(items.length, items.length);
  rendered.sort((a, b) => compareOutputPaths(a.file!, b.file!));
  if (options.stream) {
    written = [];
    rendered = rendered.map(({ resource }) => ({ resource }));
  } else {
    for (let i = 0; i < written.length; i++) written[i] = join(options.outDir, written[i]!);
    for (const r of rendered) r.file = join(options.outDir, r.file!);
  }
  return { written, rendered, warnings, problems, notes, other };
}
