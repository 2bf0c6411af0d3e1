/**
 * `kiln synth --git <dir>`: the files `kiln synth` rendered (one per
 * resource), laid out as git mode commits them (gitops/layout.ts) and written
 * into a working tree the way the repository writer does: everything under
 * the base path replaced, nothing outside it touched. The manifests are the
 * same bytes a commit carries; hydrator.metadata, which describes a batch of
 * changes, is not part of a preview.
 */
import { readFileSync } from 'node:fs';
import { relative, sep } from 'node:path';
import { checkLayoutOptions, clusterDir, clusterMarkerPath, refFromManifest, treeFromManifests, type LayoutOptions, type ManifestEntry } from './layout.js';
import { readRegularFile, writeOwnedTree, type TreeChange } from './tree.js';

/** A rendered file holds no object when it is only comments and blank lines (a resource the agent carries out). */
function rendersNothing(content: string): boolean {
  return content.split('\n').every((l) => l.trim() === '' || l.startsWith('#'));
}

export interface PreviewResult extends TreeChange {
  /** Resources laid out (with a directory). */
  resources: number;
  /** Resources that render no objects (no directory). */
  empty: number;
  /** The directory a Flux Kustomization for this cluster would point at (relative to the working tree). */
  path: string;
}

/**
 * Lays out `written` (paths under `synthDir`, as lib/synth.ts reports them:
 * `<namespace>/<kind>/<name>.k8s.yaml`) into `workTree`.
 */
export function writePreview(synthDir: string, written: readonly string[], workTree: string, options: LayoutOptions): PreviewResult {
  const layout = checkLayoutOptions(options);
  const entries: ManifestEntry[] = [];
  let empty = 0;
  for (const file of written) {
    const content = readFileSync(file, 'utf8');
    if (rendersNothing(content)) {
      empty++;
      continue;
    }
    const ref = refFromManifest(content);
    if (!ref) {
      const rel = relative(synthDir, file).split(sep);
      throw new Error(`${rel.join('/')} has no kiln header: not a file kiln synth wrote`);
    }
    entries.push({ ref, content });
  }
  const tree = treeFromManifests(layout, entries);
  // The controller's cluster marker is the repository's, not the preview's: kept as it is.
  const marker = readRegularFile(workTree, clusterMarkerPath(layout));
  if (marker !== undefined) tree.set(clusterMarkerPath(layout), marker);
  const change = writeOwnedTree(workTree, tree, layout.basePath);
  return { ...change, resources: entries.length, empty, path: clusterDir(layout) };
}
