/** The JSON error body every API error uses: `{error: {code, message, details}}`. */
import { z } from 'zod';

export const ErrorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.unknown().optional(),
    retryable: z.boolean().optional(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** One field problem in a validation error: dotted path and what was expected. */
export interface FieldIssue {
  path: string;
  message: string;
}

/**
 * Turns zod issues into `{path, message}` pairs naming the field, e.g. `resources.memoryMb`; an issue on the
 * value itself is named `root` (e.g. the name of a path parameter).
 */
export function fieldIssues(err: z.ZodError, root = '(body)'): FieldIssue[] {
  return err.issues.map((i) => ({ path: i.path.map(String).join('.') || root, message: i.message }));
}
