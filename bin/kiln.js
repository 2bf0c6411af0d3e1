#!/usr/bin/env node
// From a checkout, run the TypeScript sources through tsx; in a production
// install (no dev dependencies) run the compiled build/ (npm run build).
import { existsSync } from 'node:fs';

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
