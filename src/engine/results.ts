/**
 * A job's verified results for its buyer: per task, the canonical execution's outputs, logs and manifest (core's
 * canonicalExecution picks it), and who agreed.
 */
import { canonicalExecution } from '../core/index.js';
import type { JobResults, TaskResult } from '../protocol/index.js';
import type { Store } from '../store/index.js';

/** The results of a job the buyer owns, or null when it is missing or not the buyer's. */
export async function jobResults(store: Store, jobId: string, buyerId: string): Promise<JobResults | null> {
  const view = await store.views.jobView(jobId, buyerId);
  if (!view) return null;
  const manifests = await store.views.validManifests(jobId);
  const tasks = view.tasks.map((t): TaskResult => {
    const valid = t.executions.filter((e) => e.state === 'valid');
    const canonical =
      t.state === 'verified'
        ? canonicalExecution(valid.map((e) => ({ ...e, reportedAt: e.finishedAt ?? e.createdAt })))
        : null;
    const first = valid[0];
    return {
      taskIndex: t.index,
      params: t.params,
      state: t.state,
      resultHash: t.resultHash,
      failure: t.failure,
      manifest: canonical ? (manifests.get(canonical.id) ?? null) : null,
      outputsBlob: canonical?.outputsBlob ?? null,
      stdoutBlob: canonical?.stdoutBlob ?? first?.stdoutBlob ?? null,
      stderrBlob: canonical?.stderrBlob ?? first?.stderrBlob ?? null,
      agreedBy: valid.map((e) => ({ agentId: e.agentId, agentName: e.agentName, providerId: e.providerId })),
    };
  });
  return { jobId, state: view.state, tasks };
}
