/**
 * Turns a chart's ApiObjects into JSON, producing what `chart.toJson()` does
 * at a fraction of the cost.
 *
 * cdk8s's own serializer walks every value through its resolver chain
 * (looking the App up from each value, allocating a context per node) so that
 * Lazy values and tokens can be resolved. kiln's charts never use those: their
 * props are plain data plus Quantity/IntOrString wrappers. This does the same
 * three steps without the chain: unwrap the wrappers, sanitize (drop empty
 * values, sort keys), then the L1 class's own typed conversion (its static
 * `manifest`). A unit test holds it byte-equal to `chart.toJson()` for every
 * example and for generated resources; objects with JSON patches, or values of
 * any other class, go through cdk8s's serializer.
 */
import { ApiObject, type Chart } from 'cdk8s';
import type { K8sObject } from './types.js';

class NeedsCdk8s extends Error {}

/**
 * cdk8s's resolve + sanitizeValue in one walk: Quantity / IntOrString wrappers
 * (a class instance whose only content is `value`) become `{ value }`,
 * undefined and null are dropped, keys are sorted, and with `dropEmpty` empty
 * arrays and objects go too. Any other class needs cdk8s's resolvers.
 */
function clean(value: unknown, dropEmpty: boolean): unknown {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    if (dropEmpty && value.length === 0) return undefined;
    return value.map((v) => clean(v, dropEmpty));
  }
  if (value.constructor !== Object) {
    const inner = (value as { value?: unknown }).value;
    if (typeof inner === 'number' || typeof inner === 'string') return { value: inner };
    throw new NeedsCdk8s();
  }
  const out: Record<string, unknown> = {};
  let empty = true;
  for (const k of Object.keys(value).sort()) {
    const v = clean((value as Record<string, unknown>)[k], dropEmpty);
    if (v !== undefined) {
      out[k] = v;
      empty = false;
    }
  }
  return dropEmpty && empty ? undefined : out;
}

function metadataOf(o: ApiObject): Record<string, unknown> {
  const m = o.metadata as unknown as {
    _additionalAttributes: Record<string, unknown>;
    name?: string;
    namespace?: string;
    annotations: unknown;
    finalizers: unknown;
    ownerReferences: unknown;
    labels: unknown;
  };
  const raw = { ...m._additionalAttributes, name: m.name, namespace: m.namespace, annotations: m.annotations, finalizers: m.finalizers, ownerReferences: m.ownerReferences, labels: m.labels };
  return (clean(raw, true) as Record<string, unknown>) ?? {};
}

function serialize(o: ApiObject): K8sObject {
  const patches = (o as unknown as { patches: unknown[] }).patches;
  if (patches.length > 0) return o.toJson() as K8sObject;
  let json: Record<string, unknown>;
  try {
    const props = (o as unknown as { props: Record<string, unknown> }).props;
    json = clean({ ...props, metadata: metadataOf(o) }, false) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof NeedsCdk8s) return o.toJson() as K8sObject;
    throw err;
  }
  const ctor = o.constructor as { manifest?: (props: unknown) => K8sObject };
  if (ctor !== ApiObject && typeof ctor.manifest === 'function') return ctor.manifest(json);
  const { apiVersion, kind, metadata, ...rest } = json;
  return { apiVersion, kind, metadata, ...rest } as K8sObject;
}

/** Every ApiObject of the chart, serialized (in construct order; callers sort). */
export function chartObjects(chart: Chart): K8sObject[] {
  return chart.node
    .findAll()
    .filter((c): c is ApiObject => ApiObject.isApiObject(c))
    .map(serialize);
}
