/** Reads the YAML/JSON documents of files and directories, remembering where each came from. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { parseYamlStream } from './yaml.js';

export interface InputDocument {
  file: string;
  /** Position of the document in its file, from 0. */
  index: number;
  value: unknown;
  error?: string;
}

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

function listFiles(path: string): string[] {
  const st = statSync(path);
  if (st.isFile()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((d) => !d.name.startsWith('.'))
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((d) => (d.isDirectory() ? listFiles(join(path, d.name)) : EXTENSIONS.has(extname(d.name)) ? [join(path, d.name)] : []));
}

export function readInputs(paths: string[]): InputDocument[] {
  return paths.flatMap(listFiles).flatMap((file) =>
    parseYamlStream(readFileSync(file, 'utf8')).map((d) => ({ file, index: d.index, value: d.value, error: d.error })),
  );
}
