/**
 * A DataGrid's configuration: its own settings over its GridTemplate's, field
 * by field, over the defaults. The one place this is decided: the DataGrid's
 * ConfigMap carries it, and the CacheCluster digests it into its members' pod
 * template (so a change to either rolls the members).
 */
import type { GridTemplateSpec } from '../../imports/kiln.dev.js';
import type { FieldError } from '../../validate/errors.js';
import { isPrime } from '../../validate/predicates.js';

/** The settings a DataGrid and a GridTemplate share (crds/schema/kinds.ts gridSettings). */
export type GridSettings = GridTemplateSpec;

export const GRID_SETTINGS = ['gridType', 'partitions', 'syncReplicas', 'asyncReplicas', 'capacity', 'timeToLiveSeconds', 'lockTimeoutSeconds', 'transactionTimeoutSeconds'] as const;

/** `own`'s settings where it has them, else `template`'s: absent means not set (the schema defaults none of them). */
export function resolveSettings(own: GridSettings, template: GridSettings | undefined): GridSettings {
  const out: Record<string, unknown> = {};
  for (const k of GRID_SETTINGS) {
    const v = own[k] ?? template?.[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** grid.json as the members read it: every setting, defaults filled in, keys sorted. */
export function gridConfiguration(name: string, s: GridSettings): Record<string, unknown> {
  return {
    asyncReplicas: s.asyncReplicas ?? 1,
    capacity: s.capacity ?? null,
    // The members' file keeps its lower-case spelling (what their entrypoints compare against);
    // only the API's spelling follows the Kubernetes conventions (Simple, Session, Dynamic).
    gridType: (s.gridType ?? 'Simple').toLowerCase(),
    lockTimeoutSeconds: s.lockTimeoutSeconds ?? 15,
    name,
    partitions: s.partitions ?? 13,
    syncReplicas: s.syncReplicas ?? 0,
    timeToLiveSeconds: s.timeToLiveSeconds ?? 0,
    transactionTimeoutSeconds: s.transactionTimeoutSeconds ?? 30,
  };
}

export const gridJson = (name: string, s: GridSettings): string => `${JSON.stringify(gridConfiguration(name, s), null, 2)}\n`;

/**
 * What CEL cannot say about a set of settings: on one resource (kiln's checks of DataGrid and
 * GridTemplate), and on a DataGrid's settings resolved with its template's, which no single
 * object's rule sees (a template's syncReplicas 5 and a grid's asyncReplicas 5).
 */
export function checkGridSettings(s: Readonly<Record<string, unknown>> | GridSettings, out: FieldError[], resolved = false): void {
  const v = s as Readonly<Record<string, unknown>>;
  const partitions = v['partitions'];
  if (typeof partitions === 'number' && !isPrime(partitions)) {
    out.push({ path: 'spec.partitions', message: `Invalid value: ${partitions}: must be a prime number (keys spread evenly only over a prime count)` });
  }
  if (!resolved) return;
  const sync = typeof v['syncReplicas'] === 'number' ? v['syncReplicas'] : 0;
  const async = typeof v['asyncReplicas'] === 'number' ? v['asyncReplicas'] : 1;
  if (sync + async > 9) {
    out.push({
      path: 'spec.syncReplicas',
      message: `Invalid value: ${sync} + ${async}: syncReplicas + asyncReplicas must be at most 9 with the template's settings and the defaults applied`,
    });
  }
}
