import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { writePreview } from '../gitops/preview.js';
import { checkLayoutOptions, type LayoutOptions } from '../gitops/layout.js';
import type { SynthReport } from '../lib/synth.js';
import { wholeNumber } from './runtime-options.js';

export function printProblems(report: SynthReport, stream: NodeJS.WritableStream = process.stderr): void {
  for (const p of report.problems) {
    const who = p.resource ? ` ${p.resource}` : '';
    for (const e of p.errors) stream.write(`${p.file} [document ${p.index}]${who}: ${e.path ? `${e.path}: ` : ''}${e.message}\n`);
  }
}

export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description('Render kiln resources from YAML files or directories into one YAML file per resource, offline.')
    .argument('[inputs...]', 'files or directories of YAML documents (kiln resources, plus the ConfigMaps and Namespaces a ConfigMapSync reads)', ['examples'])
    .option('-o, --output <dir>', 'output directory', 'dist')
    .option('--continue-on-error', 'render the valid resources even when some are invalid (still exits 1)', false)
    .option('--clean', 'empty the output directory first', false)
    .option('-j, --jobs <n>', 'worker threads (default: one per core for large inputs)', wholeNumber(1))
    .option('-q, --quiet', 'print nothing but errors', false)
    .option('--git <dir>', 'write the git-mode layout (<base-path>/<cluster>/<namespace>/<kind>/<name>/manifest.yaml and kustomization.yaml files) into this working tree instead, replacing everything under the base path: exactly what a commit would contain')
    .option('--cluster <name>', 'with --git: the cluster directory', 'default')
    .option('--base-path <path>', 'with --git: the directory kiln owns in the repository', 'clusters')
    .option('--output-from-env', 'take the output directory from CDK8S_OUTDIR and the inputs from KILN_INPUT (as `cdk8s synth` runs its app)', false)
    .action(async (inputs: string[], opts: { output: string; continueOnError: boolean; clean: boolean; jobs?: number; quiet: boolean; outputFromEnv: boolean; git?: string; cluster: string; basePath: string }) => {
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
      } finally {
        if (staging) rmSync(staging, { recursive: true, force: true });
      }
    });
}

async function runSynth(inputs: string[], opts: { output: string; continueOnError: boolean; clean: boolean; jobs?: number; quiet: boolean; outputFromEnv: boolean; git?: string }, layout: LayoutOptions | undefined): Promise<void> {
  if (opts.outputFromEnv) {
    if (!opts.git) opts.output = process.env['CDK8S_OUTDIR'] ?? opts.output;
    if (process.env['KILN_INPUT']) inputs = process.env['KILN_INPUT'].split(':');
  }
  const started = performance.now();
  // Loaded on use: `kiln --help` and `kiln controller` need none of the renderer.
  const { synth } = await import('../lib/synth.js');
  let lastProgress = 0;
  const report = await synth({
    inputs,
    outDir: opts.output,
    continueOnError: opts.continueOnError,
    clean: opts.clean,
    jobs: opts.jobs,
    onProgress: (done, total) => {
      const now = performance.now();
      if (total >= 1000 && !opts.quiet && (now - lastProgress > 500 || done === total)) {
        lastProgress = now;
        process.stderr.write(`rendered ${done}/${total}\n`);
      }
    },
  });
  printProblems(report);
  // Valid resources that render nothing offline (a ConfigMapSync without its source): one line each, not an error.
  if (!opts.quiet) for (const n of report.notes) process.stderr.write(`${n.file} [document ${n.index}] ${n.resource}: ${n.message}\n`);
  let where = opts.output;
  if (opts.git && layout && (report.problems.length === 0 || opts.continueOnError)) {
    const preview = writePreview(opts.output, report.written, opts.git, layout);
    where = `${join(opts.git, preview.path)} (${preview.written.length} files written, ${preview.deleted.length} removed; ${preview.empty} render no objects)`;
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  if (!opts.quiet) {
    process.stderr.write(`${report.written.length} resources rendered into ${where} in ${seconds}s; ${report.problems.length} invalid\n`);
    if (report.problems.length > 0 && !opts.continueOnError) process.stderr.write('nothing written: fix the errors above, or pass --continue-on-error to render the valid resources\n');
  }
  process.exitCode = report.problems.length > 0 ? 1 : 0;
}
