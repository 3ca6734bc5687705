// The image installs only `dependencies` (deploy/Dockerfile runs `npm prune --omit=dev`):
// every package that src/ imports at run time must be one, or the daemon dies at import
// inside the image while every test here (which has the devDependencies) passes.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Package names of the value imports (not `import type`) of one TypeScript file. */
function runtimeImports(text: string): string[] {
  const names: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) names.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) names.push(m[1]!);
  return names
    .filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s))
    .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
}

test('every package src/ imports at run time is a dependency, not a devDependency', (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const wrong = new Set<string>();
  for (const file of sources(join(ROOT, 'src'))) {
    for (const name of runtimeImports(readFileSync(file, 'utf8'))) if (!(name in pkg.dependencies)) wrong.add(`${name} (${file.slice(ROOT.length)})`);
  }
  t.deepEqual([...wrong], [], 'move these to dependencies: the image prunes devDependencies');
});

test('the import scan sees value imports and skips type-only ones', (t) => {
  const text = "import type { A } from 'kubernetes-models/v1/Pod';\nimport { B } from '@kubernetes-models/istio/x';\nimport koffi from 'koffi';\nconst k = () => import('yaml');\nimport { x } from './local.js';";
  t.deepEqual(runtimeImports(text), ['@kubernetes-models/istio', 'koffi', 'yaml']);
});
