/**
 * Offline render: input files -> validate -> render -> one YAML file per
 * resource. Shared by `kiln synth`, the cdk8s app (main.ts) and the benchmarks.
 * Large inputs are spread over worker threads; the output does not depend on
 * how many.
 */
import { availableParallelism } from 'node:os';
import { mkdirSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { KILN_API_VERSION } from '../charts/registry.js';
import type { KilnResource, RenderContext } from '../charts/types.js';
import { contextFromObjects, type PlainObject } from './context.js';
import { readInputs, type InputDocument } from './inputs.js';
import { renderDocument, type Outcome } from './render-document.js';

export interface SynthOptions {
  inputs: string[];
  outDir: string;
  /** Render the valid resources even when others are invalid (the exit status still reports them). */
  continueOnError?: boolean;
  /** Worker threads; default: one per core when there are enough resources to pay for them. */
  jobs?: number;
  /** Remove outDir first. */
  clean?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface Problem {
  file: string;
  index: number;
  resource?: string;
  errors: { path: string; message: string }[];
}

export interface SynthReport {
  written: string[];
  problems: Problem[];
  /** Documents that are not kiln resources (used as context, e.g. ConfigMapSync sources). */
  other: number;
}

export interface WorkItem {
  doc: unknown;
  context: RenderContext;
}

const PER_WORKER_MINIMUM = 1500;

export function outputPath(outDir: string, r: KilnResource): string {
  return join(outDir, r.metadata.namespace ?? 'default', r.kind.toLowerCase(), `${r.metadata.name}.k8s.yaml`);
}

function describe(value: unknown): string | undefined {
  const v = value as { kind?: string; metadata?: { name?: string; namespace?: string } } | undefined;
  return v?.kind && v.metadata?.name ? `${v.kind} ${v.metadata.namespace ?? 'default'}/${v.metadata.name}` : undefined;
}

async function renderAll(items: WorkItem[], jobs: number, onProgress?: (done: number, total: number) => void): Promise<Outcome[]> {
  if (jobs <= 1) {
    return items.map((item, i) => {
      if (onProgress && i % 500 === 0) onProgress(i, items.length);
      return renderDocument(item.doc, item.context);
    });
  }
  const size = Math.ceil(items.length / jobs);
  const chunks = Array.from({ length: jobs }, (_, j) => items.slice(j * size, (j + 1) * size));
  const fromSource = import.meta.url.endsWith('.ts');
  const workerUrl = new URL(`./render-worker${fromSource ? '.ts' : '.js'}`, import.meta.url);
  // Running from TypeScript sources, the worker needs tsx's loader too.
  const spawn = (chunk: WorkItem[]) =>
    fromSource
      ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}); })`, { eval: true, workerData: chunk })
      : new Worker(workerUrl, { workerData: chunk });
  let done = 0;
  const results = await Promise.all(
    chunks.map(
      (chunk) =>
        new Promise<Outcome[]>((resolve, reject) => {
          const worker = spawn(chunk);
          worker.on('message', (msg: { progress?: number; outcomes?: Outcome[] }) => {
            if (msg.progress !== undefined) {
              done += msg.progress;
              onProgress?.(done, items.length);
            }
            if (msg.outcomes) resolve(msg.outcomes);
          });
          worker.on('error', reject);
          worker.on('exit', (code) => code !== 0 && reject(new Error(`render worker exited with ${code}`)));
        }),
    ),
  );
  return results.flat();
}

export async function synth(options: SynthOptions): Promise<SynthReport> {
  const docs = readInputs(options.inputs);
  const problems: Problem[] = [];
  const plain: PlainObject[] = [];
  const candidates: InputDocument[] = [];
  for (const d of docs) {
    if (d.error) problems.push({ file: d.file, index: d.index, errors: [{ path: '', message: `YAML: ${d.error}` }] });
    else if (typeof (d.value as PlainObject)?.apiVersion === 'string' && (d.value as PlainObject).apiVersion!.startsWith('kiln.dev/')) candidates.push(d);
    else plain.push(d.value as PlainObject);
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

  const items: WorkItem[] = unique.map((d) => ({
    doc: d.value,
    context: (d.value as KilnResource).apiVersion === KILN_API_VERSION && (d.value as KilnResource).kind === 'ConfigMapSync'
      ? contextFromObjects(d.value as KilnResource, plain)
      : {},
  }));
  const wanted = options.jobs ?? Math.min(availableParallelism(), Math.floor(items.length / PER_WORKER_MINIMUM));
  const outcomes = await renderAll(items, Math.max(1, wanted), options.onProgress);

  const ready: { path: string; yaml: string }[] = [];
  outcomes.forEach((o, i) => {
    const d = unique[i]!;
    if ('errors' in o) problems.push({ file: d.file, index: d.index, resource: describe(d.value), errors: o.errors });
    else ready.push({ path: outputPath(options.outDir, o.resource), yaml: o.yaml });
  });
  problems.sort((a, b) => a.file.localeCompare(b.file) || a.index - b.index);

  const written: string[] = [];
  if (problems.length === 0 || options.continueOnError) {
    if (options.clean) rmSync(options.outDir, { recursive: true, force: true });
    const dirs = new Set(ready.map((r) => dirname(r.path)));
    for (const dir of dirs) mkdirSync(dir, { recursive: true });
    // Writes go out in parallel batches: the file system, not the CPU, sets the pace here.
    for (let i = 0; i < ready.length; i += 64) {
      const batch = ready.slice(i, i + 64);
      await Promise.all(batch.map((r) => writeFile(r.path, r.yaml)));
      written.push(...batch.map((r) => r.path));
    }
  }
  options.onProgress?.(items.length, items.length);
  return { written, problems, other: plain.length };
}
