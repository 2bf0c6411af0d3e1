/** One input document -> its YAML, a note on why it renders nothing offline, or the reasons it cannot be rendered. Pure. */
import { kindDefinition } from '../kinds/registry.js';
import { render, RenderError } from '../kinds/render.js';
import type { KilnResource, RenderContext } from '../kinds/types.js';
import { validate, type FieldError } from '../validate/index.js';
import { header } from './document-header.js';
import { toYamlStream } from './yaml.js';

export { header };
import { join } from 'node:path';

export type Outcome =
  | { resource: KilnResource; yaml: string; path: (outDir: string) => string }
  /** A valid resource that has nothing to render offline (nothing is written for it; not an error). */
  | { resource: KilnResource; note: string }
  | { errors: FieldError[] };

/** `<outDir>/<namespace>/<kind>/<name>.k8s.yaml` */
export function outputPath(outDir: string, r: KilnResource): string {
  return join(outDir, r.metadata.namespace ?? 'default', r.kind.toLowerCase(), `${r.metadata.name}.k8s.yaml`);
}

export function renderDocument(doc: unknown, context: RenderContext): Outcome {
  const v = validate(doc);
  if (!v.ok) return { errors: v.errors };
  const resource = v.resource;
  if (!resource.metadata.namespace) resource.metadata = { ...resource.metadata, namespace: 'default' };
  const id = { apiVersion: resource.apiVersion, kind: resource.kind, metadata: { name: resource.metadata.name, namespace: resource.metadata.namespace } } as KilnResource;
  const note = kindDefinition(resource.kind)?.offlineNote?.(resource, context);
  if (note) return { resource: id, note };
  try {
    const objects = render(resource, context);
    const body = objects.length > 0 ? toYamlStream(objects) : `# ${resource.kind} renders no objects: the kiln agent carries it out.\n`;
    return { resource: id, yaml: header(resource) + body, path: (outDir: string) => outputPath(outDir, id) };
  } catch (err) {
    const message = err instanceof RenderError ? err.message.replace(/^[^:]+: /, '') : String(err);
    const path = /^(spec\.[A-Za-z.]+):/.exec(message)?.[1] ?? 'spec';
    return { errors: [{ path, message: message.replace(/^spec\.[A-Za-z.]+: /, '') }] };
  }
}
