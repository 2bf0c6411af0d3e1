import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { writePreview } from '../gitops/preview.js';
import { checkLayoutOptions, type LayoutOptions } from '../gitops/layout.js';
import type { SynthReport } from '../lib/synth.js';
import { DEFAULT_INPUT_LIMITS, InputRefused, type InputLimits } from '../lib/input-limits.js';
import { wholeNumber } from './runtime-options.js';

export function printProblems(report: SynthReport, stream: NodeJS.WritableStream = process.stderr): void {
  for (const p of report.problems) {
    const who = p.resource ? ` ${p.resource}` : '';
    for (const e of p.errors) stream.write(`${p.file} [document ${p.index}]${who}: ${e.path ? `${e.path}: ` : ''}${e.message}\n`);
  }
}

/** `--report json`: what `kiln synth` did, for a program to read. Version 1 of this shape. */
export interface JsonReport {
  /** The shape's version; fields are only ever added to version 1. */
  reportVersion: 1;
  /** 0: every resource rendered; 1: some invalid (nothing written unless --continue-on-error). */
  exitCode: 0 | 1;
  /** The output directory, "-" for standard output, or the --git work tree's directory. */
  output: string;
  /** Each resource rendered, in output order, with the file written for it (no file on standard output; with --git, the files only). */
  written: { resource?: string; file?: string }[];
  /** With --git: files removed from the work tree. */
  deleted?: string[];
  /** One per error: the input file, the document's position in it (from 0), the resource, the field path ("" for the whole document) and the message. */
  errors: { file: string; document: number; resource?: string; field: string; message: string }[];
  /** Documents that look like kiln resources but are not (errors instead with --strict). */
  warnings: { file: string; document: number; message: string }[];
  /** Valid resources that render nothing offline, and why. */
  notes: { file: string; document: number; resource: string; message: string }[];
  /** Documents that are not kiln resources (read as inputs: ConfigMaps, Namespaces). */
  otherDocuments: number;
}

const UNITS: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };

/** A size flag: bytes, or a number with Ki, Mi or Gi (`16Mi`). */
export function byteSize(flag: string): (value: string) => number {
  return (value) => {
    const m = /^([0-9]+)(Ki|Mi|Gi)?$/.exec(value.trim());
    if (!m || Number(m[1]) === 0) throw new InvalidArgumentError(`${flag} takes a size in bytes, or with Ki, Mi or Gi (e.g. 16Mi); got "${value}"`);
    return Number(m[1]) * UNITS[m[2] ?? '']!;
  };
}

const sizeText = (n: number) => `${n / 2 ** 20}Mi`;

/** --max-file-size and --max-input-size, shared by synth and diff. */
export function addInputLimitOptions(command: Command): Command {
  return command
    .option(
      '--max-file-size <size>',
      `largest input file read (bytes, or with Ki/Mi/Gi; default ${sizeText(DEFAULT_INPUT_LIMITS.maxFileBytes)})`,
      byteSize('--max-file-size'),
      DEFAULT_INPUT_LIMITS.maxFileBytes,
    )
    .option('--max-input-size <size>', `largest total of all input files (default ${sizeText(DEFAULT_INPUT_LIMITS.maxTotalBytes)})`, byteSize('--max-input-size'), DEFAULT_INPUT_LIMITS.maxTotalBytes);
}

export function inputLimits(opts: { maxFileSize: number; maxInputSize: number }): InputLimits {
  return { maxFileBytes: opts.maxFileSize, maxTotalBytes: opts.maxInputSize };
}

interface SynthFlags {
  maxFileSize: number;
  maxInputSize: number;
  output: string;
  stdout?: boolean;
  report: 'text' | 'json';
  strict: boolean;
  continueOnError: boolean;
  clean: boolean;
  jobs?: number;
  quiet: boolean;
  outputFromEnv: boolean;
  git?: string;
  cluster: string;
  basePath: string;
}

const HELP_AFTER = `
Output: one file per resource, <output>/<namespace>/<kind>/<name>.k8s.yaml. With -o - (or
--stdout), one multi-document YAML stream on standard output instead, in the order of those
files (by namespace, then kind, then name, in code-point order), each resource's objects in
the order of its file; every message goes to standard error.

--report json prints one JSON object (JsonReport in cli/synth-command.ts: exitCode, output,
written, errors with file, document, field and message, warnings, notes) on standard output,
or on standard error with -o -, in place of the text messages.

Exit status: 0 every resource rendered; 1 some resource invalid (or, with --strict, a
document that looks like a kiln resource but is not); 2 usage error or an input that cannot
be read (larger than --max-file-size or --max-input-size), or an output directory that
--clean refuses to delete (one that holds an input, the current directory, the home
directory or a Git repository's root).

Inputs are read as YAML 1.2. A document whose aliases expand too far, or with an unquoted
value that YAML 1.1 readers such as kubectl read otherwise (010, yes/no/on/off/y/n, 1:20,
0o17, 1_000, <<), is an error naming the file, the document and the field.`;

export function registerSynth(program: Command): void {
  const command = program
    .command('synth')
    .description('Render kiln resources from YAML files or directories into one YAML file per resource, offline.')
    .argument('[inputs...]', 'files or directories of YAML documents (kiln resources, plus the ConfigMaps and Namespaces a ConfigMapSync reads)', ['examples'])
    .option('-o, --output <dir>', 'output directory; "-" writes one YAML stream to standard output', 'dist')
    .addOption(new Option('--stdout', 'write one YAML stream to standard output (the same as -o -)').conflicts(['output', 'git']))
    .addOption(new Option('--report <format>', 'text: messages for a person on standard error; json: one JSON object (see below)').choices(['text', 'json']).default('text'))
    .option('--strict', 'a document that looks like a kiln resource but is not (a group such as kilm.dev, a kiln kind with no apiVersion) is an error, not a warning', false)
    .option('--continue-on-error', 'render the valid resources even when some are invalid (still exits 1)', false)
    .option('--clean', "empty the output directory first; refused (exit 2, nothing deleted) for a directory that holds an input, the current or home directory, or a Git repository's root", false)
    .option('-j, --jobs <n>', 'threads that render, the main one included (default: one per core for large inputs)', wholeNumber(1))
    .option('-q, --quiet', 'print nothing but errors', false)
    .option(
      '--git <dir>',
      'write the git-mode layout (<base-path>/<cluster>/<namespace>/<kind>/<name>/manifest.yaml and kustomization.yaml files) into this working tree instead, replacing everything under the base path: exactly what a commit would contain',
    )
    .option('--cluster <name>', 'with --git: the cluster directory', 'default')
    .option('--base-path <path>', 'with --git: the directory kiln owns in the repository', 'clusters')
    .option('--output-from-env', 'take the output directory from CDK8S_OUTDIR and the inputs from KILN_INPUT (as `cdk8s synth` runs its app)', false);
  addInputLimitOptions(command)
    .addHelpText('after', HELP_AFTER)
    .action(async (inputs: string[], opts: SynthFlags, cmd: Command) => {
      if (opts.stdout) opts.output = '-';
      if (opts.git && opts.output === '-' && cmd.getOptionValueSource('output') === 'cli') {
        cmd.error("error: option '--git <dir>' cannot be used with '-o -': --git writes files into the work tree", { exitCode: 2, code: 'kiln.conflictingOption' });
      }
      let layout: LayoutOptions | undefined;
      let staging: string | undefined;
      if (opts.git) {
        try {
          layout = checkLayoutOptions({ cluster: opts.cluster, basePath: opts.basePath });
        } catch (err) {
          process.stderr.write(`${(err as Error).message}\n`);
          process.exitCode = 2;
          return;
        }
        // Render as usual into a scratch directory, then lay the files out in the working tree.
        staging = mkdtempSync(join(tmpdir(), 'kiln-synth-git-'));
        opts.output = join(staging, 'out');
      }
      try {
        await runSynth(inputs, opts, layout);
      } catch (err) {
        // An input too large, or an output directory --clean must not delete: nothing was read or removed.
        if (!(err instanceof InputRefused)) throw err;
        process.stderr.write(`kiln synth: ${err.message}\n`);
        process.exitCode = 2;
      } finally {
        if (staging) rmSync(staging, { recursive: true, force: true });
      }
    });
}

async function runSynth(inputs: string[], opts: SynthFlags, layout: LayoutOptions | undefined): Promise<void> {
  if (opts.outputFromEnv) {
    if (!opts.git) opts.output = process.env['CDK8S_OUTDIR'] ?? opts.output;
    if (process.env['KILN_INPUT']) inputs = process.env['KILN_INPUT'].split(':');
  }
  const toStdout = opts.output === '-';
  const json = opts.report === 'json';
  // Messages for a person: none in json mode (the report says it all).
  const say = (line: string) => {
    if (!json) process.stderr.write(`${line}\n`);
  };
  const started = performance.now();
  // Loaded on use: `kiln --help` and `kiln controller` need none of the renderer.
  const { synth } = await import('../lib/synth.js');
  let lastProgress = 0;
  const report = await synth({
    inputs,
    outDir: opts.output,
    stream: toStdout ? process.stdout : undefined,
    strict: opts.strict,
    continueOnError: opts.continueOnError,
    clean: opts.clean,
    jobs: opts.jobs,
    limits: inputLimits(opts),
    onProgress: ({ resources, files, totalFiles }) => {
      // A line every half second once the run is long enough for a person to wonder.
      const now = performance.now();
      if (!opts.quiet && now - started > 1000 && (now - lastProgress > 500 || files === totalFiles)) {
        lastProgress = now;
        say(`rendered ${resources} resources, ${files}/${totalFiles} input files read`);
      }
    },
  });
  const exitCode = report.problems.length > 0 ? 1 : 0;
  let where = toStdout ? 'standard output' : opts.output;
  let preview: ReturnType<typeof writePreview> | undefined;
  if (opts.git && layout && (report.problems.length === 0 || opts.continueOnError)) {
    preview = writePreview(opts.output, report.written, opts.git, layout);
    where = `${join(opts.git, preview.path)} (${preview.written.length} files written, ${preview.deleted.length} removed; ${preview.empty} render no objects)`;
  }
  if (json) {
    const out: JsonReport = {
      reportVersion: 1,
      exitCode,
      output: opts.git && layout ? join(opts.git, layout.basePath, layout.cluster) : opts.output,
      written: preview ? preview.written.map((file) => ({ file: join(opts.git!, file) })) : report.rendered,
      ...(preview ? { deleted: preview.deleted.map((f) => join(opts.git!, f)) } : {}),
      errors: report.problems.flatMap((p) => p.errors.map((e) => ({ file: p.file, document: p.index, ...(p.resource ? { resource: p.resource } : {}), field: e.path, message: e.message }))),
      warnings: report.warnings.map((w) => ({ file: w.file, document: w.index, message: w.message })),
      notes: report.notes.map((n) => ({ file: n.file, document: n.index, resource: n.resource, message: n.message })),
      otherDocuments: report.other,
    };
    (toStdout ? process.stderr : process.stdout).write(`${JSON.stringify(out, null, 2)}\n`);
    process.exitCode = exitCode;
    return;
  }
  for (const w of report.warnings) process.stderr.write(`${w.file} [document ${w.index}]: warning: ${w.message}; --strict makes this an error\n`);
  printProblems(report);
  // Valid resources that render nothing offline (a ConfigMapSync without its source): one line each, not an error.
  if (!opts.quiet) for (const n of report.notes) process.stderr.write(`${n.file} [document ${n.index}] ${n.resource}: ${n.message}\n`);
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  if (!opts.quiet) {
    process.stderr.write(`${report.rendered.length} resources rendered into ${where} in ${seconds}s; ${report.problems.length} invalid\n`);
    if (report.problems.length > 0 && !opts.continueOnError) process.stderr.write('nothing written: fix the errors above, or pass --continue-on-error to render the valid resources\n');
  }
  process.exitCode = exitCode;
}
