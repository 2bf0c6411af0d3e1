/**
 * What one rendering thread of `kiln synth` does with an input file: read it,
 * sort its documents, render the kiln resources that need nothing from other
 * files and write each one's YAML into the staging directory at once. Only a
 * little goes back to the coordinator (lib/synth.ts): per resource, the file
 * it went to or why it was not rendered; the plain documents (render inputs of
 * the kinds that read some) and the resources that need them, which are
 * rendered once every file has been read. Rendered objects are never kept.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { KILN_API_VERSION, KIND_NAMES, kindDefinition, READ_KINDS } from '../kinds/registry.js';
import type { RenderContext } from '../kinds/types.js';
import type { PlainObject } from './context.js';
import { InputRefused, kilnLookalike, readInputFile, type InputDocument, type InputLimits } from './inputs.js';
import { renderDocument } from './render-document.js';
import type { Problem, Warning } from './synth.js';

/** Where a resource's YAML went (`aside` when another document had already written its file), or why it has none. */
export type Outcome = { path: string; aside?: string } | { note: string } | { errors: { path: string; message: string }[] } | { deferred: unknown };

export interface ResourceRecord {
  index: number;
  /** `Kind namespace/name`, for messages; absent when the document has no kind or name. */
  resource?: string;
  /** The same resource twice has the same key (an empty namespace is the default one, as in its output path). */
  key?: string;
  outcome: Outcome;
}

export interface FileResult {
  /** The kiln resources of the file, in file order. */
  resources: ResourceRecord[];
  /** Documents that cannot be read, and (with `strict`) those that look like kiln resources but are not. */
  problems: Problem[];
  warnings: Warning[];
  /** Documents that are not kiln resources: what a ConfigMapSync reads. */
  plain: PlainObject[];
}

export interface DeferredItem {
  id: number;
  doc: unknown;
  context: RenderContext;
}

export function describe(value: unknown): string | undefined {
  const v = value as { kind?: string; metadata?: { name?: string; namespace?: string } } | undefined;
  return v?.kind && v.metadata?.name ? `${v.kind} ${v.metadata.namespace ?? 'default'}/${v.metadata.name}` : undefined;
}

function duplicateKey(value: unknown): string | undefined {
  const v = value as { kind?: string; metadata?: { name?: string; namespace?: string } } | undefined;
  return v?.kind && v.metadata?.name ? `${v.kind} ${v.metadata.namespace || 'default'}/${v.metadata.name}` : undefined;
}

export type Sorted = { resource: InputDocument } | { plain: PlainObject; warning?: Warning; problem?: Problem } | { problem: Problem };

/**
 * Where a document belongs: unreadable YAML is a problem, documents of
 * kiln.dev/ are resources, every other document is a plain input (one that
 * looks like a kiln resource but is not gets a warning, or with `strict` a
 * problem, and is still an input).
 */
export function sortDocument(d: InputDocument, strict: boolean): Sorted {
  if (d.errors) return { problem: { file: d.file, index: d.index, resource: describe(d.value), errors: d.errors.map((e) => ({ path: e.path, message: `YAML: ${e.message}` })) } };
  const apiVersion = (d.value as PlainObject | null)?.apiVersion;
  if (typeof apiVersion === 'string' && apiVersion.startsWith('kiln.dev/')) return { resource: d };
  const plain = d.value as PlainObject;
  const lookalike = kilnLookalike(d.value, KIND_NAMES, KILN_API_VERSION);
  if (lookalike && strict)
    return { plain, problem: { file: d.file, index: d.index, resource: describe(d.value), errors: [{ path: 'apiVersion', message: `${lookalike}; --strict makes this an error` }] } };
  if (lookalike) return { plain, warning: { file: d.file, index: d.index, message: lookalike } };
  return { plain };
}

/** Resources whose render reads other input documents wait until every file has been read. */
function needsInputs(value: unknown): boolean {
  const v = value as { apiVersion?: unknown; kind?: unknown };
  return v.apiVersion === KILN_API_VERSION && typeof v.kind === 'string' && kindDefinition(v.kind)?.inputs !== undefined;
}

/** A kiln resource another kind's render reads (kinds/kind.ts `reads`): it is also a plain input. */
export function readByOthers(value: unknown): boolean {
  const v = value as { apiVersion?: unknown; kind?: unknown };
  return v.apiVersion === KILN_API_VERSION && typeof v.kind === 'string' && READ_KINDS.has(v.kind);
}

/** Plain inputs that are not kiln resources (what synth reports as other documents). */
export const otherDocuments = (plain: PlainObject[]) => plain.filter((o) => o.apiVersion !== KILN_API_VERSION).length;

/**
 * Writes rendered files under a staging directory, from the thread that
 * rendered them. Each file is created exclusively: a second document of the
 * same resource (rendered by any thread, in any order) writes aside instead,
 * and the coordinator keeps the one that comes first in the inputs. Writes
 * are synchronous on purpose: measured here, firing them concurrently while
 * rendering made the whole run twice as slow, the file system's work
 * competing for the same cores.
 */
export class StagedWriter {
  private readonly dirs = new Set<string>();
  constructor(private readonly root: string) {}

  write(relative: string, yaml: string, asideName: string): { path: string; aside?: string } {
    const path = join(this.root, relative);
    this.dir(dirname(path));
    try {
      writeFileSync(path, yaml, { flag: 'wx' });
      return { path: relative };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const aside = join(ASIDE_DIR, asideName);
    this.dir(join(this.root, ASIDE_DIR));
    writeFileSync(join(this.root, aside), yaml);
    return { path: relative, aside };
  }

  private dir(dir: string): void {
    if (!this.dirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.dirs.add(dir);
    }
  }
}

/** Under the staging directory: files of resources given more than once (no output path starts with a dot). */
export const ASIDE_DIR = '.aside';

export class FileRenderer {
  private readonly writer: StagedWriter;
  constructor(
    stagingDir: string,
    private readonly o: { strict: boolean; limits: InputLimits },
  ) {
    this.writer = new StagedWriter(stagingDir);
  }

  private outcome(doc: unknown, context: RenderContext, asideName: string): Outcome {
    const o = renderDocument(doc, context);
    return 'errors' in o ? { errors: o.errors } : 'note' in o ? { note: o.note } : this.writer.write(o.path(''), o.yaml, asideName);
  }

  renderFile(file: string, fileNo: number): FileResult {
    const result: FileResult = { resources: [], problems: [], warnings: [], plain: [] };
    for (const d of readInputFile(file, this.o.limits)) {
      const s = sortDocument(d, this.o.strict);
      if ('resource' in s) {
        const value = s.resource.value;
        const outcome = needsInputs(value) ? { deferred: value } : this.outcome(value, {}, `${fileNo}-${d.index}`);
        result.resources.push({ index: d.index, resource: describe(value), key: duplicateKey(value), outcome });
        if (readByOthers(value)) result.plain.push(value as PlainObject);
        continue;
      }
      if ('plain' in s) result.plain.push(s.plain);
      if ('warning' in s && s.warning) result.warnings.push(s.warning);
      if (s.problem) result.problems.push(s.problem);
    }
    return result;
  }

  renderDeferred(items: DeferredItem[]): Outcome[] {
    return items.map((item) => this.outcome(item.doc, item.context, `deferred-${item.id}`));
  }
}

/** An error as it can cross threads: what the command line needs to report it (cli/errors.ts). */
export interface ThreadError {
  message: string;
  refused?: boolean;
  code?: string;
  path?: string;
  syscall?: string;
  stack?: string;
}

export function toThreadError(err: unknown): ThreadError {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error)) return { message: String(err) };
  return { message: e.message, refused: err instanceof InputRefused, code: e.code, path: e.path, syscall: e.syscall, stack: e.stack };
}

/** The error again, on the coordinator's side. */
export function fromThreadError(e: ThreadError): Error {
  if (e.refused) return new InputRefused(e.message);
  const err = Object.assign(new Error(e.message), { code: e.code, path: e.path, syscall: e.syscall });
  if (e.stack) err.stack = e.stack;
  return err;
}
