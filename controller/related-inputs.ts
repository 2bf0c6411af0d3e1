/**
 * The render context of a kind that reads other kiln resources of its
 * namespace (kinds/kind.ts `reads`: a CacheCluster, the DataGrids that name
 * it), drawn from the controller's caches as `kiln synth` draws it from the
 * input files. Both sinks render with it.
 */
import { kindDefinition } from '../kinds/registry.js';
import type { KilnResource, RenderContext } from '../kinds/types.js';
import type { Informer } from '../kube/informer.js';

/** `resources`: the controller's caches of kiln's kinds, by Kind. */
export function contextFromCaches(resource: KilnResource, resources: Map<string, Informer>): RenderContext {
  const definition = kindDefinition(resource.kind);
  if (!definition?.inputs || !definition.reads) return {};
  const namespace = resource.metadata.namespace ?? 'default';
  const objects = definition.reads.flatMap((kind) => resources.get(kind)?.list(namespace) ?? []);
  return definition.inputs(resource, objects);
}
