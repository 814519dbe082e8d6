/**
 * Maps API and validation errors to the form fields they name. The API's validation errors carry
 * `details: [{path, message}]` (dotted paths such as `resources.memoryMb`); so do protocol schema checks here.
 */
import type { z } from 'zod';
import { fieldIssues } from '../../src/protocol/index.js';
import { ApiError } from './api.js';

/** Field path → message; `''` holds a message that names no field of the form. */
export type FieldErrors = Record<string, string>;

/** Field errors of an error from the API (or any error: its message goes under `''`). */
export function fieldErrorsOf(err: unknown, known: readonly string[]): FieldErrors {
  const out: FieldErrors = {};
  if (err instanceof ApiError && Array.isArray(err.details)) {
    for (const d of err.details as Array<{ path?: unknown; message?: unknown }>) {
      const path = d?.path;
      const message = d?.message;
      if (typeof path !== 'string' || typeof message !== 'string') continue;
      const field = known.find((k) => path === k || path.startsWith(`${k}.`));
      if (field && !out[field]) out[field] = message;
    }
  }
  if (Object.keys(out).length === 0 && err) out[''] = err instanceof Error ? err.message : String(err);
  return out;
}

/** Field errors of a failed zod parse (the protocol's own schema, checked before calling the API). */
export function fieldErrorsOfZod(err: z.ZodError, known: readonly string[]): FieldErrors {
  const out: FieldErrors = {};
  for (const i of fieldIssues(err)) {
    const field = known.find((k) => i.path === k || i.path.startsWith(`${k}.`));
    const key = field ?? '';
    if (!out[key]) out[key] = field ? i.message : `${i.path}: ${i.message}`;
  }
  return out;
}
