#!/usr/bin/env node
/**
 * `node dist/sim/main.js [flags]` (or `npm run simulate -- [flags]`): runs the verification simulation
 * (sim/simulate.ts) for each strategy × error bound ε × mode and prints a table (Markdown) and one JSON line per run;
 * `--json` prints only the JSON lines. `--help` lists the flags.
 */
import { parseArgs } from 'node:util';
import { checkCredibilityConfig, DEFAULT_CREDIBILITY } from '../core/index.js';
import { DEFAULT_SIM_OPTIONS, simulate, type SimMode, type SimResult } from './simulate.js';
import { STRATEGIES } from './world.js';

const HELP = `usage: node dist/sim/main.js [flags]   (npm run simulate -- [flags])

Runs the verification simulation over the real core rules, for every strategy × error bound × mode,
and prints a Markdown table and one JSON line per run (seeded: the same flags give the same figures).

  --strategy a,b       strategies (default all): ${Object.keys(STRATEGIES).join(', ')}
  --max-error a,b      error bounds ε, "none" for quorum voting (default none,1e-3,1e-4)
  --mode a,b           replicate, adaptive (default both)
  --tasks n            measured buyer tasks per run (default ${DEFAULT_SIM_OPTIONS.tasks})
  --replicas n         replicas per task (default ${DEFAULT_SIM_OPTIONS.replicas}); --quorum n (default ${DEFAULT_SIM_OPTIONS.quorum})
  --corrupt-rate q     probability a liar corrupts a result once it lies (default 1)
  --spot-check-rate q  spot-check rate (default ${DEFAULT_CREDIBILITY.spotCheckRate}); --saboteur-fraction f (default ${DEFAULT_CREDIBILITY.saboteurFraction});
  --established-after n  confirmations to leave probation (default ${DEFAULT_CREDIBILITY.establishedAfter})
  --load x             arrival rate as a share of replicated capacity (default ${DEFAULT_SIM_OPTIONS.load})
  --seed n             seed (default ${DEFAULT_SIM_OPTIONS.seed})
  --json               print only the JSON lines
  -h, --help           this text
`;

function fail(message: string): never {
  process.stderr.write(`${message}\n(see --help)\n`);
  process.exit(2);
}

function num(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const x = Number(raw);
  if (!Number.isFinite(x) || x < min || x > max) fail(`--${name} must be a number in [${min}, ${max}], got "${raw}"`);
  return x;
}

function list<T>(name: string, raw: string | undefined, fallback: T[], parse: (s: string) => T | undefined): T[] {
  if (raw === undefined) return fallback;
  return raw.split(',').map((s) => {
    const x = parse(s.trim());
    if (x === undefined) fail(`--${name}: cannot read "${s}"`);
    return x;
  });
}

const fmtEps = (e: number | null) => (e === null ? 'none' : String(e));

/** The rows as a Markdown table. */
export function table(rows: readonly SimResult[]): string {
  const head = [
    'strategy',
    'mode',
    'ε',
    'tasks',
    'wrong before backtracking',
    'wrong at end',
    'wrong rate',
    'exec/task (buyer + spot + re-verif = total)',
    'alone',
    'spot-checks',
    'caught (honest)',
    're-verified (overturned, to wrong)',
    'failed',
  ];
  const lines = rows.map((r) => {
    const x = r.executionsPerTask;
    return [
      r.strategy,
      r.mode,
      fmtEps(r.maxError),
      String(r.tasks),
      String(r.wrongAcceptedBeforeBacktracking),
      String(r.wrongAccepted),
      r.wrongRate.toExponential(1),
      `${x.buyer.toFixed(2)} + ${x.spotChecks.toFixed(2)} + ${x.reverifications.toFixed(2)} = ${x.total.toFixed(2)}`,
      String(r.alone),
      String(r.spotChecks),
      `${r.caught} (${r.caughtHonest})`,
      `${r.reverified} (${r.overturned}, ${r.overturnedToWrong})`,
      String(r.failed),
    ];
  });
  const fmt = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [fmt(head), fmt(head.map(() => '---')), ...lines.map(fmt)].join('\n');
}

function main(): void {
  const { values } = parseArgs({
    options: {
      strategy: { type: 'string' },
      'max-error': { type: 'string' },
      mode: { type: 'string' },
      tasks: { type: 'string' },
      replicas: { type: 'string' },
      quorum: { type: 'string' },
      'corrupt-rate': { type: 'string' },
      'spot-check-rate': { type: 'string' },
      'saboteur-fraction': { type: 'string' },
      'established-after': { type: 'string' },
      load: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const d = DEFAULT_SIM_OPTIONS;
  const strategies = list('strategy', values.strategy, Object.values(STRATEGIES), (s) => STRATEGIES[s]);
  const bounds = list<number | null>('max-error', values['max-error'], [null, 1e-3, 1e-4], (s) => {
    if (s === 'none') return null;
    const x = Number(s);
    return x > 0 && x <= 0.5 ? x : undefined;
  });
  const modes = list<SimMode>('mode', values.mode, ['replicate', 'adaptive'], (s) =>
    s === 'replicate' || s === 'adaptive' ? s : undefined,
  );
  const replicas = Math.round(num('replicas', values.replicas, d.replicas, 1, 16));
  let credibility;
  try {
    credibility = checkCredibilityConfig({
      ...DEFAULT_CREDIBILITY,
      spotCheckRate: num('spot-check-rate', values['spot-check-rate'], DEFAULT_CREDIBILITY.spotCheckRate, 0, 1),
      saboteurFraction: num(
        'saboteur-fraction',
        values['saboteur-fraction'],
        DEFAULT_CREDIBILITY.saboteurFraction,
        0,
        1,
      ),
      establishedAfter: num(
        'established-after',
        values['established-after'],
        DEFAULT_CREDIBILITY.establishedAfter,
        1,
        1e6,
      ),
    });
  } catch (err) {
    fail((err as Error).message);
  }
  const base = {
    tasks: Math.round(num('tasks', values.tasks, d.tasks, 1, 1_000_000)),
    replicas,
    quorum: Math.round(num('quorum', values.quorum, d.quorum, 1, replicas)),
    corruptRate: num('corrupt-rate', values['corrupt-rate'], d.corruptRate, 0, 1),
    load: num('load', values.load, d.load, 0.01, 10),
    seed: Math.round(num('seed', values.seed, d.seed, 0, 2 ** 32 - 1)),
    credibility,
  };
  const rows: SimResult[] = [];
  for (const strategy of strategies)
    for (const maxError of bounds)
      for (const mode of modes) {
        const r = simulate({ ...base, strategy, mode, maxError });
        rows.push(r);
        process.stdout.write(`${JSON.stringify(r)}\n`);
      }
  if (values.json) return;
  process.stdout.write(
    `\n${base.tasks} tasks per run, ${base.quorum}-of-${base.replicas}, corrupt rate ${base.corruptRate}, ` +
      `q = ${credibility.spotCheckRate}, f = ${credibility.saboteurFraction}, established after ${credibility.establishedAfter}, ` +
      `load ${base.load}, seed ${base.seed}\n\n${table(rows)}\n`,
  );
}

main();
