/** `kiln diff`: what apply mode would change in a live cluster (controller/apply/diff.ts). */
import type { Command } from 'commander';
import { fileSystemError } from './errors.js';
import { addInputLimitOptions } from './synth-command.js';
import { DEFAULT_INPUT_LIMITS, type InputLimits } from '../lib/input-limits.js';
import { wholeNumber } from './runtime-options.js';
import type { KilnResource } from '../kinds/types.js';
import type { DiffTarget, ResourceDiff } from '../controller/apply/diff.js';
import type { KubeClient } from '../kube/client.js';
import type { KubeObject } from '../kube/informer.js';
import type { Warning } from '../lib/synth.js';

const collect = (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)];

export interface DiffOptions {
  fromCluster: boolean;
  namespace: string[];
  kubeconfig?: string;
  context?: string;
  concurrency: number;
  /** Input size limits (--max-file-size, --max-input-size); default DEFAULT_INPUT_LIMITS. */
  maxFileSize?: number;
  maxInputSize?: number;
}

const HELP_AFTER = `
What it covers: DirectoryService, DirectoryBackup, DirectoryRestore, PostgresInstance,
CacheCluster and DataGrid, the kinds apply mode server-side applies. Not ConfigMapSync
(its copies are written with the tenant's ServiceAccount) nor PostgresDatabase (the
runtime agent's). Fields the server owns (metadata.managedFields, resourceVersion,
generation, uid, creationTimestamp, and status) are left out of the comparison.
Nothing is written: every apply is a dry run (dryRun=All).

Output: one unified diff per object on stdout, headed as kubectl diff heads it
(LIVE/<group>.<version>.<Kind>.<namespace>.<name>); a new object is diffed against
nothing, an object that would be pruned against nothing the other way. Notes and one
summary line per changed resource go to stderr.

Exit status: 0 no change, 1 changes, 2 error (as kubectl diff).

Git mode's preview is \`kiln synth <inputs> --git <work-tree>\` then \`git diff\`.`;

export function registerDiff(program: Command): void {
  const command = program
    .command('diff')
    .description(
      'Show what apply mode would change in a live cluster: render, server-side apply as a dry run with what the controller adds (ApplySet label, ownerReference, digest annotation), and print a unified diff of the live and would-be objects, plus the objects it would prune.',
    )
    .argument('[inputs...]', 'files or directories of kiln resources, read and validated as kiln synth reads them')
    .option('--from-cluster', 'diff the kiln resources in the cluster instead of files', false)
    .option(
      '-n, --namespace <ns>',
      'with --from-cluster: only this namespace (repeatable, or comma-separated; default all). With files: the namespace of resources that name none (default "default")',
      collect,
      [],
    )
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)')
    .option('--context <name>', 'kubeconfig context')
    .option('--concurrency <n>', 'resources diffed at once', wholeNumber(1), 4);
  addInputLimitOptions(command)
    .addHelpText('after', HELP_AFTER)
    .action(async (inputs: string[], opts: DiffOptions) => {
      process.exitCode = await runDiff(inputs, opts, process.stdout, process.stderr);
    });
}

/** The whole command; returns the exit status. */
export async function runDiff(inputs: string[], opts: DiffOptions, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<number> {
  const fail = (msg: string) => {
    stderr.write(`kiln diff: ${msg}\n`);
    return 2;
  };
  if (opts.fromCluster && inputs.length > 0) return fail('give files or --from-cluster, not both');
  if (!opts.fromCluster && inputs.length === 0) return fail('give files or directories of kiln resources, or --from-cluster');
  if (!opts.fromCluster && opts.namespace.length > 1) return fail('with files, -n names one namespace (for resources that name none)');
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) return fail('--concurrency must be a positive integer');

  // Loaded on use: `kiln --help` needs none of the renderer.
  const { loadKubeConfig, NoClusterConfigError } = await import('../kube/kubeconfig.js');
  const { KubeClient } = await import('../kube/client.js');
  const { diffResource, exitCode, formatReport, mapLimit } = await import('../controller/apply/diff.js');

  let errors = 0;
  let targets: DiffTarget[] = [];
  if (!opts.fromCluster) {
    const read = await targetsFromFiles(inputs, opts.namespace[0], {
      maxFileBytes: opts.maxFileSize ?? DEFAULT_INPUT_LIMITS.maxFileBytes,
      maxTotalBytes: opts.maxInputSize ?? DEFAULT_INPUT_LIMITS.maxTotalBytes,
    });
    if ('error' in read) return fail(read.error);
    for (const w of read.warnings) stderr.write(`${w.file} [document ${w.index}]: warning: ${w.message}\n`);
    for (const line of read.problems) stderr.write(`${line}\n`);
    errors += read.problems.length;
    targets = read.targets;
  }

  let config;
  try {
    config = loadKubeConfig({ kubeconfig: opts.kubeconfig, context: opts.context });
  } catch (err) {
    if (err instanceof NoClusterConfigError) return fail(err.message);
    throw err;
  }
  const client = new KubeClient(config, { qps: 50, burst: 100 });
  try {
    const invalid: ResourceDiff[] = [];
    if (opts.fromCluster) {
      try {
        const found = await targetsFromCluster(client, opts.namespace);
        targets = found.targets;
        invalid.push(...found.invalid);
      } catch (err) {
        return fail(`listing kiln resources: ${(err as Error).message}`);
      }
    }
    const diffs = [...invalid, ...(await mapLimit(targets, opts.concurrency, (t) => diffResource(client, t)))];
    const report = formatReport(diffs);
    stdout.write(report.stdout);
    stderr.write(report.stderr);
    return exitCode(diffs, errors);
  } finally {
    await client.close();
  }
}

/** Files and directories -> validated resources, as `kiln synth` reads and checks them. */
async function targetsFromFiles(inputs: string[], namespace: string | undefined, limits: InputLimits): Promise<{ targets: DiffTarget[]; problems: string[]; warnings: Warning[] } | { error: string }> {
  const { collectInputs } = await import('../lib/synth.js');
  const { validate } = await import('../validate/index.js');
  let collected;
  try {
    collected = collectInputs(inputs, { limits });
  } catch (err) {
    return { error: fileSystemError(err) ?? (err as Error).message };
  }
  const problems: string[] = [];
  const report = (file: string, index: number, who: string | undefined, errs: { path: string; message: string }[]) => {
    for (const e of errs) problems.push(`${file} [document ${index}]${who ? ` ${who}` : ''}: ${e.path ? `${e.path}: ` : ''}${e.message}`);
  };
  for (const p of collected.problems) report(p.file, p.index, p.resource, p.errors);
  const targets: DiffTarget[] = [];
  for (const item of collected.items) {
    const v = validate(item.doc);
    const doc = item.doc as { kind?: string; metadata?: { name?: string; namespace?: string } };
    if (!v.ok) {
      report(item.source.file, item.source.index, doc?.kind && doc.metadata?.name ? `${doc.kind} ${doc.metadata.namespace ?? namespace ?? 'default'}/${doc.metadata.name}` : undefined, v.errors);
      continue;
    }
    const resource = v.resource;
    if (!resource.metadata.namespace) resource.metadata = { ...resource.metadata, namespace: namespace ?? 'default' };
    targets.push({ resource, context: item.context });
  }
  return { targets, problems, warnings: collected.warnings };
}

/** Every kiln resource in the namespaces (all when none), validated as the reconciler validates it. */
async function targetsFromCluster(client: KubeClient, namespaces: string[]): Promise<{ targets: DiffTarget[]; invalid: ResourceDiff[] }> {
  const { KILN_KINDS } = await import('../kinds/api.js');
  const { resourceLabel } = await import('../controller/apply/diff.js');
  const { validate, formatErrors } = await import('../validate/index.js');
  const { kindDefinition } = await import('../kinds/registry.js');
  const found: (KubeObject & KilnResource)[] = [];
  for (const k of KILN_KINDS) {
    for (const ns of namespaces.length > 0 ? namespaces : [undefined]) {
      let cont: string | undefined;
      do {
        const page = await client.list<KubeObject & KilnResource>({ ...k, namespace: ns }, { limit: 500, continue: cont });
        for (const item of page.items) found.push({ ...item, apiVersion: k.apiVersion, kind: k.kind });
        cont = page.metadata.continue || undefined;
      } while (cont);
    }
  }
  found.sort((a, b) => (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.kind.localeCompare(b.kind) || a.metadata.name.localeCompare(b.metadata.name));
  const targets: DiffTarget[] = [];
  const invalid: ResourceDiff[] = [];
  for (const live of found) {
    const v = validate({ apiVersion: live.apiVersion, kind: live.kind, metadata: live.metadata, spec: live.spec });
    // What its render reads of other kiln resources of its namespace (a CacheCluster, its DataGrids), as the controller passes it.
    const definition = kindDefinition(live.kind);
    const reads = definition?.reads;
    const context =
      reads && definition.inputs
        ? definition.inputs(
            live,
            found.filter((o) => reads.includes(o.kind) && o.metadata.namespace === live.metadata.namespace),
          )
        : undefined;
    if (v.ok) targets.push({ resource: v.resource, live, ...(context ? { context } : {}) });
    else invalid.push({ resource: resourceLabel(live), changes: [], notes: [], errors: [`invalid, so the controller applies and prunes nothing for it: ${formatErrors(v.errors)}`] });
  }
  return { targets, invalid };
}
