#!/usr/bin/env node
/**
 * `node dist/sim/main.js [--tasks 10000] [--providers 50] [--cheaters 0.2] [--corrupt-rate q] [--collude]
 * [--load 0.6] [--seed n] [--json]` (or `npm run simulate -- …`): runs the verification simulation
 * (sim/simulate.ts) for `replicate` and `adaptive` and prints a table. Without --corrupt-rate it reports
 * cheaters that always corrupt (q = 1) and occasional cheaters (q = 0.1).
 */
import { parseArgs } from 'node:util';
import { DEFAULT_SIM_OPTIONS, simulate, type SimMode, type SimResult } from './simulate.js';

function num(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const x = Number(raw);
  if (!Number.isFinite(x) || x < min || x > max) {
    process.stderr.write(`--${name} must be a number in [${min}, ${max}], got "${raw}"\n`);
    process.exit(2);
  }
  return x;
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** The result rows as a Markdown table. */
function table(rows: readonly SimResult[]): string {
  const head = [
    'mode',
    'corrupt rate q',
    'executions / task',
    '… 2nd half',
    'run alone',
    'wrong accepted',
    'failed (no quorum)',
    'on cheaters',
  ];
  const lines = rows.map((r) => [
    r.options.mode,
    String(r.options.corruptRate),
    r.executionsPerTask.toFixed(2),
    r.executionsPerTaskSecondHalf.toFixed(2),
    pct(r.alone / r.options.tasks),
    `${r.wrongAccepted} (${pct(r.wrongAcceptedShare)})`,
    String(r.failed),
    pct(r.cheaterExecutionShare),
  ]);
  const fmt = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [fmt(head), fmt(head.map(() => '---')), ...lines.map(fmt)].join('\n');
}

function main(): void {
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string' },
      providers: { type: 'string' },
      cheaters: { type: 'string' },
      'corrupt-rate': { type: 'string' },
      collude: { type: 'boolean', default: false },
      load: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: node dist/sim/main.js [--tasks 10000] [--providers 50] [--cheaters 0.2] [--corrupt-rate q] [--collude] [--load 0.6] [--seed 1] [--json]\n',
    );
    return;
  }
  const d = DEFAULT_SIM_OPTIONS;
  const base = {
    tasks: Math.round(num('tasks', values.tasks, d.tasks, 1, 1_000_000)),
    providers: Math.round(num('providers', values.providers, d.providers, d.replicas, 100_000)),
    cheaters: num('cheaters', values.cheaters, d.cheaters, 0, 1),
    collude: values.collude,
    load: num('load', values.load, d.load, 0.01, 10),
    seed: Math.round(num('seed', values.seed, d.seed, 0, 2 ** 32 - 1)),
  };
  const rates =
    values['corrupt-rate'] === undefined ? [1, 0.1] : [num('corrupt-rate', values['corrupt-rate'], 1, 0, 1)];
  const rows: SimResult[] = [];
  for (const corruptRate of rates)
    for (const mode of ['replicate', 'adaptive'] as SimMode[]) rows.push(simulate({ ...base, corruptRate, mode }));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    `${base.tasks} tasks, ${base.providers} providers, ${pct(base.cheaters)} cheaters (${pct(rows[0]!.cheaterCoreShare)} of the cores)` +
      `${base.collude ? ' (colluding: same wrong hash)' : ' (not colluding)'}, ${d.quorum}-of-${d.replicas}, load ${base.load}, seed ${base.seed}\n\n`,
  );
  process.stdout.write(`${table(rows)}\n`);
  const r0 = rows[0]!;
  process.stdout.write(
    `\nsimulated ${r0.simulatedHours.toFixed(0)} h; unfinished tasks: ${rows.map((r) => r.unfinished).join(', ')}; ` +
      `trusted providers at the end (honest/cheaters): ${rows.map((r) => `${r.trustedAtEnd.honest}/${r.trustedAtEnd.cheaters}`).join(', ')}\n`,
  );
}

main();
