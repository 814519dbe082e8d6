/**
 * The error catalogue: every error the system reports has a code from here, an HTTP status, whether a retry
 * can help, and a message that says what to do. API errors serialize as `{error: {code, message, details}}`.
 */

/** Catalogue entries: HTTP status and retryability per code. */
export const ERROR_CATALOGUE = {
  validation_failed: { status: 400, retryable: false },
  unauthorized: { status: 401, retryable: false },
  insufficient_funds: { status: 402, retryable: false },
  forbidden: { status: 403, retryable: false },
  not_found: { status: 404, retryable: false },
  conflict: { status: 409, retryable: true },
  stale_lease: { status: 409, retryable: false },
  invalid_state: { status: 409, retryable: false },
  payload_too_large: { status: 413, retryable: false },
  unsupported_media_type: { status: 415, retryable: false },
  digest_mismatch: { status: 422, retryable: false },
  /** A report of something the coordinator did not observe (e.g. a timeout before the time limit). */
  implausible_report: { status: 422, retryable: false },
  /** Too many requests of one kind from one source in a window (e.g. failed authentications); wait Retry-After. */
  rate_limited: { status: 429, retryable: true },
  /** An account's quota (open event streams, queued tasks, stored blob bytes) is used up; see details.limit. */
  quota_exceeded: { status: 429, retryable: false },
  internal: { status: 500, retryable: true },
  unavailable: { status: 503, retryable: true },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/**
 * A classified error. `details` is JSON-safe context (e.g. the list of field issues). `retryAfterSec`, when set,
 * is how long the caller should wait before trying again, whole seconds (the HTTP layer sends it as Retry-After).
 */
export class DeqoError extends Error {
  override readonly name = 'DeqoError';
  readonly status: number;
  readonly retryable: boolean;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly retryAfterSec?: number,
  ) {
    super(message);
    this.status = ERROR_CATALOGUE[code].status;
    this.retryable = ERROR_CATALOGUE[code].retryable;
  }
  /** The API body for this error. */
  toBody(): { error: { code: string; message: string; details?: unknown; retryable: boolean } } {
    return { error: { code: this.code, message: this.message, details: this.details, retryable: this.retryable } };
  }
}

/** Shorthand constructors for the common cases. */
export const errors = {
  notFound: (what: string, id: string) => new DeqoError('not_found', `${what} ${id} does not exist (or is not yours)`),
  staleLease: (executionId: string) =>
    new DeqoError(
      'stale_lease',
      `the lease on execution ${executionId} is no longer held (expired, reassigned or already reported); drop this execution`,
    ),
  invalidState: (what: string, id: string, state: string, wanted: string) =>
    new DeqoError('invalid_state', `${what} ${id} is ${state}; this needs it to be ${wanted}`),
};
