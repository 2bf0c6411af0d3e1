/** Writes crds/*.yaml from crds/schema (npm run crds). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allCrds } from '../crds/schema/generate.js';
import { crdYaml } from '../lib/yaml.js';

const dir = new URL('../crds/', import.meta.url).pathname;
for (const { file, crd } of allCrds()) {
  writeFileSync(join(dir, file), crdYaml(crd));
  console.log(`crds/${file}`);
}
