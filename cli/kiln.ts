/** The kiln command line: synth offline; controller, agent and gitops as they land. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { projectRoot } from '../lib/paths.js';
import { registerAgent } from './agent-command.js';
import { registerController } from './controller-command.js';
import { registerDiff } from './diff-command.js';
import { registerGitops } from './gitops-command.js';
import { registerInstall } from './install-command.js';
import { registerSynth } from './synth-command.js';

const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string };

const program = new Command('kiln')
  .description('kiln renders stateful services declared as kiln.dev custom resources into Kubernetes objects, offline or as a controller.')
  .version(pkg.version, '-v, --version');
program.command('version').description('print the version').action(() => console.log(pkg.version));
registerSynth(program);
registerDiff(program);
registerController(program, pkg.version);
registerAgent(program, pkg.version);
registerGitops(program);
registerInstall(program, pkg.version);

await program.parseAsync(process.argv);
