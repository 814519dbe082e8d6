/** The one-way dependency rule of DESIGN.md, checked on every import in src/. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '../../src');
/** Parts each part may import (besides itself). */
const ALLOWED: Record<string, string[]> = {
  protocol: [],
  core: ['protocol'],
  store: ['core', 'protocol'],
  engine: ['store', 'core', 'protocol'],
  coordinator: ['engine', 'store', 'core', 'protocol'],
  client: ['protocol'],
  agent: ['client', 'core', 'protocol'],
  // The CLI embeds a coordinator for `deqo up`/`demo` and runs an agent for `deqo agent`; it never imports the store.
  cli: ['client', 'core', 'protocol', 'agent', 'coordinator', 'engine'],
  // The verification simulation drives the real core code with simulated providers; nothing else.
  sim: ['core', 'protocol'],
  // Benchmarks drive every part (a coordinator, simulated and real agents, the client); no part imports them.
  bench: ['protocol', 'core', 'store', 'engine', 'coordinator', 'client', 'agent', 'cli', 'sim'],
};
/** External packages a part may import; core stays pure. */
const FORBIDDEN_PACKAGES: Record<string, RegExp> = {
  protocol: /^(?!zod$)/,
  core: /^(node:|fs|path|better-sqlite3|pg|kysely|fastify|dockerode|pino)/,
  client: /^(better-sqlite3|pg|kysely|fastify|dockerode)/,
  cli: /^(better-sqlite3|pg|kysely)$/,
  sim: /^(better-sqlite3|pg|kysely|fastify|dockerode)/,
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => (m[1] ?? m[2])!);
}

describe('part boundaries', () => {
  const all = files(SRC);
  it('finds the parts', () => { expect(new Set(all.map((f) => relative(SRC, f).split('/')[0]))).toEqual(new Set(Object.keys(ALLOWED))); });
  for (const file of all) {
    const part = relative(SRC, file).split('/')[0]!;
    it(`${relative(SRC, file)} imports only what ${part} may`, () => {
      for (const spec of imports(file)) {
        if (spec.startsWith('.')) {
          const target = relative(SRC, join(file, '..', spec)).split('/')[0]!;
          if (target === 'bench') expect(part, `${spec}: nothing outside src/bench may import it`).toBe('bench');
          if (target !== part) expect(ALLOWED[part], `${spec}`).toContain(target);
        } else {
          const rule = FORBIDDEN_PACKAGES[part];
          if (rule) expect(rule.test(spec), `${part} must not import ${spec}`).toBe(false);
        }
      }
    });
  }
});

describe('the client runs in a browser', () => {
  // The dashboard bundles client.ts: it and what it imports must not need Node (files.ts holds the Node-only transfers).
  const BROWSER_SAFE = ['client/client.ts', 'client/sse.ts'];
  it.each(BROWSER_SAFE)('%s imports no node:* module and only browser-safe client files', (file) => {
    for (const spec of imports(join(SRC, file))) {
      expect(spec.startsWith('node:') || ['fs', 'path', 'stream', 'os', 'crypto'].includes(spec), spec).toBe(false);
      if (spec.startsWith('./')) expect(BROWSER_SAFE, spec).toContain(`client/${spec.slice(2).replace(/\.js$/, '.ts')}`);
    }
    expect(readFileSync(join(SRC, file), 'utf8')).not.toMatch(/\bBuffer\b|\bprocess\./);
  });
});

/** The dashboard (web/) talks to the coordinator only through the client: from src/ it imports client and protocol alone. */
describe('dashboard boundaries', () => {
  const WEB = join(import.meta.dirname, '../../web/src');
  const webFiles = (dir: string): string[] => readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? webFiles(p) : /\.tsx?$/.test(p) ? [p] : [];
  });
  const all = webFiles(WEB);
  it('finds the dashboard sources', () => { expect(all.length).toBeGreaterThan(10); });
  for (const file of all) {
    it(`web/src/${relative(WEB, file)} imports only client and protocol from src/`, () => {
      for (const spec of imports(file)) {
        if (spec.startsWith('.')) {
          const target = relative(SRC, join(file, '..', spec));
          if (!target.startsWith('..')) expect(['client', 'protocol'], spec).toContain(target.split('/')[0]);
        } else {
          expect(/^(node:|better-sqlite3|pg|kysely|fastify|dockerode|pino)/.test(spec), `the dashboard must not import ${spec}`).toBe(false);
        }
      }
    });
  }
});
