/**
 * Builds the RenderContext a resource needs from objects at hand: the input
 * files offline. What a kind needs is its own (kinds/registry.ts `inputs`);
 * nobody here reads the cluster.
 */
import { kindDefinition } from '../kinds/registry.js';
import type { KilnResource, RenderContext } from '../kinds/types.js';
import type { PlainObject } from './selector.js';

export { matchesSelector, type LabelSelector, type PlainObject } from './selector.js';

/** The context for `resource`, drawn from plain objects (a kind without inputs gets none). */
export function contextFromObjects(resource: KilnResource, objects: PlainObject[]): RenderContext {
  return kindDefinition(resource.kind)?.inputs?.(resource, objects) ?? {};
}
