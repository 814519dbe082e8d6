/**
 * The parts of src/ and their public entry points, for the lint rule `deqo/entry-points` (eslint.config.mjs).
 * Which part may import which, and which packages each may use, is checked by test/unit/boundaries.test.ts.
 *
 * A part is imported from outside only through its entry point(s): `index.ts`, and for the client also
 * `browser.ts` (the browser-safe half the dashboard bundles; index.ts adds the Node-only file transfers).
 */
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SRC = resolve(ROOT, 'src');

/** Entry points per part (file names inside src/<part>/); every part has index.ts. */
export const ENTRY_POINTS = { client: ['index.ts', 'browser.ts'] };

/** The part a file belongs to ('web' for the dashboard, 'test' for tests), or null outside src/, web/ and test/. */
export function partOf(file) {
  const rel = relative(ROOT, file).split(sep);
  if (rel[0] === 'src' && rel.length > 2) return rel[1];
  if (rel[0] === 'web') return 'web';
  if (rel[0] === 'test') return 'test';
  return null;
}

/** For an import of `spec` from `file`: null when allowed, else a message saying what to import instead. */
export function entryPointViolation(file, spec) {
  if (!spec.startsWith('.')) return null;
  const target = resolve(dirname(file), spec);
  const rel = relative(SRC, target).split(sep);
  if (rel[0] === '..' || rel.length < 2) return null;
  const targetPart = rel[0];
  if (partOf(file) === targetPart) return null;
  const name = rel.slice(1).join('/').replace(/\.js$/, '.ts');
  const entries = ENTRY_POINTS[targetPart] ?? ['index.ts'];
  if (entries.includes(name)) return null;
  return `import src/${targetPart} through its entry point (${entries.map((e) => e.replace(/\.ts$/, '.js')).join(' or ')}), not ${name.replace(/\.ts$/, '.js')}`;
}
