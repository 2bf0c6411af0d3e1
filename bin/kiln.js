#!/usr/bin/env node
// Runs the compiled CLI (npm run build) when present, else the TypeScript sources through tsx.
import { existsSync } from 'node:fs';

const compiled = new URL('../build/cli/kiln.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../cli/kiln.ts', import.meta.url).href);
}
