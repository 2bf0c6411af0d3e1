/** The kiln command line: synth offline; controller, agent and gitops as they land. */
import { fileSystemError } from './errors.js';
import { buildProgram, USAGE_EXIT } from './program.js';

const program = buildProgram();
try {
  await program.parseAsync(process.argv);
} catch (err) {
  // A file that cannot be read or written: one line naming it, not a stack trace.
  const line = fileSystemError(err);
  if (!line) throw err;
  const command = program.args[0];
  process.stderr.write(`kiln${command && program.commands.some((c) => c.name() === command) ? ` ${command}` : ''}: ${line}\n`);
  process.exit(USAGE_EXIT);
}
