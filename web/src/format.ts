/**
 * Plain-words formatting only the dashboard needs: clock times, short ids, failure reasons. Credits, sizes and
 * durations are core's (formatDecimalCredits, formatBytes, formatDuration), the same text as the CLI's.
 */
import type { FailureReason } from '../../src/protocol/index.js';

/** Epoch ms as local "HH:MM:SS" (today) or "YYYY-MM-DD HH:MM". */
export function when(at: number, now = Date.now()): string {
  const d = new Date(at);
  const pad = (x: number) => String(x).padStart(2, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (new Date(now).toDateString() === d.toDateString()) return `${time}:${pad(d.getSeconds())}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

const REASONS: Record<FailureReason, string> = {
  nonzero_exit: 'the program exited with an error code',
  out_of_memory: 'the program ran out of memory (raise the memory limit)',
  timeout: 'the program ran past its time limit (raise the timeout)',
  image_not_found: 'the container image could not be found on the provider',
  output_too_large: 'the outputs were larger than the output limit',
  requirements_unavailable: 'a required Python module is not available on the provider (no network to install it)',
  input_unavailable: 'an input file could not be fetched',
  agent_error: "the provider's agent hit an error (not your job's fault)",
  lease_expired: 'the provider stopped responding, so the work moved elsewhere',
  not_claimed: 'the provider never picked the work up',
  cancelled: 'it was cancelled',
  no_quorum: 'the providers did not agree on the result',
  too_many_errors: 'too many providers failed to run it',
  queue_timeout: 'no provider took it in time (see which ones match)',
  insufficient_funds: 'there were not enough credits to pay for it',
  owner_returned: "the machine's owner came back, so the work stopped (not charged)",
  agent_restarted: 'the provider restarted and could not finish it',
};

/** A failure reason in plain words, with the coordinator's message when it adds something. */
export function failureText(f: { reason: FailureReason; message: string } | null): string {
  if (!f) return '';
  const plain = REASONS[f.reason] ?? f.reason;
  return f.message && f.message !== f.reason ? `${plain} — ${f.message}` : plain;
}

/** A short id or hash for tables (full value in a title attribute). */
export function short(id: string | null | undefined, n = 10): string {
  return id ? (id.length > n ? `${id.slice(0, n)}…` : id) : '—';
}
