/** The kiln command line as a commander program (cli/kiln.ts runs it; tests parse with it in-process). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, type CommanderError, type OutputConfiguration } from 'commander';
import { projectRoot } from '../lib/paths.js';
import { registerAgent } from './agent-command.js';
import { registerController } from './controller-command.js';
import { registerDiff } from './diff-command.js';
import { registerGitops } from './gitops-command.js';
import { registerInstall } from './install-command.js';
import { registerSynth } from './synth-command.js';

/** Exit status of a usage error (unknown flag, bad value, missing argument), as kiln's own checks and kubectl use. */
export const USAGE_EXIT = 2;

export interface ProgramOptions {
  /** Called instead of commander's exit: with 0 after --help/--version, USAGE_EXIT after a usage error. */
  exit?: (code: number, err: CommanderError) => never;
  output?: OutputConfiguration;
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

export function buildProgram(o: ProgramOptions = {}): Command {
  const version = packageVersion();
  const exit = o.exit ?? ((code: number) => process.exit(code));
  const program = new Command('kiln')
    .description('kiln renders stateful services declared as kiln.dev custom resources into Kubernetes objects, offline or as a controller.')
    .version(version, '-v, --version')
    .showHelpAfterError('(add --help for usage)')
    // Set before the subcommands are added, so that every one of them inherits it:
    // --help and --version exit 0, every usage error exits 2 (commander's own is 1).
    .exitOverride((err: CommanderError) => exit(err.exitCode === 0 ? 0 : USAGE_EXIT, err));
  if (o.output) program.configureOutput(o.output);
  program
    .command('version')
    .description('print the version')
    .action(() => console.log(version));
  registerSynth(program);
  registerDiff(program);
  registerController(program, version);
  registerAgent(program, version);
  registerGitops(program);
  registerInstall(program, version);
  return program;
}
