/** One input document -> its YAML, or the reasons it cannot be rendered. Pure. */
import { render, RenderError } from '../charts/render.js';
import type { KilnResource, RenderContext } from '../charts/types.js';
import { validate, type FieldError } from '../validate/index.js';
import { toYamlStream } from './yaml.js';
import { join } from 'node:path';

export type Outcome = { resource: KilnResource; yaml: string; path: (outDir: string) => string } | { errors: FieldError[] };

/** `<outDir>/<namespace>/<kind>/<name>.k8s.yaml` */
export function outputPath(outDir: string, r: KilnResource): string {
  return join(outDir, r.metadata.namespace ?? 'default', r.kind.toLowerCase(), `${r.metadata.name}.k8s.yaml`);
}

export function header(r: KilnResource): string {
  return `# Rendered by kiln from ${r.kind} ${r.metadata.namespace ?? 'default'}/${r.metadata.name}; do not edit.\n`;
}

export function renderDocument(doc: unknown, context: RenderContext): Outcome {
  const v = validate(doc);
  if (!v.ok) return { errors: v.errors };
  const resource = v.resource;
  if (!resource.metadata.namespace) resource.metadata = { ...resource.metadata, namespace: 'default' };
  try {
    const objects = render(resource, context);
    const body = objects.length > 0 ? toYamlStream(objects) : `# ${resource.kind} renders no objects: the kiln agent carries it out.\n`;
    const id = { apiVersion: resource.apiVersion, kind: resource.kind, metadata: { name: resource.metadata.name, namespace: resource.metadata.namespace } } as KilnResource;
    return { resource: id, yaml: header(resource) + body, path: (outDir: string) => outputPath(outDir, id) };
  } catch (err) {
    const message = err instanceof RenderError ? err.message.replace(/^[^:]+: /, '') : String(err);
    const path = /^(spec\.[A-Za-z.]+):/.exec(message)?.[1] ?? 'spec';
    return { errors: [{ path, message: message.replace(/^spec\.[A-Za-z.]+: /, '') }] };
  }
}
