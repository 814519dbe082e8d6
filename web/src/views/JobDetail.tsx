/**
 * Job detail: tasks and their executions per provider, the verification outcome (who agreed, who was outvoted),
 * live logs while running, failure reasons in plain words, verified outputs to download, and the money.
 */
import { useState } from 'react';
import type { ExecutionView, JobView, TaskView } from '../../../src/protocol/index.js';
import { useSession } from '../session-context.js';
import { Card, ErrorNote, Facts, StateBadge, TableWrap } from '../components/bits.js';
import { LogView } from '../components/LogView.js';
import { saveBlob } from '../download.js';
import { formatDecimalCredits, formatDuration, TERMINAL_JOB_STATES } from '../../../src/core/index.js';
import { failureText, short, when } from '../format.js';
import { useLoad } from '../hooks.js';
import { useRefreshTick } from '../live.js';

const ended = (v: JobView) => TERMINAL_JOB_STATES.includes(v.state);

/** A verified task's re-verification (its result rested on a provider later caught lying), in one sentence. */
const AUDIT_TEXT: Record<NonNullable<TaskView['audit']>, string> = {
  pending: 'Being re-verified: a provider this result rested on was caught lying; other providers are re-running it.',
  confirmed: 'Re-verified: a provider this result rested on was caught lying, and other providers confirmed it.',
  changed:
    'Re-verified and replaced: a provider this result rested on was caught lying, the result was wrong, and other ' +
    'providers’ agreeing result replaced it (what was paid for the wrong one was refunded to you).',
  inconclusive: 'Re-verification was inconclusive: the result stands, but could not be confirmed.',
};

/** A job's determinism probe (verification.checkDeterminism), in a few words. */
const PROBE_WORDS: Record<NonNullable<JobView['probe']>, string> = {
  pending: 'running: task 0 runs twice on one provider before the tasks are placed',
  passed: 'passed: the two runs agreed',
  failed: 'failed: the two runs differed (see the task)',
  cancelled: 'cancelled with the job',
};

/** What verification decided for a task, in one sentence. */
export function verdict(t: TaskView): string {
  const names = (xs: ExecutionView[]) => xs.map((e) => e.agentName).join(' + ');
  const valid = t.executions.filter((e) => e.state === 'valid');
  const invalid = t.executions.filter((e) => e.state === 'invalid');
  if (t.state === 'verified' && t.audit) return AUDIT_TEXT[t.audit];
  if (t.state === 'verified') {
    return (
      `Verified: ${valid.length > 1 ? `${names(valid)} agreed` : valid.length === 1 ? `${names(valid)} ran it (no cross-check)` : 'accepted'}` +
      `${invalid.length ? `; ${names(invalid)} ${invalid.length > 1 ? 'were' : 'was'} outvoted` : ''}.`
    );
  }
  if (t.state === 'failed') return `Failed: ${failureText(t.failure)}.`;
  if (t.state === 'cancelled') return 'Cancelled.';
  const reported = t.executions.filter((e) => e.state === 'reported').length;
  return reported
    ? `Waiting for agreement: ${reported} result(s) in, ${t.targetReplicas} wanted.`
    : 'Waiting for results.';
}

function ExecutionRow({
  e,
  jobId,
  open,
  onToggle,
}: {
  e: ExecutionView;
  jobId: string;
  open: boolean;
  onToggle: () => void;
}) {
  const { api } = useSession();
  const running = e.state === 'running' || e.state === 'assigned';
  return (
    <>
      <tr data-execution={e.id}>
        <td>{e.agentName}</td>
        <td>
          <StateBadge state={e.state} />
        </td>
        <td>{e.exitCode ?? '—'}</td>
        <td title={e.resultHash ?? ''}>
          <code>{short(e.resultHash, 12)}</code>
        </td>
        <td>
          {e.usage
            ? formatDuration(e.usage.wallMs)
            : e.startedAt
              ? `${formatDuration(Date.now() - e.startedAt)} so far`
              : '—'}
        </td>
        <td>{e.paid === null ? '—' : formatDecimalCredits(e.paid)}</td>
        <td>{e.failure ? failureText(e.failure) : ''}</td>
        <td>
          <button type="button" className="link" aria-expanded={open} onClick={onToggle}>
            {open ? 'hide logs' : 'logs'}
          </button>
        </td>
      </tr>
      {open && (
        <tr>
          <td colSpan={8}>
            <LogView
              api={api}
              label={`Logs of ${e.agentName}`}
              src={{ jobId, executionId: e.id, running, stdoutBlob: e.stdoutBlob, stderrBlob: e.stderrBlob }}
            />
          </td>
        </tr>
      )}
    </>
  );
}

function TaskCard({ t, job }: { t: TaskView; job: JobView }) {
  const [open, setOpen] = useState<Record<string, boolean>>({});
  const isOpen = (e: ExecutionView) => open[e.id] ?? (e.state === 'running' && job.tasks.length === 1);
  const params = Object.entries(t.params)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  return (
    <Card title={`Task ${t.index}${params ? ` (${params})` : ''}`} actions={<StateBadge state={t.state} />}>
      <p className={t.state === 'failed' ? 'bad' : ''} data-verdict={t.index}>
        {verdict(t)}
      </p>
      <TableWrap label={`Executions of task ${t.index}`}>
        <table>
          <thead>
            <tr>
              <th>provider</th>
              <th>state</th>
              <th>exit</th>
              <th>result hash</th>
              <th>time</th>
              <th>paid</th>
              <th>why</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {t.executions.map((e) => (
              <ExecutionRow
                key={e.id}
                e={e}
                jobId={job.id}
                open={isOpen(e)}
                onToggle={() => setOpen((o) => ({ ...o, [e.id]: !isOpen(e) }))}
              />
            ))}
          </tbody>
        </table>
      </TableWrap>
    </Card>
  );
}

function Results({ job }: { job: JobView }) {
  const { api } = useSession();
  const [error, setError] = useState<string>();
  const results = useLoad(() => api.client.getResults(job.id), [job.state]);
  const verified = results.data?.tasks.filter((t) => t.state === 'verified') ?? [];
  const save = (sha: string, name: string) => {
    setError(undefined);
    saveBlob(api, sha, name).catch((e: Error) => setError(e.message));
  };
  return (
    <Card title="Verified outputs">
      <ErrorNote error={results.error} what="the results" />
      {verified.length === 0 && (
        <p className="muted">{ended(job) ? 'No task was verified.' : 'Outputs appear here once tasks are verified.'}</p>
      )}
      <ul className="downloads">
        {verified.map((t) => (
          <li key={t.taskIndex}>
            <span>
              Task {t.taskIndex}: {t.manifest?.files.length ?? 0} file(s), agreed by{' '}
              {t.agreedBy.map((a) => a.agentName).join(' + ')}
            </span>
            {t.outputsBlob && (
              <button
                type="button"
                onClick={() => save(t.outputsBlob!, `${job.id}-task-${t.taskIndex}-outputs.tar.gz`)}
              >
                Download outputs of task {t.taskIndex}
              </button>
            )}
            {t.stdoutBlob && (
              <button
                type="button"
                className="secondary"
                onClick={() => save(t.stdoutBlob!, `${job.id}-task-${t.taskIndex}-stdout.txt`)}
              >
                stdout
              </button>
            )}
          </li>
        ))}
      </ul>
      {error && (
        <p className="error-note" role="alert">
          Download failed: {error}
        </p>
      )}
    </Card>
  );
}

/** The job detail view of `jobId`. */
export function JobDetail({ jobId }: { jobId: string }) {
  const { api } = useSession();
  const tick = useRefreshTick((e) => (e.type === 'job' || e.type === 'execution') && e.data.jobId === jobId);
  const job = useLoad(() => api.client.getJob(jobId), [jobId, tick]);
  const explain = useLoad(
    async () => (job.data?.state === 'queued' ? api.client.explain(jobId) : null),
    [job.data?.state, tick],
  );
  const [cancelError, setCancelError] = useState<string>();
  const v = job.data;
  if (!v)
    return (
      <>
        <h1>Job {jobId}</h1>
        <ErrorNote error={job.error} what="this job" />
        {!job.error && <p className="muted">Loading…</p>}
      </>
    );
  const b = v.billing;
  const cancel = () => api.client.cancelJob(jobId).then(job.reload, (e: Error) => setCancelError(e.message));
  return (
    <>
      <h1>
        {v.name ?? 'Job'}{' '}
        <small className="muted" title={v.id}>
          {v.id}
        </small>{' '}
        <StateBadge state={v.state} />
      </h1>
      {!ended(v) && (
        <p>
          <button type="button" className="danger" onClick={cancel}>
            Cancel job
          </button>
          {cancelError && (
            <span className="error-note" role="alert">
              {' '}
              {cancelError}
            </span>
          )}
        </p>
      )}
      <div className="grid-2">
        <Card title="Job">
          <Facts
            items={[
              ['image', <code key="i">{v.spec.image}</code>],
              [
                'command',
                <code key="c">
                  {v.spec.command.map((a) => (/[\s'"]/.test(a) || a === '' ? JSON.stringify(a) : a)).join(' ')}
                </code>,
              ],
              [
                'resources',
                `${v.spec.resources.cpus} CPU, ${v.spec.resources.memoryMb} MiB, ${v.spec.resources.timeoutSeconds} s limit`,
              ],
              [
                'verification',
                v.spec.verification.mode === 'none'
                  ? 'none (one execution, trusted)'
                  : `${v.spec.verification.mode}: ${v.spec.verification.quorum} of ${v.spec.verification.replicas} must agree`,
              ],
              ...(v.probe ? [['determinism probe', PROBE_WORDS[v.probe]] as [string, string]] : []),
              ['submitted', when(v.createdAt)],
              [
                'finished',
                v.finishedAt ? `${when(v.finishedAt)} (${formatDuration(v.finishedAt - v.createdAt)})` : '—',
              ],
            ]}
          />
        </Card>
        <Card title="Money">
          <Facts
            items={[
              ['held in escrow', formatDecimalCredits(b.escrowHeld)],
              ['paid to providers', formatDecimalCredits(b.paid)],
              ['fees', formatDecimalCredits(b.fees)],
              ['refunded to you', formatDecimalCredits(b.refunded)],
              ['still in escrow', formatDecimalCredits(b.inEscrow)],
              ['settled', b.settled ? 'yes' : 'not yet'],
            ]}
          />
        </Card>
      </div>
      {explain.data && (
        <Card title="Why it waits">
          <p>{explain.data.summary}</p>
        </Card>
      )}
      {v.history.length > 0 && (
        <Card title="History">
          <ul className="history">
            {v.history.map((h, i) => (
              <li key={i} data-history={h.kind}>
                <span className="muted small">{when(h.at)}</span> {h.message}
              </li>
            ))}
          </ul>
        </Card>
      )}
      {v.tasks.map((t) => (
        <TaskCard key={t.id} t={t} job={v} />
      ))}
      {v.taskPage.total > v.tasks.length && (
        <p className="muted small" data-testid="task-page">
          showing tasks {v.taskPage.offset + 1}–{v.taskPage.offset + v.tasks.length} of {v.taskPage.total} (
          {v.taskCounts.verified} verified, {v.taskCounts.failed} failed); the CLI pages through the rest: deqo status{' '}
          {v.id} --page 2
        </p>
      )}
      <Results job={v} />
    </>
  );
}
