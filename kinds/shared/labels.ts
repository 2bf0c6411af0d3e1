import type { KilnResource } from '../types.js';

export const MANAGED_BY = 'kiln';
/** The labels that select a resource's pods (selectorLabels). */
export const APP_LABEL = 'app.kubernetes.io/name';
export const INSTANCE_LABEL = 'app.kubernetes.io/instance';
export const OWNER_KIND_LABEL = 'kiln.dev/owner-kind';
export const OWNER_NAME_LABEL = 'kiln.dev/owner-name';
export const OWNER_NAMESPACE_LABEL = 'kiln.dev/owner-namespace';

/**
 * Labels that select a resource's pods. They end up in immutable StatefulSet
 * selectors, so they may only depend on what cannot change: the app and the
 * resource's name.
 */
export function selectorLabels(app: string, resource: KilnResource): Record<string, string> {
  return {
    [APP_LABEL]: app,
    [INSTANCE_LABEL]: resource.metadata.name,
  };
}

/** The recommended labels, on every rendered object. */
export function standardLabels(app: string, component: string, resource: KilnResource): Record<string, string> {
  return {
    ...selectorLabels(app, resource),
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': 'kiln',
    'app.kubernetes.io/managed-by': MANAGED_BY,
  };
}

/** Labels that tie an object to the kiln resource that rendered it, across namespaces. */
export function ownerLabels(resource: KilnResource): Record<string, string> {
  return {
    [OWNER_KIND_LABEL]: resource.kind,
    [OWNER_NAME_LABEL]: resource.metadata.name,
    [OWNER_NAMESPACE_LABEL]: resource.metadata.namespace ?? 'default',
  };
}

/** `a=b,c=d`, the form `kubectl -l` and status.selector use. */
export function selectorString(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}
