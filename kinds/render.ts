/**
 * The one render function: synth, apply mode, git mode and the tests all call
 * it. A fresh cdk8s App per resource keeps the cost linear in the number of
 * resources (one App holding many charts re-resolves all of them on every
 * toJson) and makes each resource's output independent of the others.
 */
import { App } from 'cdk8s';
import { MissingInput } from './missing-input.js';
import { chartFactory } from './registry.js';
import { chartObjects } from './serialize.js';
import { compareObjects } from './object-order.js';
import type { K8sObject, KilnResource, RenderContext } from './types.js';

export { compareObjects };

export class RenderError extends Error {
  constructor(
    readonly resource: string,
    message: string,
  ) {
    super(`${resource}: ${message}`);
    this.name = 'RenderError';
  }
}

/** A chart rendered a Secret with data: refused, whichever sink asked (git mode reports SecretInRender). */
export class SecretInRenderError extends RenderError {
  constructor(resource: string, secret: string) {
    super(resource, `rendered Secret ${secret} carries data; kiln never renders secret values`);
    this.name = 'SecretInRenderError';
  }
}

/** A render input the resource names is missing (kinds/missing-input.ts): the sinks report Reconciling, reason Waiting, and render again when it comes. */
export class MissingInputError extends RenderError {
  constructor(
    resource: string,
    /** The message without the resource's name: the field and what is missing. */
    readonly detail: string,
  ) {
    super(resource, detail);
    this.name = 'MissingInputError';
  }
}

/** Secrets are referenced and generated in the cluster, never rendered with data. */
function assertNoSecretData(objects: K8sObject[], who: string): void {
  for (const o of objects) {
    if (o.kind === 'Secret' && (o['data'] !== undefined || o['stringData'] !== undefined)) {
      throw new SecretInRenderError(who, o.metadata.name);
    }
  }
}

export function resourceKey(r: KilnResource): string {
  return `${r.kind}/${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
}

export function render(resource: KilnResource, context: RenderContext = {}): K8sObject[] {
  const who = resourceKey(resource);
  const normalized: KilnResource = resource.metadata.namespace ? resource : { ...resource, metadata: { ...resource.metadata, namespace: 'default' } };
  const factory = chartFactory(resource.apiVersion, resource.kind);
  let objects: K8sObject[];
  try {
    const app = new App();
    objects = chartObjects(factory(app, resource.kind.toLowerCase(), normalized, context));
  } catch (err) {
    if (err instanceof RenderError) throw err;
    if (err instanceof MissingInput) throw new MissingInputError(who, err.message);
    throw new RenderError(who, err instanceof Error ? err.message : String(err));
  }
  assertNoSecretData(objects, who);
  return objects.sort(compareObjects);
}
