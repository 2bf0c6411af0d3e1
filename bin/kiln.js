#!/usr/bin/env node
// From a checkout, run the TypeScript sources through tsx; in a production
// install (no dev dependencies) run the compiled build/ (npm run build).
import { existsSync } from 'node:fs';
import module from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

// V8's compiled code for kiln's modules (cdk8s-plus alone is megabytes of
// JavaScript), kept between runs: measured on `kiln synth` of 1,000 resources,
// loading the command line and the renderer took 18% less CPU (760 -> 620 ms,
// median of 8 on the 2-core dev box).
// Per user, not Node's default under the shared temporary directory, where
// another user could leave entries. NODE_COMPILE_CACHE, when set, wins;
// NODE_DISABLE_COMPILE_CACHE=1 turns it off; a directory that cannot be
// written leaves it off (the status is not an error).
module.enableCompileCache?.(process.env.NODE_COMPILE_CACHE ?? join(process.env.KILN_CACHE ?? join(homedir(), '.cache', 'kiln'), 'node-compile-cache'));

const source = new URL('../cli/kiln.ts', import.meta.url);
let tsx;
if (existsSync(source) && !process.env.KILN_USE_BUILD) {
  tsx = await import('tsx/esm/api').catch(() => undefined);
}
if (tsx) {
  tsx.register();
  await import(source.href);
} else {
  await import(new URL('../build/cli/kiln.js', import.meta.url).href);
}
