/**
 * Offline render: input files -> validate -> render -> one YAML file per
 * resource. Shared by `kiln synth`, the cdk8s app (cdk8s.yaml runs `kiln synth`) and the benchmarks.
 *
 * It streams: the input files are handed out one at a time to the rendering
 * threads (this one, plus worker threads for large inputs), and each thread
 * reads, renders and writes a file's resources at once (lib/render-files.ts).
 * What stays in memory is a line of the report per resource (its name and
 * file), plus the plain documents (ConfigMaps, Namespaces) and the resources
 * that read them (ConfigMapSync), rendered once every file has been read.
 *
 * Nothing reaches the output before every resource has been validated: files
 * are written into a staging directory and moved into place at the end (one
 * rename when the output directory is new), or, for standard output, read back
 * from it in output order. The other way to get all-or-nothing, a validating
 * pass before a rendering one, would parse and validate every document twice;
 * validation is about a third of a resource's cost, writing to the staging
 * directory much less.
 *
 * The output does not depend on the number of threads nor on which finishes
 * first (a resource given twice: lib/render-files.ts StagedWriter).
 */
import { availableParallelism, homedir, tmpdir } from 'node:os';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import module from 'node:module';
import { Worker } from 'node:worker_threads';
import { KILN_API_VERSION } from '../kinds/registry.js';
import type { KilnResource, RenderContext } from '../kinds/types.js';
import { contextFromObjects, type PlainObject } from './context.js';
import { DEFAULT_INPUT_LIMITS, InputRefused, listInputFiles, readInputs, type InputDocument, type InputLimits } from './inputs.js';
import { ASIDE_DIR, describe, FileRenderer, fromThreadError, otherDocuments, readByOthers, sortDocument, type DeferredItem, type FileResult, type Outcome, type ThreadError } from './render-files.js';
import type { WorkerRequest, WorkerSetup } from './render-worker.js';

export interface SynthOptions {
  inputs: string[];
  outDir: string;
  /** Render the valid resources even when others are invalid (the exit status still reports them). */
  continueOnError?: boolean;
  /** Threads that render, this one included; default: one per core when the inputs are large enough to pay for them. */
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
  /** After each input file: resources rendered so far, input files done and their number. */
  onProgress?: (progress: { resources: number; files: number; totalFiles: number }) => void;
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
  /** The files written, in output order (none when the output is a stream). */
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

/**
 * Below this much input (about 2,500 resources of the benchmark's mix) this
 * thread renders everything. A worker thread loads kiln (cdk8s, the charts,
 * Ajv, CEL) and warms up its own compiled code before it pays: measured on the
 * 2-core dev box, a worker was ready after about 1.1 s, the time this thread
 * takes for about 1,000 resources, and a run with one cost 2 to 3 s more CPU in
 * all than one without; so one worker shortens the wall time of a run on an
 * idle machine from about 2,000 resources, and only lengthens it below.
 */
const WORKERS_FROM_BYTES = 512 * 2 ** 10;
/** Resources whose render reads other documents go out in batches of this many once every file is read. */
const DEFERRED_BATCH = 200;

/** The sort key of an output path: by path segment (namespace, kind, name), in code-point order, as `LC_ALL=C sort` lists the files. */
function outputOrderKey(path: string): string {
  // No segment holds a NUL, which sorts before every character that can.
  return path.replaceAll('/', '\0');
}

/** The order of output files: by path segment (namespace, kind, name), in code-point order (as `LC_ALL=C sort` lists them). */
export function compareOutputPaths(a: string, b: string): number {
  const x = outputOrderKey(a);
  const y = outputOrderKey(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Sorted in output order (a key per element, computed once). */
function inOutputOrder<T>(items: T[], path: (t: T) => string): T[] {
  return items
    .map((item) => ({ key: outputOrderKey(path(item)), item }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((e) => e.item);
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
  for (const rel of relatives) {
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

/** Moves the staged files into the output directory (one rename when it is new). */
function publish(stagingDir: string, outDir: string, relatives: string[], clean: boolean): void {
  rmSync(join(stagingDir, ASIDE_DIR), { recursive: true, force: true });
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

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** A thread that renders: this one, or a worker. */
interface Renderer {
  /** Requests it is given at once: a worker gets a second while it works on the first, so it never waits for the next file. */
  readonly lanes: number;
  /** Resolves once it can take work (a worker has loaded kiln). */
  readonly ready: Promise<void>;
  renderFile(file: string, fileNo: number): Promise<FileResult>;
  renderDeferred(items: DeferredItem[]): Promise<Outcome[]>;
  close(): Promise<void>;
}

/** This thread; it yields between files so that the workers' replies are taken in. */
class InThread implements Renderer {
  readonly lanes = 1;
  readonly ready = Promise.resolve();
  constructor(private readonly renderer: FileRenderer) {}

  private later<T>(work: () => T): Promise<T> {
    return new Promise((res, rej) =>
      setImmediate(() => {
        try {
          res(work());
        } catch (err) {
          rej(asError(err));
        }
      }),
    );
  }

  renderFile(file: string, fileNo: number): Promise<FileResult> {
    // A copy, as a worker's reply is: the parsed strings kept for the report
    // and the render inputs would otherwise keep each input file's whole text alive.
    return this.later(() => structuredClone(this.renderer.renderFile(file, fileNo)));
  }

  renderDeferred(items: DeferredItem[]): Promise<Outcome[]> {
    return this.later(() => this.renderer.renderDeferred(items));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

type WorkerReply = { ready: true } | { id: number; result: unknown } | { id: number; error: ThreadError };

class InWorker implements Renderer {
  readonly lanes = 2;
  readonly ready: Promise<void>;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failed: Error | undefined;
  private closing = false;

  constructor(private readonly worker: Worker) {
    let ready!: () => void;
    let notReady!: (e: Error) => void;
    this.ready = new Promise<void>((res, rej) => {
      ready = res;
      notReady = rej;
    });
    // Nobody waits for a worker that is let go before it has loaded.
    this.ready.catch(() => undefined);
    const fail = (err: Error) => {
      if (this.closing) return;
      this.failed ??= err;
      notReady(err);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('message', (m: WorkerReply) => {
      if ('ready' in m) return ready();
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if ('error' in m) p?.reject(fromThreadError(m.error));
      else p?.resolve(m.result);
    });
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`render worker exited with ${code}`)));
  }

  private request<T>(body: Omit<WorkerRequest, 'id'>): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise<T>((resolvePromise, reject) => {
      this.pending.set(id, { resolve: resolvePromise as (v: unknown) => void, reject });
      this.worker.postMessage({ id, ...body });
    });
  }

  renderFile(file: string, fileNo: number): Promise<FileResult> {
    return this.request({ file, fileNo });
  }

  renderDeferred(items: DeferredItem[]): Promise<Outcome[]> {
    return this.request({ deferred: items });
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }
}

/**
 * A worker's young generation, capped: V8 grows it to 16 MiB semi-spaces per thread by default, and
 * each worker's heap then kept far more than it used (100,000 mixed resources, 2 threads: peak RSS
 * 536 MiB with V8's default, 377 MiB with 4 MiB semi-spaces, in the same time).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 12 };

/** Worker threads that load kiln while this one starts rendering. */
function startWorkers(count: number, options: Omit<WorkerSetup, 'compileCacheDir'>): InWorker[] {
  const setup: WorkerSetup = { ...options, compileCacheDir: module.getCompileCacheDir?.() };
  const fromSource = import.meta.url.endsWith('.ts');
  const workerUrl = new URL(`./render-worker-entry${fromSource ? '.ts' : '.js'}`, import.meta.url);
  // Running from TypeScript sources, the worker needs tsx's loader too.
  return Array.from(
    { length: count },
    () =>
      new InWorker(
        fromSource
          ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}); })`, { eval: true, workerData: setup, resourceLimits: WORKER_LIMITS })
          : new Worker(workerUrl, { workerData: setup, resourceLimits: WORKER_LIMITS }),
      ),
  );
}

/**
 * Runs every job on the renderers as they become free (each with its number
 * of lanes); resolves when all are done, without waiting for a worker that
 * never became ready, and rejects on the first failure.
 */
function pool<J, R>(renderers: Renderer[], jobs: J[], run: (r: Renderer, job: J) => Promise<R>, done: (job: J, result: R) => void): Promise<void> {
  return new Promise((resolvePool, rejectPool) => {
    let next = 0;
    let finished = 0;
    let over = jobs.length === 0;
    if (over) return resolvePool();
    const fail = (err: unknown) => {
      if (over) return;
      over = true;
      rejectPool(asError(err));
    };
    const lane = (r: Renderer) => {
      if (over || next >= jobs.length) return;
      const job = jobs[next++]!;
      run(r, job).then((result) => {
        if (over) return;
        try {
          done(job, result);
        } catch (err) {
          return fail(err);
        }
        if (++finished === jobs.length) {
          over = true;
          resolvePool();
        } else lane(r);
      }, fail);
    };
    for (const r of renderers) {
      r.ready.then(() => {
        for (let i = 0; i < r.lanes; i++) lane(r);
      }, fail);
    }
  });
}

interface Occurrence {
  fileNo: number;
  index: number;
  resource?: string;
  outcome: Outcome;
}

const inputOrder = (a: Occurrence, b: Occurrence) => a.fileNo - b.fileNo || a.index - b.index;

/** What the rendering threads report, gathered: one small record per resource, the problems, the plain documents (exported for its tests). */
export class Gathered {
  readonly problems: Problem[] = [];
  readonly warnings: Warning[] = [];
  readonly plain: PlainObject[] = [];
  resources = 0;
  files = 0;
  /** By duplicate key: the first occurrence to arrive (threads finish in any order). */
  private readonly byKey = new Map<string, Occurrence>();
  /** Later occurrences of the same keys (rare: an error). */
  private readonly repeated = new Map<string, Occurrence[]>();
  /** Documents with no kind or name: never a duplicate, never valid. */
  private readonly keyless: Occurrence[] = [];

  constructor(private readonly inputFiles: string[]) {}

  add(fileNo: number, r: FileResult): void {
    this.files++;
    for (const p of r.problems) this.problems.push(p);
    for (const w of r.warnings) this.warnings.push(w);
    for (const o of r.plain) this.plain.push(o);
    for (const rec of r.resources) {
      this.resources++;
      const occ: Occurrence = { fileNo, index: rec.index, resource: rec.resource, outcome: rec.outcome };
      if (!rec.key) {
        this.keyless.push(occ);
        continue;
      }
      const first = this.byKey.get(rec.key);
      if (!first) this.byKey.set(rec.key, occ);
      else this.repeated.set(rec.key, [...(this.repeated.get(rec.key) ?? []), occ]);
    }
  }

  /**
   * The same resource given twice would overwrite its own output: the first in
   * the inputs is kept, the later ones are problems, and the staged file is
   * the first one's whichever thread wrote first.
   */
  resolveDuplicates(stagingDir: string): void {
    for (const [key, later] of this.repeated) {
      const all = [this.byKey.get(key)!, ...later].sort(inputOrder);
      const [first, ...others] = all as [Occurrence, ...Occurrence[]];
      this.byKey.set(key, first);
      for (const o of others) {
        const message = `Duplicate value: ${o.resource ?? key} is also defined in ${this.inputFiles[first.fileNo]} document ${first.index}`;
        this.problems.push({ file: this.inputFiles[o.fileNo]!, index: o.index, resource: o.resource, errors: [{ path: 'metadata.name', message }] });
      }
      const staged = all.find((o) => 'path' in o.outcome && !o.outcome.aside);
      const kept = first.outcome;
      if ('path' in kept && kept.aside) renameSync(join(stagingDir, kept.aside), join(stagingDir, kept.path));
      else if (!('path' in kept) && staged && 'path' in staged.outcome) rmSync(join(stagingDir, staged.outcome.path));
      if ('path' in kept) first.outcome = { path: kept.path };
    }
    this.repeated.clear();
  }

  private *kept(): Generator<Occurrence> {
    yield* this.byKey.values();
    yield* this.keyless;
  }

  /** The resources that wait for every file to be read, each with what it reads from them. */
  deferred(): { items: DeferredItem[]; occurrences: Occurrence[] } {
    const occurrences = [...this.kept()].filter((o) => 'deferred' in o.outcome);
    const items = occurrences.map((o, id) => {
      const doc = (o.outcome as { deferred: unknown }).deferred;
      const context: RenderContext = (doc as KilnResource).apiVersion === KILN_API_VERSION ? contextFromObjects(doc as KilnResource, this.plain) : {};
      return { id, doc, context };
    });
    return { items, occurrences };
  }

  report(): { rendered: { resource: string; file: string }[]; notes: Note[] } {
    const rendered: { resource: string; file: string }[] = [];
    const notes: (Note & { at: Occurrence })[] = [];
    for (const o of this.kept()) {
      const file = this.inputFiles[o.fileNo]!;
      const out = o.outcome;
      if ('errors' in out) this.problems.push({ file, index: o.index, resource: o.resource, errors: out.errors });
      else if ('note' in out) notes.push({ file, index: o.index, resource: o.resource!, message: out.note, at: o });
      else if ('path' in out) rendered.push({ resource: o.resource ?? out.path, file: out.path });
    }
    this.problems.sort((a, b) => a.file.localeCompare(b.file) || a.index - b.index);
    this.warnings.sort((a, b) => a.file.localeCompare(b.file) || a.index - b.index);
    return { rendered: inOutputOrder(rendered, (r) => r.file), notes: notes.sort((a, b) => inputOrder(a.at, b.at)).map(({ at: _, ...n }) => n) };
  }
}

export async function synth(options: SynthOptions): Promise<SynthReport> {
  if (options.clean && !options.stream) checkCleanTarget(options.outDir, options.inputs);
  const limits = options.limits ?? DEFAULT_INPUT_LIMITS;
  const { files, bytes } = listInputFiles(options.inputs, limits);
  const threads = Math.max(1, Math.min(files.length, options.jobs ?? (bytes >= WORKERS_FROM_BYTES ? availableParallelism() : 1)));

  let stagingDir: string;
  if (options.stream) {
    stagingDir = mkdtempSync(join(tmpdir(), 'kiln-synth-staging-'));
  } else {
    mkdirSync(dirname(resolve(options.outDir)), { recursive: true });
    stagingDir = mkdtempSync(join(dirname(resolve(options.outDir)), `.${basename(options.outDir)}.staging-`));
  }
  const setup = { stagingDir, strict: Boolean(options.strict), limits };
  const renderers: Renderer[] = [new InThread(new FileRenderer(stagingDir, setup)), ...startWorkers(threads - 1, setup)];
  const gathered = new Gathered(files);
  try {
    await pool(
      renderers,
      files.map((_, fileNo) => fileNo),
      (r, fileNo) => r.renderFile(files[fileNo]!, fileNo),
      (fileNo, result) => {
        gathered.add(fileNo, result);
        options.onProgress?.({ resources: gathered.resources, files: gathered.files, totalFiles: files.length });
      },
    );
    gathered.resolveDuplicates(stagingDir);
    const { items, occurrences } = gathered.deferred();
    const batches: number[] = [];
    for (let from = 0; from < items.length; from += DEFERRED_BATCH) batches.push(from);
    await pool(
      renderers,
      batches,
      (r, from) => r.renderDeferred(items.slice(from, from + DEFERRED_BATCH)),
      (from, outcomes) => outcomes.forEach((o, i) => (occurrences[from + i]!.outcome = o)),
    );
  } catch (err) {
    rmSync(stagingDir, { recursive: true, force: true });
    throw err;
  } finally {
    await Promise.all(renderers.map((r) => r.close()));
  }

  const { problems, warnings } = gathered;
  const { notes, rendered: all } = gathered.report();
  let rendered = all;
  try {
    if (problems.length === 0 || options.continueOnError) {
      if (options.stream)
        await emit(
          stagingDir,
          rendered.map((r) => r.file),
          options.stream,
        );
      else
        publish(
          stagingDir,
          options.outDir,
          rendered.map((r) => r.file),
          Boolean(options.clean),
        );
    } else {
      rendered = [];
    }
  } finally {
    rmSync(stagingDir, { recursive: true, force: true });
  }
  if (options.stream) return { written: [], rendered: rendered.map(({ resource }) => ({ resource })), warnings, problems, notes, other: otherDocuments(gathered.plain) };
  for (const r of rendered) r.file = join(options.outDir, r.file);
  return { written: rendered.map((r) => r.file), rendered, warnings, problems, notes, other: otherDocuments(gathered.plain) };
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

export interface WorkItem {
  doc: unknown;
  context: RenderContext;
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
 * Reads files and directories as `kiln synth` does, all at once (for `kiln
 * diff`, which compares each resource with the cluster): unreadable YAML is a
 * problem, documents of kiln.dev/ are resources (a resource given twice is a
 * problem), every other document is a render input of the kinds that have
 * some (kinds/registry.ts `inputs`).
 */
export function collectInputs(paths: string[], o: { strict?: boolean; limits?: InputLimits } = {}): CollectedInputs {
  const problems: Problem[] = [];
  const warnings: Warning[] = [];
  const plain: PlainObject[] = [];
  const candidates: InputDocument[] = [];
  for (const d of readInputs(paths, o.limits)) {
    const s = sortDocument(d, Boolean(o.strict));
    if ('resource' in s) {
      candidates.push(s.resource);
      if (readByOthers(s.resource.value)) plain.push(s.resource.value as PlainObject);
      continue;
    }
    if ('plain' in s) plain.push(s.plain);
    if ('warning' in s && s.warning) warnings.push(s.warning);
    if (s.problem) problems.push(s.problem);
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
  return { items, problems, other: otherDocuments(plain), warnings };
}
