/** Shared plumbing for commands: global flags and turning errors into one stderr line + exit code. */
import type { Command } from 'commander';
import { ApiError } from '../client/index.js';
import { CliError, EXIT, exitCodeForApiError } from './exit-codes.js';
import type { Env, GlobalOptions } from './settings.js';
import { terminalLine } from './terminal.js';

/** What every command gets: the environment read once at start. */
export interface CliContext {
  env: Readonly<Env>;
}

/** Global flags (inherited by subcommands through optsWithGlobals). */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** Wraps an action so errors print one clear line (plus field details) and exit with the documented code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? EXIT.OK;
    } catch (err) {
      process.exitCode = reportError(err);
    }
  };
}

/** Prints an error for a person (terminal-safe: messages may quote what others wrote) and returns its exit code. */
export function reportError(err: unknown): number {
  if (err instanceof ApiError) {
    process.stderr.write(`error: ${terminalLine(err.message)}${err.code !== 'unreachable' ? ` [${err.code}]` : ''}\n`);
    if (Array.isArray(err.details)) {
      for (const d of err.details as Array<{ path?: string; message?: string }>)
        process.stderr.write(`  ${terminalLine(d.path ?? '')}: ${terminalLine(d.message ?? '')}\n`);
    }
    if (err.retryAfterSec !== undefined)
      process.stderr.write(`  the coordinator asks to wait ${formatWait(err.retryAfterSec)} before trying again\n`);
    return exitCodeForApiError(err.code);
  }
  if (err instanceof CliError) {
    process.stderr.write(`error: ${terminalLine(err.message)}\n`);
    return err.exitCode;
  }
  process.stderr.write(`error: ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT.INTERNAL;
}

/** A wait in seconds for a person: `45 s`, `3 min`, `2 h`. */
export function formatWait(sec: number): string {
  if (sec < 120) return `${sec} s`;
  if (sec < 7200) return `${Math.ceil(sec / 60)} min`;
  return `${Math.ceil(sec / 3600)} h`;
}
