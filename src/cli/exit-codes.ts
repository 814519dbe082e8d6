/** Exit codes `deqo` guarantees to scripts. */
export const EXIT = {
  OK: 0,
  /** The job ended failed or cancelled (submit --wait, demo). */
  JOB_FAILED: 1,
  /** Bad flags or arguments; bad job spec (validation_failed). */
  USAGE: 2,
  NOT_FOUND: 3,
  /** Missing, unknown or wrong-scope API key. */
  AUTH: 4,
  /** The coordinator could not be reached. */
  UNREACHABLE: 5,
  /** The buyer's credits do not cover the job's escrow (the error names the shortfall). */
  INSUFFICIENT_FUNDS: 6,
  /** A rate limit or quota of the coordinator (429): the message names it and how long to wait. */
  LIMITED: 7,
  /** Something this machine lacks (no Docker engine, image build failed). */
  ENVIRONMENT: 69,
  INTERNAL: 70,
} as const;

/** Exit code for an API error code. */
export function exitCodeForApiError(code: string): number {
  switch (code) {
    case 'validation_failed':
    case 'payload_too_large':
    case 'unsupported_media_type':
      return EXIT.USAGE;
    case 'not_found':
      return EXIT.NOT_FOUND;
    case 'unauthorized':
    case 'forbidden':
      return EXIT.AUTH;
    case 'unreachable':
      return EXIT.UNREACHABLE;
    case 'insufficient_funds':
      return EXIT.INSUFFICIENT_FUNDS;
    case 'rate_limited':
    case 'quota_exceeded':
      return EXIT.LIMITED;
    default:
      return EXIT.INTERNAL;
  }
}

/** An error the CLI reports as one line on stderr and exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
