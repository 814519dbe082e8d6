/**
 * What an engine step changed, gathered inside its transaction and announced after the commit: the engine's
 * events fire only for what was committed. A transaction that PostgreSQL runs again starts a fresh Effects.
 */
import type {
  CreditKind,
  EngineEvents,
  JobTouchedEvent,
  SettledExecution,
  SettledJob,
  TaskDecidedEvent,
} from './events.js';

export class Effects {
  readonly touched = new Map<string, JobTouchedEvent['cause']>();
  readonly decided: TaskDecidedEvent[] = [];
  readonly settled: SettledExecution[] = [];
  readonly jobsSettled: SettledJob[] = [];
  readonly credits: Array<{ kind: CreditKind; jobId: string; micro: number }> = [];
  /** Agents that received executions (to wake their long-polls, here and on other coordinators). */
  readonly agents = new Set<string>();

  /** Notes that a job changed (the first cause noted for a job wins). */
  touch(jobId: string, cause: JobTouchedEvent['cause']): void {
    if (!this.touched.has(jobId)) this.touched.set(jobId, cause);
  }

  /** Announces everything gathered, in the order it happened per kind: decisions, settlements, money, touches. */
  emit(events: EngineEvents): void {
    for (const d of this.decided) events.notify('taskDecided', d);
    for (const c of this.credits) events.credits(c.kind, c.jobId, c.micro);
    for (const s of this.settled) events.executionSettled(s);
    for (const s of this.jobsSettled) events.jobSettled(s);
    for (const [jobId, cause] of this.touched) events.notify('jobTouched', { jobId, cause });
  }
}
