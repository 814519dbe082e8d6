/**
 * A job's verified results for its buyer: per task, the canonical execution's outputs, logs and manifest (core's
 * canonicalExecution picks it), who agreed, and the outputs of every agreeing execution (canonical first), so a
 * download that does not match the manifest can use another copy. A task whose result a re-verification replaced
 * (backtracking, engine/spotchecks.ts) is served from the re-verification's canonical execution.
 */
import { canonicalExecution, resultHashOf } from '../core/index.js';
import type { JobResults, ResultReplica, TaskResult } from '../protocol/index.js';
import type { Store } from '../store/index.js';

/** The results of a job the buyer owns, or null when it is missing or not the buyer's. */
export async function jobResults(store: Store, jobId: string, buyerId: string): Promise<JobResults | null> {
  const view = await store.views.jobView(jobId, buyerId, { offset: 0, limit: Infinity });
  if (!view) return null;
  const manifests = await store.views.validManifests(jobId);
  // A task whose result a re-verification replaced is served from the re-verification's canonical execution.
  const replaced = await store.views.replacedResults(jobId);
  const tasks = view.tasks.map((t): TaskResult => {
    const r = replaced.get(t.id);
    if (r) {
      return {
        taskIndex: t.index,
        params: t.params,
        state: t.state,
        resultHash: t.resultHash,
        failure: t.failure,
        manifest: r.manifest,
        outputsBlob: r.outputsBlob,
        stdoutBlob: r.stdoutBlob,
        stderrBlob: r.stderrBlob,
        agreedBy: [{ agentId: r.agentId, agentName: r.agentName, providerId: r.providerId }],
        replicas: r.outputsBlob
          ? [{ executionId: r.executionId, agentName: r.agentName, outputsBlob: r.outputsBlob }]
          : [],
      };
    }
    const valid = t.executions
      .filter((e) => e.state === 'valid')
      .map((e) => ({ ...e, reportedAt: e.finishedAt ?? e.createdAt }));
    const canonical = t.state === 'verified' ? canonicalExecution(valid) : null;
    const first = valid[0];
    // Every accepted report's outputs were checked against its manifest (engine/outputs.ts); the agreeing ones share
    // the canonical manifest. Canonical first, then in the order they reported.
    // Under a comparator (verification.compare) agreeing results may differ within tolerance: only copies with the
    // canonical manifest can stand in for it.
    const canonicalManifest = canonical ? manifests.get(canonical.id) : undefined;
    const hashOf = (id: string) => {
      const m = manifests.get(id);
      return m ? resultHashOf(m) : null;
    };
    const sameManifest = (id: string) => !canonicalManifest || hashOf(id) === resultHashOf(canonicalManifest);
    const others = valid
      .filter((e) => e !== canonical && sameManifest(e.id))
      .sort((a, b) => a.reportedAt - b.reportedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const replicas: ResultReplica[] = canonical
      ? [canonical, ...others].flatMap((e) =>
          e.outputsBlob ? [{ executionId: e.id, agentName: e.agentName, outputsBlob: e.outputsBlob }] : [],
        )
      : [];
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
      replicas,
    };
  });
  return { jobId, state: view.state, tasks };
}
