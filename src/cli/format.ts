/**
 * Output helpers: tables, task lines, failures, JSON. Human output to stdout; progress and notes to stderr. Credits,
 * sizes and durations are core's (core/format.ts), shared with the dashboard. Table cells and task lines pass through
 * terminalLine (terminal.ts): they hold names and reasons others wrote.
 */
import { chargeText, failureText } from '../core/index.js';
import type { ExecutionView, Failure, JobSpec, TaskView } from '../protocol/index.js';
import { terminalLine } from './terminal.js';

/** DEL and the C1 controls, which JSON.stringify leaves unescaped (it escapes only U+0000–U+001F). */
const JSON_UNESCAPED_CONTROLS = /[\u007f-\u009f]/g;

/**
 * Prints `value` as indented JSON on stdout. Every control character is escaped (`\u009b` …), so the JSON is the
 * same value and no string in it can drive the terminal.
 */
export function printJson(value: unknown): void {
  const text = JSON.stringify(value, null, 2).replace(
    JSON_UNESCAPED_CONTROLS,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  process.stdout.write(text + '\n');
}

/** A plain text table with left-aligned columns; cells are made terminal-safe (terminalLine). */
export function table(header: string[], rawRows: string[][]): string {
  const rows = rawRows.map((r) => r.map(terminalLine));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Task parameters as `C=10, gamma=0.001` (or `#index` when none). */
export function formatParams(t: Pick<TaskView, 'index' | 'params'>): string {
  const entries = Object.entries(t.params);
  return entries.length === 0 ? `#${t.index}` : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

/**
 * A task's failure for the terminal: its reason, who caused it and whether it is charged, the catalogue's words with
 * the detail, and the `deqo submit` flag to change (left out when the job already has it, e.g. `--network`).
 */
export function formatFailure(f: Failure, spec?: Pick<JobSpec, 'network'>): string {
  const tried = f.reason === 'requirements_unavailable' && spec?.network === true;
  return `${f.reason} (${chargeText(f)}): ${failureText(f, 'flag', tried)}`;
}

/**
 * One execution as `agent:state` with its failure reason, e.g. `provider-2:failed(out_of_memory)`; a determinism
 * probe execution as `agent[probe N]:state`.
 */
export function formatExecution(e: ExecutionView): string {
  const probe = e.probe ? `[probe ${e.probe}]` : '';
  return `${e.agentName}${probe}:${e.state}${e.failure && e.state !== 'cancelled' ? `(${e.failure.reason})` : ''}`;
}

/** A one-line summary of a task for progress output, terminal-safe (terminalLine). */
export function taskLine(t: TaskView): string {
  return terminalLine(taskSummary(t));
}

function taskSummary(t: TaskView): string {
  const runningOn = t.executions.filter((e) => e.state === 'running').map((e) => e.agentName);
  const agreed = t.executions.filter((e) => e.state === 'valid').map((e) => e.agentName);
  const outvoted = t.executions.filter((e) => e.state === 'invalid').map((e) => e.agentName);
  const head = `task ${t.index} (${formatParams(t)})`;
  switch (t.state) {
    case 'queued':
      return `${head}: queued`;
    case 'running': {
      const reported = t.executions.filter((e) => e.state === 'reported').map((e) => e.agentName);
      return `${head}: running on ${runningOn.join(', ') || '(assigning)'}${reported.length ? `; reported by ${reported.join(', ')}` : ''}`;
    }
    case 'verified':
      return `${head}: verified by ${agreed.join(' + ')}${outvoted.length ? `; outvoted: ${outvoted.join(', ')}` : ''}`;
    case 'failed':
      return `${head}: failed: ${t.failure ? formatFailure(t.failure) : '?'}`;
    case 'cancelled':
      return `${head}: cancelled`;
  }
}
