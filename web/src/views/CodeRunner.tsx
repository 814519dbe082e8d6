/**
 * Code runner: write Python in CodeMirror, list pip requirements, pick a machine from the catalog (or let Deqo
 * choose), Run — a script job — and watch its output stream in below.
 */
import { useState, type FormEvent } from 'react';
import { useSession } from '../session-context.js';
import { CodeEditor } from '../components/CodeEditor.js';
import { ErrorNote, StateBadge } from '../components/bits.js';
import { Field } from '../components/Field.js';
import { LogView } from '../components/LogView.js';
import { fieldErrorsOf, type FieldErrors } from '../field-errors.js';
import { formatDecimalCredits } from '../../../src/core/index.js';
import { failureText } from '../format.js';
import { useLoad } from '../hooks.js';
import { useRefreshTick } from '../live.js';

const SAMPLE = `import platform

print("hello from Deqo on", platform.machine())
squares = [i * i for i in range(10)]
print("sum of squares:", sum(squares))
`;
const FIELDS = ['script.source', 'script.requirements', 'constraints.providers'] as const;

function RunOutput({ jobId }: { jobId: string }) {
  const { api } = useSession();
  const tick = useRefreshTick((e) => (e.type === 'job' || e.type === 'execution') && e.data.jobId === jobId);
  const job = useLoad(() => api.client.getJob(jobId), [jobId, tick]);
  const v = job.data;
  const task = v?.tasks[0];
  const exec = task?.executions.find((e) => e.state !== 'lost' && e.state !== 'failed') ?? task?.executions.at(-1);
  return (
    <section className="card" aria-label="Output">
      <header className="card-head">
        <h2>Output</h2>
        {v && <StateBadge state={v.state} />}
      </header>
      <ErrorNote error={job.error} what="the run" />
      <p className="muted">
        Job <a href={`#/jobs/${jobId}`}>{jobId}</a>
        {exec ? (
          <>
            {' '}
            running on <strong data-machine>{exec.agentName}</strong>
          </>
        ) : (
          ' waiting for a machine…'
        )}
        {v && v.billing.settled && <> — cost {formatDecimalCredits(v.billing.paid + v.billing.fees)}</>}
      </p>
      {task?.failure && <p className="bad">{failureText(task.failure)}</p>}
      {exec && (
        <LogView
          api={api}
          label="Script output"
          src={{
            jobId,
            executionId: exec.id,
            running: exec.state === 'running' || exec.state === 'assigned',
            stdoutBlob: exec.stdoutBlob,
            stderrBlob: exec.stderrBlob,
          }}
        />
      )}
    </section>
  );
}

/** The code runner view. */
export function CodeRunner() {
  const { api } = useSession();
  const [source, setSource] = useState(SAMPLE);
  const [requirements, setRequirements] = useState('');
  const [machine, setMachine] = useState('');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [jobId, setJobId] = useState<string>();
  const [busy, setBusy] = useState(false);
  const catalog = useLoad(() => api.client.listProviders({ online: true, sort: 'price' }), []);
  const run = async (e: FormEvent) => {
    e.preventDefault();
    if (!source.trim()) {
      setErrors({ 'script.source': 'Write some Python first.' });
      return;
    }
    setBusy(true);
    setErrors({});
    try {
      const res = await api.submitScript({
        script: {
          language: 'python',
          source,
          requirements: requirements
            .split('\n')
            .map((r) => r.trim())
            .filter(Boolean),
        },
        ...(machine ? { constraints: { providers: [machine] } } : {}),
        verification: { mode: 'none', replicas: 1, quorum: 1 },
      });
      setJobId(res.jobId);
    } catch (err) {
      setErrors(fieldErrorsOf(err, FIELDS));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <h1>Code runner</h1>
      <form className="card" onSubmit={run} noValidate aria-label="Run a Python script">
        <div className="field">
          <span className="label" id="code-label">
            Python script
          </span>
          <CodeEditor value={source} onChange={setSource} label="Python script" />
          {errors['script.source'] && (
            <small className="field-error" role="alert">
              {errors['script.source']}
            </small>
          )}
        </div>
        <div className="row">
          <Field
            label="Requirements (one per line, optional)"
            error={errors['script.requirements']}
            hint="pip packages, e.g. numpy==2.1"
          >
            <textarea rows={3} value={requirements} onChange={(e) => setRequirements(e.target.value)} />
          </Field>
          <Field label="Machine" error={errors['constraints.providers']} hint="From the catalog of online machines.">
            <select value={machine} onChange={(e) => setMachine(e.target.value)}>
              <option value="">Let Deqo choose</option>
              {catalog.data?.map((p) => (
                <option key={p.agentId} value={p.agentId}>
                  {p.name} — {p.capacity.cpus} CPU, {p.capacity.memoryMb} MiB,{' '}
                  {formatDecimalCredits(p.offer.prices.cpuHour)}/CPU-h
                </option>
              ))}
            </select>
          </Field>
        </div>
        <ErrorNote error={catalog.error} what="the machines" />
        {errors[''] && (
          <p className="error-note" role="alert">
            {errors['']}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Starting…' : 'Run'}
        </button>
      </form>
      {jobId && <RunOutput key={jobId} jobId={jobId} />}
    </>
  );
}
