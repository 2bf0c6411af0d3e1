/**
 * Git mode's repository layout, as pure functions (no file system, no Git).
 *
 *   <basePath>/kustomization.yaml                      resources: [<cluster>]
 *   <basePath>/hydrator.metadata                       the last batch (gitops/batcher.ts)
 *   <basePath>/<cluster>/kustomization.yaml            resources: [<namespace>, ...]
 *   <basePath>/<cluster>/.kiln-cluster                 the cluster's identity (kube-system's UID): git mode refuses a directory marked for another cluster
 *   <basePath>/<cluster>/<ns>/kustomization.yaml       resources: [<kind>, ...]
 *   <basePath>/<cluster>/<ns>/<kind>/kustomization.yaml        resources: [<name>, ...]
 *   <basePath>/<cluster>/<ns>/<kind>/<name>/kustomization.yaml resources: [manifest.yaml]
 *   <basePath>/<cluster>/<ns>/<kind>/<name>/manifest.yaml      the resource's objects, sorted
 *
 * A kustomization.yaml at every level lets a Flux Kustomization or an Argo CD
 * Application point at any directory. `<kind>` is the kind in lower case, as
 * in `kiln synth`'s output. A resource that renders no objects (a
 * PostgresDatabase: the agent carries it out) has no directory. A rendered
 * Secret carrying `data` or `stringData` is refused: secret values never go to
 * Git. The manifest text is exactly what `kiln synth` writes for the resource,
 * so a preview (`kiln synth --git`) and a commit are byte-identical.
 */
import { posix } from 'node:path';
import { compareObjects } from '../kinds/object-order.js';
import type { K8sObject, KilnResource } from '../kinds/types.js';
import { header } from '../lib/document-header.js';
import { toYaml, toYamlStream } from '../lib/yaml.js';

export const MANIFEST_FILE = 'manifest.yaml';
export const KUSTOMIZATION_FILE = 'kustomization.yaml';
export const METADATA_FILE = 'hydrator.metadata';
export const CLUSTER_MARKER_FILE = '.kiln-cluster';

export interface LayoutOptions {
  /** Directory in the repository that kiln owns, e.g. `clusters` (relative, `/`-separated). */
  basePath: string;
  /** Name of the cluster the resources belong to; one directory under the base path. */
  cluster: string;
}

export const DEFAULT_LAYOUT: LayoutOptions = { basePath: 'clusters', cluster: 'default' };

/** A kiln resource, identified the way the layout and commit messages name it. */
export interface ResourceRef {
  kind: string;
  namespace: string;
  name: string;
}

/** A resource and what it rendered to (kinds/render.ts's output). */
export interface RenderedResource extends ResourceRef {
  /** metadata.generation of the custom resource, named in commit messages. */
  generation?: number;
  objects: readonly K8sObject[];
}

/** `Kind/namespace/name`: the key kiln uses for a resource everywhere. */
export function refKey(r: ResourceRef): string {
  return `${r.kind}/${r.namespace}/${r.name}`;
}

/** The layout's identity of a resource: its directory, which does not see the kind's case. */
export function dirKey(r: ResourceRef): string {
  return `${r.kind.toLowerCase()}/${r.namespace}/${r.name}`;
}

/** Directory and file names kiln creates: DNS-1123 names (what Kubernetes allows for namespaces and kiln's resources). */
const SEGMENT = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const KIND = /^[A-Za-z][A-Za-z0-9]*$/;

/** `clusters`, `deploy/clusters`: relative, no `.`/`..`, no empty segment, no `.git`. */
export function normalizeBasePath(basePath: string): string {
  const trimmed = basePath
    .replace(/\\/g, '/')
    .replace(/^\.\/+/, '')
    .replace(/\/+$/, '');
  const segments = trimmed.split('/');
  if (trimmed === '' || trimmed.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..' || s.toLowerCase() === '.git')) {
    throw new Error(`base path must be a relative directory inside the repository (got ${JSON.stringify(basePath)})`);
  }
  return segments.join('/');
}

export function checkLayoutOptions(options: LayoutOptions): LayoutOptions {
  const basePath = normalizeBasePath(options.basePath);
  if (!SEGMENT.test(options.cluster)) throw new Error(`cluster name must be a DNS-1123 label or subdomain (got ${JSON.stringify(options.cluster)})`);
  return { basePath, cluster: options.cluster };
}

/** Why a resource's identity cannot be a directory, if it cannot. */
function refProblem(r: ResourceRef): string | undefined {
  if (!KIND.test(r.kind)) return `kind ${JSON.stringify(r.kind)} cannot be a directory name`;
  if (!SEGMENT.test(r.namespace)) return `namespace ${JSON.stringify(r.namespace)} cannot be a directory name`;
  if (!SEGMENT.test(r.name)) return `name ${JSON.stringify(r.name)} cannot be a directory name`;
  return undefined;
}

/** `<basePath>/<cluster>`: the directory a cluster's Flux Kustomization points at. */
export function clusterDir(options: LayoutOptions): string {
  return posix.join(options.basePath, options.cluster);
}

/** `<basePath>/<cluster>/<namespace>/<kind>/<name>` */
export function resourceDir(options: LayoutOptions, r: ResourceRef): string {
  return posix.join(options.basePath, options.cluster, r.namespace, r.kind.toLowerCase(), r.name);
}

export function manifestPath(options: LayoutOptions, r: ResourceRef): string {
  return posix.join(resourceDir(options, r), MANIFEST_FILE);
}

export function clusterMarkerPath(options: LayoutOptions): string {
  return posix.join(options.basePath, options.cluster, CLUSTER_MARKER_FILE);
}

export function metadataPath(options: LayoutOptions): string {
  return posix.join(options.basePath, METADATA_FILE);
}

/** The inverse of manifestPath: which resource a path under the cluster's directory belongs to (kind in lower case). */
export function parseManifestPath(options: LayoutOptions, path: string): ResourceRef | undefined {
  const prefix = `${clusterDir(options)}/`;
  if (!path.startsWith(prefix)) return undefined;
  const parts = path.slice(prefix.length).split('/');
  if (parts.length !== 4 || parts[3] !== MANIFEST_FILE) return undefined;
  const [namespace, kind, name] = parts as [string, string, string];
  return refProblem({ kind, namespace, name }) ? undefined : { kind, namespace, name };
}

const HEADER = /^# Rendered by kiln from ([A-Za-z][A-Za-z0-9]*) ([^/\s]+)\/([^;\s]+);/;

/** The resource a manifest's header names (the kind with its case), if it has kiln's header. */
export function refFromManifest(content: string): ResourceRef | undefined {
  const m = HEADER.exec(content);
  return m ? { kind: m[1]!, namespace: m[2]!, name: m[3]! } : undefined;
}

/** Why these objects must not be committed, if they must not: Secrets carrying values. */
export function secretProblem(objects: readonly K8sObject[]): string | undefined {
  const carrying = objects.filter((o) => o.kind === 'Secret' && (o['data'] !== undefined || o['stringData'] !== undefined));
  if (carrying.length === 0) return undefined;
  const names = carrying.map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`.replace(/^\//, '')).join(', ');
  return `rendered Secret ${names} carries data or stringData; kiln never commits secret values (Secrets are created in the cluster)`;
}

export type ManifestOutcome =
  | { ok: true; empty: false; content: string }
  /** Renders no objects: no directory. */
  | { ok: true; empty: true }
  | { ok: false; reason: string; refusal: Refusal };

/**
 * Why a resource's change was not written, for callers that act on it (the
 * git reconciler's Stalled reason) without reading the message: a Secret
 * carrying values, or anything else that cannot be committed (a name that
 * cannot be a path, objects that cannot be written as YAML).
 */
export type Refusal = 'SecretInRender' | 'NotCommittable';

/** The manifest.yaml of one resource: kiln's header, then its objects sorted, as one multi-document stream. */
export function renderManifest(r: RenderedResource): ManifestOutcome {
  const badRef = refProblem(r);
  if (badRef) return { ok: false, reason: badRef, refusal: 'NotCommittable' };
  const secret = secretProblem(r.objects);
  if (secret) return { ok: false, reason: secret, refusal: 'SecretInRender' };
  if (r.objects.length === 0) return { ok: true, empty: true };
  const id = { apiVersion: '', kind: r.kind, metadata: { name: r.name, namespace: r.namespace }, spec: {} } as KilnResource;
  return { ok: true, empty: false, content: header(id) + toYamlStream([...r.objects].sort(compareObjects)) };
}

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function kustomizationYaml(resources: readonly string[]): string {
  return `# Generated by kiln; do not edit.\n${toYaml({
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [...resources].sort(byCodeUnit),
  })}`;
}

/**
 * kustomization.yaml files for a set of manifest paths: one in every directory
 * from the base path down to each resource's directory, listing its children.
 * The base path and the cluster's directory always get one (possibly listing
 * nothing), so a consumer pointed at them keeps working when no resource is left.
 */
export function kustomizations(options: LayoutOptions, manifestPaths: Iterable<string>): Map<string, string> {
  const children = new Map<string, Set<string>>();
  const add = (dir: string, child: string): void => {
    let set = children.get(dir);
    if (!set) children.set(dir, (set = new Set()));
    set.add(child);
  };
  const base = options.basePath;
  add(base, options.cluster);
  children.set(clusterDir(options), children.get(clusterDir(options)) ?? new Set());
  for (const path of manifestPaths) {
    let dir = posix.dirname(path);
    let child = posix.basename(path);
    while (dir.length >= base.length) {
      add(dir, child);
      if (dir === base) break;
      child = posix.basename(dir);
      dir = posix.dirname(dir);
    }
  }
  const files = new Map<string, string>();
  for (const [dir, set] of children) files.set(posix.join(dir, KUSTOMIZATION_FILE), kustomizationYaml([...set]));
  return files;
}

export interface ManifestEntry {
  ref: ResourceRef;
  content: string;
}

/** The whole tree (path -> content, sorted by path) for resources whose manifests are already rendered. */
export function treeFromManifests(options: LayoutOptions, entries: Iterable<ManifestEntry>): Map<string, string> {
  const manifests = new Map<string, string>();
  for (const e of entries) manifests.set(manifestPath(options, e.ref), e.content);
  const all = new Map([...manifests, ...kustomizations(options, manifests.keys())]);
  return new Map([...all].sort(([a], [b]) => byCodeUnit(a, b)));
}

export interface LayoutError {
  resource: ResourceRef;
  reason: string;
}

export interface Layout {
  /** Repository-relative path -> file content, sorted by path. */
  files: Map<string, string>;
  /** Resources that have a directory. */
  placed: ResourceRef[];
  /** Resources that render no objects, so have no directory. */
  empty: ResourceRef[];
  /** Resources refused (a Secret with data, a name that cannot be a path, the same directory twice): not in `files`. */
  errors: LayoutError[];
}

/** The tree for a set of rendered resources under `<basePath>/<cluster>`. */
export function layoutTree(resources: Iterable<RenderedResource>, options: LayoutOptions = DEFAULT_LAYOUT): Layout {
  const opts = checkLayoutOptions(options);
  const entries = new Map<string, ManifestEntry>();
  const placed: ResourceRef[] = [];
  const empty: ResourceRef[] = [];
  const errors: LayoutError[] = [];
  for (const r of resources) {
    const ref: ResourceRef = { kind: r.kind, namespace: r.namespace, name: r.name };
    const outcome = renderManifest(r);
    if (!outcome.ok) {
      errors.push({ resource: ref, reason: outcome.reason });
      continue;
    }
    if (outcome.empty) {
      empty.push(ref);
      continue;
    }
    const key = dirKey(ref);
    if (entries.has(key)) {
      errors.push({ resource: ref, reason: `${refKey(ref)} has the same directory as ${refKey(entries.get(key)!.ref)}` });
      continue;
    }
    entries.set(key, { ref, content: outcome.content });
    placed.push(ref);
  }
  return { files: treeFromManifests(opts, entries.values()), placed, empty, errors };
}
