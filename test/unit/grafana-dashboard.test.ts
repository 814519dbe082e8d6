/**
 * deploy/grafana/deqo-dashboard.json against the coordinator's real metrics: every series a panel queries is one
 * the registry declares, every label value a panel matches on is one the registry emits, and every deqo metric
 * has a panel — so the dashboard and the metrics cannot drift apart. Plus the shape Grafana's import needs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics, type CoordinatorMetrics } from '../../src/coordinator/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { emptyBlobStore } from '../helpers/outputs.js';
import { declaredSeries, parseSamples, type Sample } from '../helpers/prometheus.js';

interface Target {
  expr: string;
  refId: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
  templating: { list: Array<{ name: string; datasource: { uid: string } }> };
}

const dashboard = JSON.parse(
  readFileSync(join(import.meta.dirname, '../../deploy/grafana/deqo-dashboard.json'), 'utf8'),
) as Dashboard;
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');
const exprs = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
/** `name{…}` or a bare name of our metrics (deqo_, and the Node process metrics) in a PromQL expression. */
const SELECTOR = /\b((?:deqo|process|nodejs)_[a-z0-9_]+)(?:\{([^}]*)\})?/g;

let store: Store;
let engine: Engine;
let metrics: CoordinatorMetrics;
let text: string;
let samples: Sample[];

beforeAll(async () => {
  store = await openSqliteStore(':memory:');
  engine = new Engine(store, {
    blobs: emptyBlobStore(),
    config: { ...DEFAULT_ENGINE_CONFIG },
    log: pino({ level: 'silent' }),
  });
  metrics = createMetrics(store, engine, { cacheMs: 0 });
  text = await metrics.scrape();
  samples = parseSamples(text);
});
afterAll(async () => {
  metrics.close();
  await store.close();
});

describe('the Grafana dashboard', () => {
  it('imports with a Prometheus datasource input used by every panel, query and variable', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toBe('deqo-coordinators');
    expect(dashboard.__inputs).toEqual([
      expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }),
    ]);
    expect(queryPanels.length).toBeGreaterThanOrEqual(10);
    for (const p of queryPanels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) expect(t.datasource.uid, p.title).toBe('${DS_PROMETHEUS}');
      expect(new Set(p.targets!.map((t) => t.refId)).size, p.title).toBe(p.targets!.length);
    }
    for (const v of dashboard.templating.list) expect(v.datasource.uid, v.name).toBe('${DS_PROMETHEUS}');
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
  });

  it('has balanced brackets in every query (the typo a name check misses)', () => {
    for (const { panel, expr } of exprs) {
      const stack: string[] = [];
      for (const ch of expr.replace(/"[^"]*"/g, '""')) {
        if ('([{'.includes(ch)) stack.push(')]}'['([{'.indexOf(ch)]!);
        else if (')]}'.includes(ch)) expect(stack.pop(), `${panel}: ${expr}`).toBe(ch);
      }
      expect(stack, `${panel}: ${expr}`).toEqual([]);
    }
  });

  it('queries only series the coordinator declares', () => {
    const declared = declaredSeries(text);
    const used = exprs.flatMap(({ panel, expr }) => [...expr.matchAll(SELECTOR)].map((m) => ({ panel, name: m[1]! })));
    expect(used.length).toBeGreaterThan(20);
    for (const { panel, name } of used) expect(declared.has(name), `${panel}: ${name}`).toBe(true);
  });

  it('matches only label values the coordinator emits', () => {
    for (const { panel, expr } of exprs) {
      for (const m of expr.matchAll(SELECTOR)) {
        const name = m[1]!;
        for (const [, label, op, value] of (m[2] ?? '').matchAll(/(\w+)\s*(=~|=)\s*"([^"]*)"/g)) {
          if (label === 'job') {
            expect(value).toBe('$job');
            continue;
          } // Prometheus's own target label
          const emitted = new Set(samples.filter((s) => s.name === name).map((s) => s.labels[label!]));
          for (const v of op === '=~' ? value!.split('|') : [value!])
            expect(emitted.has(v), `${panel}: ${name}{${label}="${v}"}`).toBe(true);
        }
      }
    }
  });

  it('has a panel for every deqo metric', () => {
    const queried = exprs.map((e) => e.expr).join('\n');
    const families = [...text.matchAll(/^# TYPE (deqo_\S+) (\S+)$/gm)].map((m) => m[1]!);
    expect(families.length).toBeGreaterThanOrEqual(10);
    for (const f of families) expect(queried, f).toMatch(new RegExp(`\\b${f}(_bucket|_count|_sum)?\\b`));
  });
});
