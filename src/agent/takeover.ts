/**
 * Acting on the recovery plan at agent start (recovery.ts decides): drops unreadable state rows, removes orphan
 * containers (reporting the executions their labels name), deletes work directories of executions no longer held,
 * and hands every recorded execution back to the runner (resend, package, reattach or report gone).
 */
import type { Logger } from 'pino';
import { newHeld, type ExecutionRunner, type Held } from './execution.js';
import type { Executor } from './executor.js';
import { planRecovery, type RecoveryAction } from './recovery.js';
import { removeStrayWorkDirs } from './report-body.js';
import type { AgentState } from './state.js';

/** What taking over needs from the agent. */
export interface TakeoverDeps {
  state: AgentState;
  executor: Executor;
  runner: ExecutionRunner;
  log: Logger;
  dataDir: string;
  /** Aborted when the agent stops (abandons orphan reports). */
  shutdown: AbortSignal;
  /** Registers a held execution and the work that settles it. */
  hold: (h: Held, work: Promise<void>) => void;
  /** Registers background work the agent awaits when it stops. */
  track: (work: Promise<void>) => void;
}

/** What the log says about each recovered execution. */
function describe(action: RecoveryAction): string {
  switch (action.kind) {
    case 'resend':
      return 'resending the report stored before the restart';
    case 'package':
      return 'packaging the result of an execution that ended before the restart';
    case 'gone':
      return 'its container is gone: reporting it failed';
    case 'reattach':
      return action.container.state === 'exited'
        ? 'its container exited while the agent was down: collecting its result'
        : 'reattached to its container';
  }
}

/** Takes over what an earlier run of the agent left. Throws on engine or state errors (the agent then does not start). */
export async function takeOver(d: TakeoverDeps): Promise<void> {
  const { records, unreadable } = d.state.list();
  for (const u of unreadable) {
    d.log.error(
      { executionId: u.executionId, problem: u.problem },
      'unreadable execution record in the state database; dropped',
    );
    d.state.remove(u.executionId);
  }
  const plan = planRecovery(records, await d.executor.containers());
  for (const o of plan.orphans) {
    await d.executor.remove(o.container.containerId);
    const log = d.log.child({ executionId: o.container.executionId });
    log.warn(
      { containerId: o.container.containerId, state: o.container.state },
      'removed a container an earlier run of this agent left',
    );
    if (o.report) d.track(d.runner.reportOrphan(o.report.executionId, o.report.fencingToken, log, d.shutdown));
  }
  const stray = await removeStrayWorkDirs(d.dataDir, plan.workDirs);
  if (stray.length > 0) d.log.info({ executions: stray }, 'removed work directories of executions no longer held');
  for (const action of plan.actions) {
    const h = newHeld(action.record.assignment, d.log, {
      recovered: true,
      phase: action.record.phase,
      now: Date.now(),
    });
    h.log.info(
      { recovery: action.kind, container: action.kind === 'reattach' ? action.container.state : undefined },
      describe(action),
    );
    d.hold(h, d.runner.resume(h, action));
  }
}
