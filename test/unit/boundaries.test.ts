/**
 * The one-way dependency rule of DESIGN.md, checked on every import in src/ and web/src/: which part may import
 * which, which packages each part may use, and no import cycle between files. (That a part is imported only
 * through its entry point is the lint rule `deqo/entry-points`, eslint/parts.mjs.)
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '../../src');
const WEB = join(import.meta.dirname, '../../web/src');

/** Parts each part may import (besides itself). No exceptions: a file that needs more belongs elsewhere. */
const ALLOWED: Record<string, string[]> = {
  protocol: [],
  core: ['protocol'],
  store: ['core', 'protocol'],
  engine: ['store', 'core', 'protocol'],
  coordinator: ['engine', 'store', 'core', 'protocol'],
  client: ['protocol'],
  agent: ['client', 'core', 'protocol'],
  // The CLI embeds a coordinator for `deqo up`/`demo` and runs an agent for `deqo agent`, through their entry points.
  cli: ['client', 'core', 'protocol', 'agent', 'coordinator'],
  // The verification simulation drives the real core code with simulated providers; nothing else.
  sim: ['core', 'protocol'],
  // Benchmarks drive every part (a coordinator, simulated and real agents, the client); no part imports them.
  bench: ['protocol', 'core', 'store', 'engine', 'coordinator', 'client', 'agent', 'cli', 'sim'],
  // The dashboard talks to the coordinator only through the client; it formats with pure core helpers.
  web: ['client', 'protocol', 'core'],
};

/**
 * Third-party packages each part may import (node:* built-ins aside). The HTTP server only in the coordinator,
 * Docker only in the agent, database drivers and the query builder only in the store (the agent keeps its own
 * local state file in SQLite, DESIGN.md "agent: local state").
 */
const PACKAGES: Record<string, readonly string[]> = {
  protocol: ['zod'],
  core: ['@noble/hashes', 'picomatch'],
  store: ['kysely', 'better-sqlite3', 'pg'],
  engine: ['pino', 'tar'],
  coordinator: ['fastify', 'prom-client', 'pino', 'tar', 'zod'],
  client: ['zod'],
  agent: ['dockerode', 'better-sqlite3', 'tar', 'croner', 'yaml', 'pino', 'zod'],
  cli: ['commander', 'cli-progress', 'tar', 'yaml', 'pino', 'zod'],
  sim: [],
  bench: ['pino', 'pg', 'zod', 'better-sqlite3'], // better-sqlite3: the history benchmark clones rows in a stopped coordinator's file
  web: ['react', 'react-dom', '@codemirror/*', 'codemirror', 'uplot', 'zod'],
};
/** Parts that run anywhere (browser, simulation): no node:* built-ins. */
const NO_NODE = new Set(['protocol', 'core', 'web']);

function files(dir: string, ext: RegExp): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p, ext) : ext.test(p) ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => (m[1] ?? m[2])!);
}

/** The package name of a bare import: `@scope/name` or `name` (subpaths dropped). */
const packageOf = (spec: string): string =>
  spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;

const partOf = (file: string): string => (file.startsWith(WEB) ? 'web' : relative(SRC, file).split('/')[0]!);

const all = [...files(SRC, /\.ts$/), ...files(WEB, /\.tsx?$/)];

describe('part boundaries', () => {
  it('finds the parts', () => {
    expect(new Set(all.map(partOf))).toEqual(new Set(Object.keys(ALLOWED)));
  });
  for (const file of all) {
    const part = partOf(file);
    const name = file.startsWith(WEB) ? `web/src/${relative(WEB, file)}` : relative(SRC, file);
    it(`${name} imports only what ${part} may`, () => {
      for (const spec of imports(file)) {
        if (spec.startsWith('.')) {
          const target = join(file, '..', spec);
          if (!target.startsWith(SRC)) continue; // web's own files
          const targetPart = relative(SRC, target).split('/')[0]!;
          if (targetPart !== part) expect(ALLOWED[part], `${name} → ${spec}`).toContain(targetPart);
        } else if (spec.startsWith('node:')) {
          expect(NO_NODE.has(part), `${part} must not import ${spec}`).toBe(false);
        } else {
          const pkg = packageOf(spec);
          const allowed = (PACKAGES[part] ?? []).some(
            (p) => p === pkg || (p.endsWith('/*') && pkg.startsWith(p.slice(0, -1))),
          );
          expect(allowed, `${part} must not import ${spec} (allowed: ${PACKAGES[part]?.join(', ')})`).toBe(true);
        }
      }
    });
  }
});

describe('no import cycles', () => {
  it('the parts form no cycle', () => {
    const seen = new Set<string>();
    const visit = (p: string, stack: string[]): void => {
      expect(stack, `cycle ${[...stack, p].join(' → ')}`).not.toContain(p);
      if (seen.has(p)) return;
      for (const q of ALLOWED[p] ?? []) visit(q, [...stack, p]);
      seen.add(p);
    };
    for (const p of Object.keys(ALLOWED)) visit(p, []);
  });

  it('no file imports itself through others (src/)', () => {
    const srcFiles = files(SRC, /\.ts$/);
    const edges = new Map(
      srcFiles.map((f) => [
        f,
        imports(f)
          .filter((s) => s.startsWith('.'))
          .map((s) => join(f, '..', s).replace(/\.js$/, '.ts')),
      ]),
    );
    // Depth-first search with colours: an edge back to a file on the current path is a cycle.
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const dfs = (f: string, path: string[]): void => {
      state.set(f, 'open');
      for (const g of edges.get(f) ?? []) {
        if (state.get(g) === 'open')
          cycles.push([...path.slice(path.indexOf(g)), g].map((x) => relative(SRC, x)).join(' → '));
        else if (!state.has(g)) dfs(g, [...path, g]);
      }
      state.set(f, 'done');
    };
    for (const f of srcFiles) if (!state.has(f)) dfs(f, [f]);
    expect(cycles).toEqual([]);
  });
});

describe('the client runs in a browser', () => {
  // The dashboard bundles browser.ts: it and what it imports must not need Node (files.ts holds the Node-only transfers).
  const BROWSER_SAFE = ['client/browser.ts', 'client/client.ts', 'client/sse.ts'];
  it.each(BROWSER_SAFE)('%s imports no node:* module and only browser-safe client files', (file) => {
    for (const spec of imports(join(SRC, file))) {
      expect(spec.startsWith('node:') || ['fs', 'path', 'stream', 'os', 'crypto'].includes(spec), spec).toBe(false);
      if (spec.startsWith('./'))
        expect(BROWSER_SAFE, spec).toContain(`client/${spec.slice(2).replace(/\.js$/, '.ts')}`);
    }
    expect(readFileSync(join(SRC, file), 'utf8')).not.toMatch(/\bBuffer\b|\bprocess\./);
  });
});
