/** The first line of every rendered file: where it came from, and that it is generated. */
import type { KilnResource } from '../kinds/types.js';

export function header(r: KilnResource): string {
  return `# Rendered by kiln from ${r.kind} ${r.metadata.namespace ?? 'default'}/${r.metadata.name}; do not edit.\n`;
}
