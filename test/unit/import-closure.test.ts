/**
 * The layout's promises, checked on the import graph (static imports and
 * dynamic `import()` alike): kube/ is a Kubernetes runtime that knows nothing
 * of kiln, and the agent never loads the renderer.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const rel = (abs: string) => path.relative(ROOT, abs).split(path.sep).join('/');

/**
 * What loading `file` loads: its static imports (not `import type`, which
 * vanish at compile time) and, with `dynamic`, its `import()` calls too.
 * Repo files as repo-relative paths, packages by name.
 */
function importsOf(file: string, dynamic: boolean): string[] {
  const source = ts.createSourceFile(file, readFileSync(path.join(ROOT, file), 'utf8'), ts.ScriptTarget.Latest, false);
  const specs: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly) {
      const named = node.importClause?.namedBindings;
      const onlyTypes = !node.importClause?.name && named && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      if (!onlyTypes) specs.push((node.moduleSpecifier as ts.StringLiteral).text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && !node.isTypeOnly) {
      specs.push((node.moduleSpecifier as ts.StringLiteral).text);
    } else if (dynamic && ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && ts.isStringLiteral(node.arguments[0]!)) {
      specs.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specs.map((spec) => {
    if (!spec.startsWith('.'))
      return spec.startsWith('node:')
        ? spec
        : spec
            .split('/')
            .slice(0, spec.startsWith('@') ? 2 : 1)
            .join('/');
    const abs = path.resolve(path.dirname(path.join(ROOT, file)), spec);
    const asTs = abs.replace(/\.js$/, '.ts');
    return rel(existsSync(asTs) ? asTs : abs);
  });
}

/** Breadth-first closure from `roots`, with the chain that reached each module (for the failure message). */
function closure(roots: string[], dynamic: boolean): Map<string, string[]> {
  const via = new Map<string, string[]>(roots.map((r) => [r, [r]]));
  const todo = [...roots];
  while (todo.length) {
    const f = todo.shift()!;
    if (!f.endsWith('.ts')) continue;
    for (const dep of importsOf(f, dynamic)) {
      if (via.has(dep)) continue;
      via.set(dep, [...via.get(f)!, dep]);
      todo.push(dep);
    }
  }
  return via;
}

const tsFiles = (dir: string): string[] =>
  readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts'))
    .map((d) => rel(path.join(d.parentPath, d.name)));

const isRepoFile = (m: string) => m.endsWith('.ts') || m.endsWith('.js');

describe('import closure', () => {
  it('kube/ reaches nothing of kiln (only kube/ itself, and lib/log and lib/metrics)', () => {
    const roots = tsFiles('kube');
    expect(roots.length).toBeGreaterThan(10);
    const allowed = (m: string) => m.startsWith('kube/') || m === 'lib/log.ts' || m === 'lib/metrics.ts';
    const outside = [...closure(roots, true)].filter(([m]) => isRepoFile(m) && !allowed(m)).map(([, chain]) => chain.join(' -> '));
    expect(outside).toEqual([]);
  });

  it('the agent never loads the renderer, the schema validator or CEL', () => {
    // `kiln agent` loads cli/kiln.ts and, statically, every command module (to parse the command
    // line: each loads its work lazily), then what the agent command's action imports.
    const action = closure(['cli/agent-command.ts'], true);
    const reached = new Map([
      ...closure(['cli/kiln.ts'], false),
      ...closure(['agent/agent.ts', ...[...action.keys()].filter((m) => m.startsWith('agent/') || m.startsWith('kube/') || m.startsWith('lib/'))], true),
    ]);
    const heavy = (m: string) =>
      /^kinds\/(registry|render|serialize)\.ts$/.test(m) ||
      /^kinds\/[^/]+\/chart\.ts$/.test(m) ||
      m.startsWith('kinds/shared/') ||
      m.startsWith('validate/') ||
      m.startsWith('imports/') ||
      ['cdk8s', 'cdk8s-plus-28', 'constructs', 'ajv', 'ajv-formats', '@bufbuild/cel', 'cel-js'].includes(m);
    const loaded = [...reached].filter(([m]) => heavy(m)).map(([, chain]) => chain.join(' -> '));
    expect(loaded).toEqual([]);
    expect(reached.has('kube/client.ts')).toBe(true);
    expect(reached.has('agent/postgres.ts')).toBe(true);
  });
});
