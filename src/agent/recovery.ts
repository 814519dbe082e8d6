/**
 * What a restarted agent does with what an earlier run left: the executions in its state database and the
 * containers labelled with its id. Pure: the agent gathers both, this decides, the agent acts.
 *
 * - a stored report is resent; an outcome without a report is packaged from the work directory and sent;
 * - a running (or never started) container of a recorded execution is reattached, one that exited while the
 *   agent was down is collected — both then report normally;
 * - a recorded execution whose container is gone (or dead) is reported failed as `agent_restarted`;
 * - every other container of the agent is an orphan: removed, and reported failed when its labels name an
 *   execution the state does not know (so its lease ends now rather than at expiry).
 */
import type { OwnContainer } from './executor.js';
import type { HeldRecord } from './state.js';

/** What to do with one recorded execution. */
export type RecoveryAction =
  | { kind: 'resend'; record: HeldRecord; report: NonNullable<HeldRecord['report']> }
  | { kind: 'package'; record: HeldRecord; outcome: NonNullable<HeldRecord['outcome']> }
  | { kind: 'reattach'; record: HeldRecord; container: OwnContainer }
  | { kind: 'gone'; record: HeldRecord; message: string };

/** A container to remove; `report` names the execution to report failed (labels complete, execution unknown). */
export interface Orphan {
  container: OwnContainer;
  report: { executionId: string; fencingToken: number } | null;
}

/** The whole decision. `workDirs`: execution ids whose work directories must be kept (every other one is deleted). */
export interface RecoveryPlan {
  actions: RecoveryAction[];
  orphans: Orphan[];
  workDirs: Set<string>;
}

/** Engine states of a container that will never run again. */
const DEAD_STATES = new Set(['dead', 'removing']);

function belongsTo(c: OwnContainer, r: HeldRecord): boolean {
  if (r.containerId !== null && c.containerId === r.containerId) return true;
  return c.executionId === r.executionId && (c.fencingToken === undefined || c.fencingToken === r.fencingToken);
}

/** Decides recovery from the recorded executions and the agent's containers (see the module comment). */
export function planRecovery(records: readonly HeldRecord[], containers: readonly OwnContainer[]): RecoveryPlan {
  const claimed = new Set<OwnContainer>();
  const actions: RecoveryAction[] = [];
  for (const record of records) {
    const mine = containers.filter((c) => !claimed.has(c) && belongsTo(c, record));
    mine.forEach((c) => claimed.add(c)); // extra or dead ones are removed below, unreported
    if (record.report !== null) {
      actions.push({ kind: 'resend', record, report: record.report });
      continue;
    }
    if (record.outcome !== null) {
      actions.push({ kind: 'package', record, outcome: record.outcome });
      continue;
    }
    const live = mine.find((c) => !DEAD_STATES.has(c.state));
    if (live) {
      actions.push({ kind: 'reattach', record, container: live });
      continue;
    }
    actions.push({
      kind: 'gone',
      record,
      message:
        record.phase === 'preparing' && mine.length === 0
          ? 'the agent restarted while preparing this execution, before its container was created; it did not run'
          : "the agent restarted and this execution's container was gone (removed, or the machine rebooted); its result is lost",
    });
  }
  const attached = new Set(actions.flatMap((a) => (a.kind === 'reattach' ? [a.container] : [])));
  const known = new Set(records.map((r) => r.executionId));
  const reported = new Set<string>();
  const orphans: Orphan[] = containers
    .filter((c) => !attached.has(c))
    .map((c) => {
      const report =
        !claimed.has(c) &&
        c.executionId !== undefined &&
        c.fencingToken !== undefined &&
        !known.has(c.executionId) &&
        !reported.has(c.executionId)
          ? { executionId: c.executionId, fencingToken: c.fencingToken }
          : null;
      if (report) reported.add(report.executionId);
      return { container: c, report };
    });
  return { actions, orphans, workDirs: known };
}
