/** Network: the provider catalog (filters, sorting), queue depth and throughput over time, recent verifications. */
import { useMemo, useState } from 'react';
import type { CatalogQuery, ProviderView } from '../../../src/protocol/index.js';
import { useSession } from '../session-context.js';
import { Card, ErrorNote, StateBadge, TableWrap } from '../components/bits.js';
import { Chart } from '../components/Chart.js';
import { Field } from '../components/Field.js';
import { fieldErrorsOf } from '../field-errors.js';
import { formatDecimalCredits } from '../../../src/core/index.js';
import { short, when } from '../format.js';
import { useLoad } from '../hooks.js';
import { useLiveEvents, useRefreshTick } from '../live.js';

type Filters = {
  minCpus: string;
  minMemoryMb: string;
  arch: string;
  maxCpuHour: string;
  minReputation: string;
  online: string;
  sort: string;
  order: string;
};
const FILTER_FIELDS = [
  'minCpus',
  'minMemoryMb',
  'arch',
  'maxCpuHour',
  'minReputation',
  'online',
  'sort',
  'order',
] as const;

function Catalog() {
  const { api } = useSession();
  const [f, setF] = useState<Filters>({
    minCpus: '',
    minMemoryMb: '',
    arch: '',
    maxCpuHour: '',
    minReputation: '',
    online: '',
    sort: 'name',
    order: 'asc',
  });
  const tick = useRefreshTick(() => false, 10_000, 10_000);
  const set = (k: keyof Filters) => (e: { target: { value: string } }) => setF((x) => ({ ...x, [k]: e.target.value }));
  const query = Object.fromEntries(Object.entries(f).filter(([, v]) => v !== '')) as Partial<
    Record<keyof CatalogQuery, string>
  >;
  const catalog = useLoad(() => api.client.listProviders(query), [JSON.stringify(query), tick]);
  const errs = catalog.error ? fieldErrorsOf(catalog.error, FILTER_FIELDS) : {};
  return (
    <Card title="Catalog">
      <div className="filters">
        <Field label="Min CPUs" error={errs.minCpus}>
          <input type="number" min="0" step="0.5" value={f.minCpus} onChange={set('minCpus')} />
        </Field>
        <Field label="Min memory (MiB)" error={errs.minMemoryMb}>
          <input type="number" min="0" value={f.minMemoryMb} onChange={set('minMemoryMb')} />
        </Field>
        <Field label="Arch" error={errs.arch}>
          <input value={f.arch} onChange={set('arch')} placeholder="amd64" />
        </Field>
        <Field label="Max CPU-hour price" error={errs.maxCpuHour}>
          <input type="number" min="0" step="0.01" value={f.maxCpuHour} onChange={set('maxCpuHour')} />
        </Field>
        <Field label="Min reputation" error={errs.minReputation}>
          <input type="number" min="0" max="1" step="0.1" value={f.minReputation} onChange={set('minReputation')} />
        </Field>
        <Field label="Online">
          <select value={f.online} onChange={set('online')}>
            <option value="">any</option>
            <option value="true">online</option>
            <option value="false">offline</option>
          </select>
        </Field>
        <Field label="Sort by">
          <select value={f.sort} onChange={set('sort')}>
            {['name', 'price', 'reputation', 'cpus', 'memory', 'jobs'].map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </Field>
        <Field label="Order">
          <select value={f.order} onChange={set('order')}>
            <option value="asc">ascending</option>
            <option value="desc">descending</option>
          </select>
        </Field>
      </div>
      {errs[''] && (
        <p className="error-note" role="alert">
          {errs['']}
        </p>
      )}
      {catalog.data && (
        <TableWrap label="Catalog of machines">
          <table>
            <thead>
              <tr>
                <th>machine</th>
                <th>provider</th>
                <th>status</th>
                <th>CPU</th>
                <th>memory</th>
                <th>GPU</th>
                <th>CPU-hour</th>
                <th>reputation</th>
                <th>jobs done</th>
                <th>running</th>
              </tr>
            </thead>
            <tbody>
              {catalog.data.map((p) => (
                <tr key={p.agentId} data-machine={p.name}>
                  <td>
                    {p.name}
                    <div className="muted small">
                      {p.capacity.arch}/{p.capacity.os}
                    </div>
                  </td>
                  <td>{p.providerName}</td>
                  <td>
                    <StateBadge state={p.status} />
                  </td>
                  <td>{p.capacity.cpus}</td>
                  <td>{p.capacity.memoryMb} MiB</td>
                  <td>{p.capacity.gpus.map((g) => g.model).join(', ') || '—'}</td>
                  <td>{formatDecimalCredits(p.offer.prices.cpuHour)}</td>
                  <td>
                    {p.reputation.score.toFixed(2)}
                    <div className="muted small" title={`credibility ${p.reputation.credibility.toFixed(4)}`}>
                      {standingLabel(p.reputation)}
                    </div>
                  </td>
                  <td>{p.jobsDone}</td>
                  <td>{p.running}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
      {catalog.data?.length === 0 && <p className="muted">No machine matches these filters.</p>}
    </Card>
  );
}

/** The network view. */
export function Network() {
  const { api } = useSession();
  const tick = useRefreshTick((e) => e.type === 'job', 10_000, 10_000);
  const stats = useLoad(() => api.networkStats(60), [tick]);
  const [live, setLive] = useState<Array<{ at: number; queueDepth: number; running: number }>>([]);
  useLiveEvents((e) => {
    if (e.type === 'network')
      setLive((xs) => [
        ...xs.slice(-299),
        { at: e.data.at, queueDepth: e.data.queueDepth, running: e.data.runningExecutions },
      ]);
  });
  const throughput = useMemo(() => {
    const pts = stats.data?.points ?? [];
    return {
      x: pts.map((p) => p.t),
      series: [
        { label: 'jobs submitted', values: pts.map((p) => p.jobsSubmitted), color: '#3060c0' },
        { label: 'jobs finished', values: pts.map((p) => p.jobsFinished), color: '#2f7d4f' },
        { label: 'executions valid', values: pts.map((p) => p.executionsValid), color: '#8a6d00' },
        { label: 'executions invalid', values: pts.map((p) => p.executionsInvalid), color: '#b03030' },
      ],
    };
  }, [stats.data]);
  const queue = useMemo(
    () => ({
      x: live.map((p) => p.at),
      series: [
        { label: 'queue depth', values: live.map((p) => p.queueDepth), color: '#3060c0' },
        { label: 'running executions', values: live.map((p) => p.running), color: '#2f7d4f' },
      ],
    }),
    [live],
  );
  return (
    <>
      <h1>Network</h1>
      <div className="grid-2">
        <Card title="Queue">
          {stats.data && (
            <p>
              <strong>{stats.data.queueDepth}</strong> task(s) waiting · <strong>{stats.data.agentsOnline}</strong>{' '}
              agent(s) online
            </p>
          )}
          <Chart title="Queue depth over time (this session)" x={queue.x} series={queue.series} />
        </Card>
        <Card title="Throughput">
          <ErrorNote error={stats.error} what="Network statistics" />
          <Chart title="Throughput per minute, last hour" x={throughput.x} series={throughput.series} />
        </Card>
      </div>
      <Catalog />
      <Card title="Recent verifications">
        {stats.data && stats.data.recentVerifications.length === 0 && <p className="muted">None yet.</p>}
        {stats.data && stats.data.recentVerifications.length > 0 && (
          <TableWrap label="Recent verifications">
            <table>
              <thead>
                <tr>
                  <th>when</th>
                  <th>job</th>
                  <th>task</th>
                  <th>outcome</th>
                  <th>agreed</th>
                  <th>outvoted</th>
                </tr>
              </thead>
              <tbody>
                {stats.data.recentVerifications.map((v, i) => (
                  <tr key={`${v.at}-${i}`}>
                    <td>{when(v.at)}</td>
                    <td>
                      {v.jobId ? (
                        <code title={v.jobId}>{short(v.jobId, 12)}</code>
                      ) : (
                        <span className="muted">another buyer's</span>
                      )}
                    </td>
                    <td>{v.taskIndex}</td>
                    <td>
                      <StateBadge state={v.outcome} />
                    </td>
                    <td>{v.agreed || '—'}</td>
                    <td>{v.outvoted || '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
      </Card>
    </>
  );
}

/** A provider's standing in a word: caught, vouched, established, or on probation with its confirmations. */
function standingLabel(r: ProviderView['reputation']): string {
  if (r.caught) return 'caught lying';
  if (r.vouched) return 'vouched';
  return r.established ? 'established' : `probation (${r.confirmed} confirmed)`;
}
