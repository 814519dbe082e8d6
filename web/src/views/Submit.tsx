/**
 * Submit a container job: image, command, resources, input files, verification (replicas/quorum or adaptive) and
 * maximum prices. The spec is checked with the protocol's schema as you type, quoted by the coordinator, and
 * can be submitted only when the quote says the balance covers the escrow (budget check).
 */
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { JobSpecSchema, type JobSpecInput, type Quote } from '../../../src/protocol/index.js';
import { ApiError } from '../api.js';
import { useSession } from '../session-context.js';
import { Card, Facts, TableWrap } from '../components/bits.js';
import { Field } from '../components/Field.js';
import { splitCommand } from '../command.js';
import { fieldErrorsOf, fieldErrorsOfZod, type FieldErrors } from '../field-errors.js';
import { formatDecimalCredits } from '../../../src/core/index.js';

const FIELDS = [
  'name',
  'image',
  'command',
  'resources.cpus',
  'resources.memoryMb',
  'resources.timeoutSeconds',
  'inputs',
  'verification.mode',
  'verification.replicas',
  'verification.quorum',
  'maxPrice.cpuHour',
  'maxPrice.memoryGiBHour',
  'maxPrice.startFee',
] as const;

type Form = Record<(typeof FIELDS)[number], string>;
const INITIAL: Form = {
  name: '',
  image: 'deqo/busybox:test',
  command: 'sh -c "echo hello > /outputs/hello.txt; echo done"',
  'resources.cpus': '1',
  'resources.memoryMb': '256',
  'resources.timeoutSeconds': '120',
  inputs: '',
  'verification.mode': 'replicate',
  'verification.replicas': '2',
  'verification.quorum': '2',
  'maxPrice.cpuHour': '0.1',
  'maxPrice.memoryGiBHour': '0.01',
  'maxPrice.startFee': '0.002',
};

const num = (s: string) => (s.trim() === '' ? undefined : Number(s));

/** Turns the form into a job spec (inputs added at submit, after upload); throws field errors it can name. */
export function specOf(f: Form): JobSpecInput {
  let command: string[];
  try {
    command = splitCommand(f.command);
  } catch (e) {
    throw new ApiError(400, 'validation_failed', (e as Error).message, [
      { path: 'command', message: (e as Error).message },
    ]);
  }
  const mode = f['verification.mode'] as 'none' | 'replicate' | 'adaptive';
  return {
    ...(f.name.trim() ? { name: f.name.trim() } : {}),
    image: f.image.trim(),
    command,
    resources: {
      cpus: num(f['resources.cpus']),
      memoryMb: num(f['resources.memoryMb']),
      timeoutSeconds: num(f['resources.timeoutSeconds']),
    },
    verification:
      mode === 'none'
        ? { mode, replicas: 1, quorum: 1 }
        : { mode, replicas: num(f['verification.replicas']), quorum: num(f['verification.quorum']) },
    maxPrice: {
      cpuHour: num(f['maxPrice.cpuHour']),
      memoryGiBHour: num(f['maxPrice.memoryGiBHour']),
      startFee: num(f['maxPrice.startFee']),
    },
  } as JobSpecInput;
}

function QuoteCard({ quote }: { quote: Quote }) {
  return (
    <Card title="Quote">
      <Facts
        items={[
          ['held in escrow at submission', formatDecimalCredits(quote.escrow)],
          ['your balance', formatDecimalCredits(quote.balance)],
          ['budget', quote.affordable ? 'covered' : `short by ${formatDecimalCredits(quote.shortfall)}`],
          ['providers that match now', String(quote.matchingProviders)],
        ]}
      />
      <TableWrap label="Cost per verification mode">
        <table>
          <thead>
            <tr>
              <th>mode</th>
              <th>executions per task</th>
              <th>expected cost</th>
              <th>most it can cost</th>
            </tr>
          </thead>
          <tbody>
            {quote.modes.map((m) => (
              <tr key={m.mode} className={m.mode === quote.mode ? 'selected' : ''}>
                <td>{m.mode}</td>
                <td>{m.executionsPerTask}</td>
                <td>{formatDecimalCredits(m.expectedCost)}</td>
                <td>{formatDecimalCredits(m.maxCost)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      {quote.matchingProviders === 0 && (
        <p className="warn">No provider matches right now: the job would wait in the queue.</p>
      )}
    </Card>
  );
}

/** The submit view. */
export function Submit() {
  const { api } = useSession();
  const [form, setForm] = useState<Form>(INITIAL);
  const [files, setFiles] = useState<File[]>([]);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [quote, setQuote] = useState<Quote | null>(null);
  const [busy, setBusy] = useState(false);
  const set = (k: keyof Form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));
  const built = useMemo(() => {
    try {
      const spec = specOf(form);
      const r = JobSpecSchema.safeParse(spec);
      return r.success ? { spec, errors: {} } : { spec: null, errors: fieldErrorsOfZod(r.error, FIELDS) };
    } catch (e) {
      return { spec: null, errors: fieldErrorsOf(e, FIELDS) };
    }
  }, [form]);
  // Quote as you type (debounced), when the spec is valid.
  useEffect(() => {
    setErrors(built.errors);
    setQuote(null);
    if (!built.spec) return;
    const spec = built.spec;
    const t = setTimeout(() => {
      api.client.quote(spec).then(setQuote, (e) => setErrors(fieldErrorsOf(e, FIELDS)));
    }, 300);
    return () => clearTimeout(t);
  }, [built, api]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!built.spec || !quote?.affordable) return;
    setBusy(true);
    try {
      const inputs = [];
      for (const f of files) inputs.push({ path: f.name, blob: (await api.uploadBlob(f)).sha256 });
      const { jobId } = await api.client.submitJob({ ...built.spec, inputs });
      window.location.hash = `#/jobs/${jobId}`;
    } catch (err) {
      const fe = fieldErrorsOf(err, FIELDS);
      if (err instanceof ApiError && err.code === 'insufficient_funds') fe[''] = `Not enough credits: ${err.message}`;
      setErrors(fe);
    } finally {
      setBusy(false);
    }
  };
  const noneMode = form['verification.mode'] === 'none';
  return (
    <>
      <h1>Submit a job</h1>
      <form className="grid-2" onSubmit={submit} noValidate aria-label="Submit a container job">
        <div>
          <Card title="Container">
            <Field label="Name (optional)" error={errors.name}>
              <input value={form.name} onChange={set('name')} />
            </Field>
            <Field label="Image" error={errors.image} hint="A Docker image reference, e.g. python:3.12">
              <input value={form.image} onChange={set('image')} />
            </Field>
            <Field
              label="Command"
              error={errors.command}
              hint="Split like a shell (quotes work, no expansion). Write outputs to /outputs."
            >
              <input value={form.command} onChange={set('command')} />
            </Field>
            <Field label="Input files" error={errors.inputs} hint="Each appears read-only under /inputs/<file name>.">
              <input type="file" multiple onChange={(e) => setFiles([...(e.target.files ?? [])])} />
            </Field>
          </Card>
          <Card title="Resources">
            <div className="row">
              <Field label="CPU cores" error={errors['resources.cpus']}>
                <input
                  type="number"
                  step="0.5"
                  min="0.1"
                  value={form['resources.cpus']}
                  onChange={set('resources.cpus')}
                />
              </Field>
              <Field label="Memory (MiB)" error={errors['resources.memoryMb']}>
                <input type="number" min="16" value={form['resources.memoryMb']} onChange={set('resources.memoryMb')} />
              </Field>
              <Field label="Time limit (s)" error={errors['resources.timeoutSeconds']}>
                <input
                  type="number"
                  min="1"
                  value={form['resources.timeoutSeconds']}
                  onChange={set('resources.timeoutSeconds')}
                />
              </Field>
            </div>
          </Card>
        </div>
        <div>
          <Card title="Verification">
            <Field
              label="Mode"
              error={errors['verification.mode']}
              hint="replicate: run on several providers and accept when enough agree; adaptive: trusted providers may run alone."
            >
              <select value={form['verification.mode']} onChange={set('verification.mode')}>
                <option value="replicate">replicate</option>
                <option value="adaptive">adaptive</option>
                <option value="none">none (trust one run)</option>
              </select>
            </Field>
            {!noneMode && (
              <div className="row">
                <Field label="Replicas" error={errors['verification.replicas']}>
                  <input
                    type="number"
                    min="1"
                    max="16"
                    value={form['verification.replicas']}
                    onChange={set('verification.replicas')}
                  />
                </Field>
                <Field label="Quorum" error={errors['verification.quorum']}>
                  <input
                    type="number"
                    min="1"
                    max="16"
                    value={form['verification.quorum']}
                    onChange={set('verification.quorum')}
                  />
                </Field>
              </div>
            )}
          </Card>
          <Card title="Maximum prices (credits)">
            <div className="row">
              <Field label="per CPU-hour" error={errors['maxPrice.cpuHour']}>
                <input
                  type="number"
                  step="0.01"
                  min="0"
                  value={form['maxPrice.cpuHour']}
                  onChange={set('maxPrice.cpuHour')}
                />
              </Field>
              <Field label="per GiB-hour" error={errors['maxPrice.memoryGiBHour']}>
                <input
                  type="number"
                  step="0.001"
                  min="0"
                  value={form['maxPrice.memoryGiBHour']}
                  onChange={set('maxPrice.memoryGiBHour')}
                />
              </Field>
              <Field label="start fee" error={errors['maxPrice.startFee']}>
                <input
                  type="number"
                  step="0.001"
                  min="0"
                  value={form['maxPrice.startFee']}
                  onChange={set('maxPrice.startFee')}
                />
              </Field>
            </div>
          </Card>
          {quote ? (
            <QuoteCard quote={quote} />
          ) : (
            <p className="muted">{built.spec ? 'Quoting…' : 'Fix the fields marked above to see a quote.'}</p>
          )}
          {errors[''] && (
            <p className="error-note" role="alert">
              {errors['']}
            </p>
          )}
          <button type="submit" disabled={busy || !quote || !quote.affordable}>
            {busy ? 'Submitting…' : quote && !quote.affordable ? 'Not enough credits' : 'Submit job'}
          </button>
        </div>
      </form>
    </>
  );
}
