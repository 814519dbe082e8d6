/**
 * Output helpers: tables, task lines, failures, JSON. Human output to stdout; progress and notes to stderr. Credits,
 * sizes and durations are core's (core/format.ts), shared with the dashboard.
 */
import { chargeText, failureText } from '../core/index.js';
import type { ExecutionView, Failure, JobSpec, TaskView } from '../protocol/index.js';

/** Prints `value` as indented JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** A plain text table with left-aligned columns. */
export function table(header: string[], rows: string[][]): string {
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

/** A one-line summary of a task for progress output. */
export function taskLine(t: TaskView): string {
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
