/**
 * Per-account limits of a coordinator: failed authentications per source address, open event streams, queued
 * tasks and stored blob bytes per account, and how long blobs are kept. The rules here are pure: callers pass what
 * is used and what is asked; an exceeded limit is a DeqoError (429) naming the limit in `details.limit`.
 */
import { DeqoError } from './errors.js';

/** The limits, all per account unless said otherwise. Sizes in bytes, times in ms. */
export interface AccountLimits {
  /** Failed authentications one source address (an IPv6 /64) may make per `authWindowMs` before 429. */
  authFailures: number;
  /** The sliding window of `authFailures`, ms. */
  authWindowMs: number;
  /** Event streams (GET /v1/events) one account may hold open at once, per coordinator. */
  streams: number;
  /** Unfinished tasks (queued or running) one buyer may have across its jobs. */
  queuedTasks: number;
  /** Bytes of stored blobs one account has uploaded. */
  blobBytes: number;
  /** An uploaded blob that no job uses is deleted this long after its last upload, ms. */
  unreferencedBlobTtlMs: number;
  /** A blob a job uses is kept while the job runs and this long after it ended, ms. */
  blobRetentionMs: number;
  /** How often expired blobs are swept, ms. */
  blobSweepMs: number;
}

const HOUR_MS = 3_600_000;

export const DEFAULT_ACCOUNT_LIMITS: Readonly<AccountLimits> = Object.freeze({
  authFailures: 20,
  authWindowMs: 60_000,
  streams: 20,
  queuedTasks: 100_000,
  blobBytes: 20 * 1024 ** 3,
  unreferencedBlobTtlMs: 24 * HOUR_MS,
  blobRetentionMs: 7 * 24 * HOUR_MS,
  blobSweepMs: 10 * 60_000,
});

/** Checks every field is a positive whole number; returns the limits. Throws RangeError naming the field. */
export function checkAccountLimits(l: AccountLimits): AccountLimits {
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v <= 0)
      throw new RangeError(`limits.${k} must be a positive whole number, got ${v}`);
  }
  return l;
}

/** Which limit a quota_exceeded error names (`details.limit`). */
export type QuotaName = 'streams' | 'queuedTasks' | 'blobBytes';

/** The 429 quota_exceeded error of `limit`: `used` + `requested` would pass `max`. */
export function quotaExceeded(
  limit: QuotaName,
  max: number,
  used: number,
  requested: number,
  message: string,
  retryAfterSec: number,
): DeqoError {
  return new DeqoError('quota_exceeded', message, { limit, max, used, requested, retryAfterSec }, retryAfterSec);
}

/** Seconds a buyer over its queued-task quota is told to wait: tasks drain as providers run them. */
export const QUEUED_TASKS_RETRY_AFTER_SEC = 60;

/**
 * Admission of `adding` tasks for a buyer with `open` unfinished tasks. Throws DeqoError quota_exceeded (limit
 * `queuedTasks`) when the sum passes `max`.
 */
export function admitTasks(open: number, adding: number, max: number): void {
  if (open + adding <= max) return;
  throw quotaExceeded(
    'queuedTasks',
    max,
    open,
    adding,
    `this job adds ${adding} task(s) to the ${open} you have queued or running; the limit is ${max} per account. ` +
      'Wait for some to finish, or cancel jobs you no longer need.',
    QUEUED_TASKS_RETRY_AFTER_SEC,
  );
}

/**
 * Room left for an upload by an account that has `used` bytes of stored blobs, of `max`. Throws DeqoError
 * quota_exceeded (limit `blobBytes`) when `declared` bytes (the request's Content-Length, when sent) do not fit
 * or nothing is left; `retryAfterSec`: when space may next be freed (the sweep's period).
 */
export function blobRoom(used: number, declared: number | undefined, max: number, retryAfterSec: number): number {
  const room = max - used;
  if (room > 0 && (declared === undefined || declared <= room)) return room;
  throw blobQuotaExceeded(used, declared ?? 0, max, retryAfterSec);
}

/** The quota_exceeded error of an upload of `requested` bytes by an account holding `used` of `max`. */
export function blobQuotaExceeded(used: number, requested: number, max: number, retryAfterSec: number): DeqoError {
  return quotaExceeded(
    'blobBytes',
    max,
    used,
    requested,
    `your stored blobs take ${used} of the ${max} bytes allowed per account${requested > 0 ? `; this upload adds ${requested}` : ''}. ` +
      'Blobs no job uses are deleted a while after upload, and a job’s blobs some time after it ended.',
    retryAfterSec,
  );
}
