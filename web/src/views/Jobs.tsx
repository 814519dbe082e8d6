/** Buyer Jobs: the live list of the buyer's jobs with state, replicas, verification and cost so far; filter by state. */
import { useRef, useState } from 'react';
import { JobStateSchema, type JobState, type JobView } from '../../../src/protocol/index.js';
import { useSession } from '../session-context.js';
import { Card, ErrorNote, StateBadge, TableWrap } from '../components/bits.js';
import { Field } from '../components/Field.js';
import { formatDecimalCredits, TERMINAL_JOB_STATES } from '../../../src/core/index.js';
import { short, when } from '../format.js';
import { useLoad } from '../hooks.js';
import { useRefreshTick } from '../live.js';

/** Jobs that will not change any more (their views are cached). */
const done = (v: JobView) => TERMINAL_JOB_STATES.includes(v.state) && v.billing.settled;

/** The jobs view. */
export function Jobs() {
  const { api } = useSession();
  const [state, setState] = useState<JobState | ''>('');
  const tick = useRefreshTick((e) => e.type === 'job' || e.type === 'execution');
  const views = useRef(new Map<string, JobView>());
  const jobs = useLoad(async () => {
    const list = await api.client.listJobs({ ...(state ? { state } : {}), limit: 100 });
    await Promise.all(
      list.slice(0, 30).map(async (j) => {
        const cached = views.current.get(j.id);
        if (!cached || !done(cached)) views.current.set(j.id, await api.client.getJob(j.id));
      }),
    );
    return list;
  }, [state, tick]);
  return (
    <>
      <h1>Jobs</h1>
      <Card
        title="Your jobs"
        actions={
          <a className="button" href="#/submit">
            Submit a job
          </a>
        }
      >
        <div className="filters">
          <Field label="State">
            <select value={state} onChange={(e) => setState(e.target.value as JobState | '')}>
              <option value="">all</option>
              {JobStateSchema.options.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </Field>
        </div>
        <ErrorNote error={jobs.error} what="your jobs" />
        {jobs.data?.length === 0 && <p className="muted">No jobs{state ? ` in state ${state}` : ''} yet.</p>}
        {jobs.data && jobs.data.length > 0 && (
          <TableWrap label="Jobs">
            <table>
              <thead>
                <tr>
                  <th>job</th>
                  <th>state</th>
                  <th>tasks verified</th>
                  <th>replicas</th>
                  <th>verification</th>
                  <th>cost so far</th>
                  <th>submitted</th>
                </tr>
              </thead>
              <tbody>
                {jobs.data.map((j) => {
                  const v = views.current.get(j.id);
                  const ver = v?.spec.verification;
                  const running =
                    v?.tasks.flatMap((t) => t.executions).filter((e) => e.state === 'running').length ?? 0;
                  return (
                    <tr key={j.id} data-job={j.id}>
                      <td>
                        <a href={`#/jobs/${j.id}`} title={j.id}>
                          {j.name ?? short(j.id, 14)}
                        </a>
                        <div className="muted small">{j.image}</div>
                      </td>
                      <td>
                        <StateBadge state={j.state} />
                      </td>
                      <td>
                        {j.tasks.verified}/{j.tasks.total}
                        {j.tasks.failed > 0 && <span className="bad"> ({j.tasks.failed} failed)</span>}
                      </td>
                      <td>{ver ? `${ver.replicas}${running ? ` (${running} running)` : ''}` : '—'}</td>
                      <td>
                        {ver
                          ? ver.mode === 'none'
                            ? 'none'
                            : `${ver.mode}, ${ver.quorum} of ${ver.replicas} agree`
                          : '—'}
                      </td>
                      <td>
                        {v ? formatDecimalCredits(v.billing.paid + v.billing.fees) : '—'}
                        {v && !v.billing.settled && (
                          <div className="muted small">{formatDecimalCredits(v.billing.inEscrow)} in escrow</div>
                        )}
                      </td>
                      <td>{when(j.createdAt)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </TableWrap>
        )}
      </Card>
    </>
  );
}
