/** Following a job live: one progress line per task whenever its summary changes, until the job ends. */
import type { DeqoClient } from '../client/index.js';
import { TERMINAL_JOB_STATES } from '../core/index.js';
import type { JobView } from '../protocol/index.js';
import { taskLine } from './format.js';

/**
 * Polls the job every `intervalMs` and writes changed task lines to `out` until the job is terminal.
 * Transient errors (coordinator briefly unreachable) are retried. Returns the final view.
 */
export async function followJob(
  client: DeqoClient,
  jobId: string,
  out: (line: string) => void,
  intervalMs = 500,
): Promise<JobView> {
  const last = new Map<number, string>();
  let lastState = '';
  for (;;) {
    let view: JobView;
    try {
      view = await client.getJob(jobId);
    } catch (err) {
      if ((err as { retryable?: boolean }).retryable) {
        await new Promise((r) => setTimeout(r, intervalMs * 2));
        continue;
      }
      throw err;
    }
    const ended = TERMINAL_JOB_STATES.includes(view.state);
    if (view.state !== lastState && !ended) {
      out(`job ${jobId}: ${view.state}`);
      lastState = view.state;
    }
    for (const t of view.tasks) {
      const line = taskLine(t);
      if (last.get(t.index) !== line) {
        out(`  ${line}`);
        last.set(t.index, line);
      }
    }
    if (ended) out(`job ${jobId}: ${view.state}`);
    if (ended) return view;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
