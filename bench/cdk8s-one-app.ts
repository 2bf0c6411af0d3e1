/**
 * The comparison side of bench/render.ts: a conventional cdk8s app. One App
 * holds a chart per resource and `app.synth()` writes them, run by
 * `cdk8s synth --app`. Same charts, no validation (it does less than kiln).
 */
import { App } from 'cdk8s';
import { chartFactory, isKilnResource } from '../kinds/registry.js';
import { contextFromObjects, type PlainObject } from '../lib/context.js';
import { readInputs } from '../lib/inputs.js';

const docs = readInputs(process.argv.slice(2)).map((d) => d.value);
const plain = docs.filter((d) => !isKilnResource(d)) as PlainObject[];
const app = new App();
for (const r of docs) {
  if (!isKilnResource(r)) continue;
  const id = `${r.kind.toLowerCase()}-${r.metadata.namespace ?? 'default'}-${r.metadata.name}`;
  chartFactory(r.apiVersion, r.kind)(app, id, r, contextFromObjects(r, plain));
}
app.synth();
