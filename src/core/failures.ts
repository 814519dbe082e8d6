/**
 * The failure catalogue: the one table of every reason an execution or a task can end without a verified result,
 * and what each means — who is blamed, whether it votes like a result, whether the buyer is charged, whether it
 * counts against the provider's reputation, the words a user reads and the flag (and spec field) to change.
 * The engine, the store, the agent, the CLI and the dashboard all read it; a new reason is added here and
 * nowhere else (the protocol carries reasons as strings and the coordinator checks them against this table).
 *
 * The shape follows trigger.dev's run-engine `errors.ts` (one exhaustive table from error to status) and
 * Fastify's `lib/errors.js`: a code, what it means, and what to do about it.
 */
import type { Failure } from '../protocol/index.js';
import { formatDuration } from './format.js';

/** Who caused a failure: the job (the buyer's code or request), the provider (machine or agent), or nobody. */
export type Blame = 'job' | 'provider' | 'none';

/**
 * Where a reason comes from: `agent` (an agent reports it for its execution), `coordinator` (the coordinator
 * records it for one execution: a lease that ran out, a report it refused), `task` (the verifier ends a task).
 */
export type FailureSource = 'agent' | 'coordinator' | 'task';

/** What one failure reason means. */
export interface FailureMeaning {
  blame: Blame;
  source: FailureSource;
  /**
   * A job-caused end without a comparable result that votes like a result: the task fails only when `quorum`
   * providers report it, so a single provider cannot fail a task (or bill the buyer) alone.
   */
  votes: boolean;
  /** The buyer pays for the execution's observed use (for a voting reason: once the quorum agrees). */
  charged: boolean;
  /** Counts as an error against the provider's reputation (resets its streak, lowers its quota). */
  againstProvider: boolean;
  /** Plain words a user reads. */
  words: string;
  /** What the buyer can change: the `deqo submit` flag, the spec field behind it, and how. Null: nothing helps. */
  fix: { flag: string; field: string; how: string } | null;
}

const job = { blame: 'job', source: 'agent', votes: true, charged: true, againstProvider: false } as const;
const provider = { blame: 'provider', source: 'agent', votes: false, charged: false, againstProvider: true } as const;

/** The catalogue. Keys are the reasons the API carries (`failure.reason`). */
export const FAILURES = {
  nonzero_exit: {
    ...job,
    source: 'coordinator',
    words: 'the program exited with an error code',
    fix: null,
  },
  out_of_memory: {
    ...job,
    words: 'the program ran out of memory',
    fix: { flag: '--memory', field: 'resources.memoryMb', how: 'raise the memory limit' },
  },
  timeout: {
    ...job,
    words: 'the program ran past its time limit and was stopped',
    fix: { flag: '--timeout', field: 'resources.timeoutSeconds', how: 'raise the time limit' },
  },
  image_not_found: {
    ...job,
    words: 'the container image is not on the provider and could not be pulled',
    fix: { flag: 'IMAGE', field: 'image', how: 'use an image the providers have (`deqo providers`)' },
  },
  output_too_large: {
    ...job,
    words: 'the outputs grew past the output limit',
    fix: { flag: '--output-limit', field: 'limits.outputBytes', how: 'raise the output limit or write less' },
  },
  outputs_unpackageable: {
    ...job,
    words:
      'the outputs could not be packaged (too many files, a path too long or too deep, or a manifest too large for a report): write fewer files with shorter paths, e.g. one archive',
    fix: null,
  },
  requirements_unavailable: {
    ...job,
    words: "the script's Python requirements are not available on the provider",
    fix: {
      flag: '--network',
      field: 'network',
      how: 'let the job pip-install them with network access, or use an image that has them',
    },
  },
  input_unavailable: { ...provider, words: 'the provider could not fetch an input file', fix: null },
  agent_error: { ...provider, words: "the provider's agent hit an error (not your job's fault)", fix: null },
  agent_restarted: { ...provider, words: 'the provider restarted and could not finish the work', fix: null },
  owner_returned: {
    ...provider,
    againstProvider: false,
    words: "the machine's owner came back, so the work stopped (not charged, not held against the provider)",
    fix: null,
  },
  lease_expired: {
    ...provider,
    source: 'coordinator',
    words: 'the provider stopped responding, so the work moved elsewhere',
    fix: null,
  },
  not_claimed: {
    ...provider,
    source: 'coordinator',
    words: 'the provider never picked the work up',
    fix: null,
  },
  outputs_mismatch: {
    ...provider,
    source: 'coordinator',
    words: "the provider's output files did not match the result it reported, so the coordinator refused them",
    fix: null,
  },
  implausible_report: {
    ...provider,
    source: 'coordinator',
    words: 'the provider reported something the coordinator did not observe (such as a timeout before the time limit)',
    fix: null,
  },
  cancelled: {
    blame: 'none',
    source: 'agent',
    votes: false,
    // The provider is paid for the time it ran (claim → end, as the coordinator saw it), not graded.
    charged: true,
    againstProvider: false,
    words: 'it was stopped before a verdict (paid for the time it ran, not graded)',
    fix: null,
  },
  superseded: {
    blame: 'none',
    source: 'coordinator',
    votes: false,
    charged: false,
    againstProvider: false,
    words: 'it was no longer needed: the task was decided before it started',
    fix: null,
  },
  deadline_exceeded: {
    ...provider,
    source: 'coordinator',
    words: 'the provider held the work past its time limit without reporting, so the work moved elsewhere',
    fix: null,
  },
  no_quorum: {
    // Honest providers running a deterministic job agree; results that never reach a verdict are the job's doing
    // (nondeterminism), so the buyer pays for the executions and no provider is graded.
    blame: 'job',
    source: 'task',
    votes: false,
    charged: true,
    againstProvider: false,
    words: 'the providers did not agree on the result',
    fix: {
      flag: '--quorum',
      field: 'verification.quorum',
      how: 'make the program deterministic (fixed seeds, sorted output), or lower the quorum',
    },
  },
  too_many_errors: {
    blame: 'provider',
    source: 'task',
    votes: false,
    // Results some providers finished are paid for the work and keep their grade (none): only the failing ones erred.
    charged: false,
    againstProvider: false,
    words: 'too many providers failed to run it',
    fix: null,
  },
  queue_timeout: {
    blame: 'none',
    source: 'task',
    votes: false,
    charged: false,
    againstProvider: false,
    words: 'no provider took it in time (`deqo explain` shows which ones match)',
    fix: {
      flag: '--queue-timeout',
      field: 'queueTimeoutSeconds',
      how: 'relax the constraints or prices, or wait longer',
    },
  },
  spot_check_failed: {
    // A platform spot-check (a task whose answer was known) came back wrong: the provider is caught (blacklisted) and
    // what it alone supported is re-verified (spotchecks.ts). Recorded on the platform's spot-check task only.
    blame: 'provider',
    source: 'task',
    votes: false,
    charged: false,
    againstProvider: false,
    words: 'the provider returned a wrong answer to a spot-check and was caught',
    fix: null,
  },
  nondeterministic: {
    blame: 'job',
    source: 'task',
    votes: false,
    // The two probe executions are paid (the buyer asked for the probe); nothing else ran.
    charged: true,
    againstProvider: false,
    words: 'the determinism probe ran task 0 twice on one provider and the results differ',
    fix: {
      flag: '--check-determinism',
      field: 'verification.checkDeterminism',
      how: 'make the program deterministic (fixed seeds, no clock or random bytes in outputs), declare a tolerance with verification.compare, or drop the check',
    },
  },
  probe: {
    blame: 'none',
    source: 'coordinator',
    votes: false,
    // A probe execution is paid for its work and never graded: it says nothing about its provider's honesty.
    charged: true,
    againstProvider: false,
    words: 'it ran as half of the determinism probe (paid, not graded)',
    fix: null,
  },
  probe_discarded: {
    blame: 'provider',
    source: 'coordinator',
    votes: false,
    // Its partner on the same provider failed on the provider side (counted there): the pair is redone elsewhere.
    charged: false,
    againstProvider: false,
    words:
      'the other half of its determinism probe pair failed on the provider side, so the pair runs again elsewhere (not paid)',
    fix: null,
  },
  insufficient_funds: {
    blame: 'job',
    source: 'task',
    votes: false,
    charged: false,
    againstProvider: false,
    words: 'there were not enough credits to pay for another replica',
    fix: null,
  },
} as const satisfies Record<string, FailureMeaning>;

/** A failure reason: a key of the catalogue. */
export type FailureReason = keyof typeof FAILURES;

/** Every reason, in catalogue order. */
export const FAILURE_REASONS = Object.keys(FAILURES) as FailureReason[];

/** True when `reason` is in the catalogue. */
export function isFailureReason(reason: string): reason is FailureReason {
  return Object.hasOwn(FAILURES, reason);
}

/** Reasons an agent may report for its own execution (`source: 'agent'`). */
export const AGENT_FAILURE_REASONS = FAILURE_REASONS.filter((r) => FAILURES[r].source === 'agent');

/** The meaning of a reason; an unknown one (a newer peer's) reads as a provider-side agent error. */
export function meaningOf(reason: string): FailureMeaning {
  return isFailureReason(reason) ? FAILURES[reason] : FAILURES.agent_error;
}

/**
 * Slack for clock granularity when a reported `timeout` is compared with what the coordinator observed, ms (also
 * covers small clock differences between coordinators sharing a database: one records the claim, another the report).
 */
export const TIMEOUT_REPORT_TOLERANCE_MS = 1_000;

/**
 * Why a failure an agent reports contradicts what the coordinator observed, or null when it does not. Providers are
 * paid for what the coordinator observed, not for what they claim (DESIGN.md): a `timeout` (blamed on the job,
 * charged) is only believable once the job's time limit has passed between the claim and the report, less
 * TIMEOUT_REPORT_TOLERANCE_MS. `observedMs`: claim to report, ms; `timeoutMs`: the job's time limit, ms.
 */
export function implausibleFailure(reason: string, observedMs: number, timeoutMs: number): string | null {
  if (reason === 'timeout' && observedMs < timeoutMs - TIMEOUT_REPORT_TOLERANCE_MS) {
    return `a timeout reported ${formatDuration(observedMs)} after the claim, before the time limit of ${formatDuration(timeoutMs)}`;
  }
  return null;
}

/** Longest failure message the protocol accepts (FailureSchema.message), UTF-16 code units. */
export const MAX_FAILURE_MESSAGE = 4096;

/** `message` cut to MAX_FAILURE_MESSAGE (ending in `…` when cut), so stored failures always parse again. */
export function clampFailureMessage(message: string): string {
  return message.length <= MAX_FAILURE_MESSAGE ? message : `${message.slice(0, MAX_FAILURE_MESSAGE - 1)}…`;
}

/**
 * A failure of `reason` with the specific `detail` (what the agent or the coordinator saw, e.g. "exit 137 after
 * 2.1 s"); its blame comes from the catalogue. The general words are not repeated in the message: readers add
 * them with failureText.
 */
export function failureOf(reason: FailureReason, detail: string): Failure {
  return { reason, blame: FAILURES[reason].blame, message: clampFailureMessage(detail) };
}

/**
 * A failure for a person: the catalogue's words, the detail, and what to change. `style` picks how the fix is
 * named: `flag` (the CLI: `--memory`), `field` (the API and spec files: `resources.memoryMb`), `plain` (the
 * dashboard: only how), or `none` (no advice).
 * `alreadyTried`: the job already has what the fix would change (e.g. it had network access), so no advice.
 */
export function failureText(
  f: Pick<Failure, 'reason' | 'message'>,
  style: 'flag' | 'field' | 'plain' | 'none' = 'none',
  alreadyTried = false,
): string {
  const m = meaningOf(f.reason);
  const detail = f.message && f.message !== f.reason && f.message !== m.words ? ` — ${f.message}` : '';
  const named = style === 'flag' ? ` (${m.fix?.flag})` : style === 'field' ? ` (${m.fix?.field})` : '';
  const fix = m.fix && style !== 'none' && !alreadyTried ? `; ${m.fix.how}${named}` : '';
  return `${m.words}${detail}${fix}`;
}

/** How a task's failure is billed, in words: "caused by the job: charged", "caused by providers: not charged" … */
export function chargeText(f: Pick<Failure, 'reason' | 'blame'>): string {
  const m = meaningOf(f.reason);
  const who =
    f.blame === 'job' ? 'caused by the job' : f.blame === 'provider' ? 'caused by providers' : 'nobody at fault';
  return `${who}: ${f.blame === 'job' || m.charged ? 'charged' : 'not charged'}`;
}
