/** Provider: its agents (online, load, what runs now), earnings over time, reputation with its history, offers and windows. */
import { useMemo, useState } from 'react';
import type { ProviderView } from '../../../src/protocol/index.js';
import { NotSupportedError } from '../api.js';
import { useSession } from '../session-context.js';
import { Card, ErrorNote, Facts, StateBadge, TableWrap } from '../components/bits.js';
import { Chart } from '../components/Chart.js';
import { byJob, cumulative, paymentsOf } from '../earnings.js';
import { formatDecimalCredits, formatDuration } from '../../../src/core/index.js';
import { short, when } from '../format.js';
import { useLoad } from '../hooks.js';
import { useLiveEvents, useRefreshTick } from '../live.js';

function Agents({ agents, now }: { agents: ProviderView[]; now: Record<string, string[]> }) {
  return (
    <TableWrap label="Agents">
      <table>
        <thead>
          <tr>
            <th>agent</th>
            <th>status</th>
            <th>availability</th>
            <th>load</th>
            <th>running now</th>
            <th>jobs done</th>
            <th>last seen</th>
          </tr>
        </thead>
        <tbody>
          {agents.map((a) => (
            <tr key={a.agentId} data-agent={a.name}>
              <td>
                {a.name}
                <div className="muted small">
                  {a.capacity.cpus} CPU, {a.capacity.memoryMb} MiB, {a.capacity.arch}/{a.capacity.os}
                </div>
              </td>
              <td>
                <StateBadge state={a.status} />
              </td>
              <td>
                {a.availability.state.replace('_', ' ')}
                {a.availability.message && <div className="muted small">{a.availability.message}</div>}
              </td>
              <td>
                <meter min={0} max={Math.max(a.capacity.cpus, 1)} value={a.running} aria-label={`${a.name} load`} />{' '}
                {a.running} running
              </td>
              <td>
                {(now[a.name] ?? []).map((j) => (
                  <div key={j}>
                    <code>{short(j, 12)}</code>
                  </div>
                ))}
                {(now[a.name] ?? []).length === 0 && <span className="muted">—</span>}
              </td>
              <td>{a.jobsDone}</td>
              <td>{when(a.lastSeenAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

function Offers({ agents }: { agents: ProviderView[] }) {
  return (
    <TableWrap label="Offers">
      <table>
        <thead>
          <tr>
            <th>agent</th>
            <th>CPU-hour</th>
            <th>GiB-hour</th>
            <th>start fee</th>
            <th>availability windows</th>
            <th>idle policy</th>
            <th>labels</th>
          </tr>
        </thead>
        <tbody>
          {agents.map((a) => (
            <tr key={a.agentId}>
              <td>{a.name}</td>
              <td>{formatDecimalCredits(a.offer.prices.cpuHour)}</td>
              <td>{formatDecimalCredits(a.offer.prices.memoryGiBHour)}</td>
              <td>{formatDecimalCredits(a.offer.prices.startFee)}</td>
              <td>
                {a.offer.windows.length
                  ? a.offer.windows.map((w) => (
                      <div key={w}>
                        <code>{w}</code>
                      </div>
                    ))
                  : 'always'}
                {a.offer.timezone && <div className="muted small">{a.offer.timezone}</div>}
              </td>
              <td>
                {a.offer.idlePolicy.enabled
                  ? `only when the owner is idle (start below ${a.offer.idlePolicy.startBelow * 100}% load)`
                  : 'off'}
              </td>
              <td>
                {Object.entries(a.offer.labels)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(', ') || '—'}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

/** The provider view. */
export function Provider() {
  const { api, me } = useSession();
  const tick = useRefreshTick((e) => e.type === 'execution', 5000);
  const [now, setNow] = useState<Record<string, Record<string, string>>>({});
  useLiveEvents((e) => {
    if (e.type !== 'execution') return;
    setNow((m) => {
      const forAgent = { ...(m[e.data.agentName] ?? {}) };
      if (e.data.state === 'running' || e.data.state === 'assigned') forAgent[e.data.executionId] = e.data.jobId;
      else delete forAgent[e.data.executionId];
      return { ...m, [e.data.agentName]: forAgent };
    });
  });
  const agents = useLoad(() => api.client.providerAgents(), [tick]);
  const balance = useLoad(() => api.client.balance(), [tick]);
  const rep = useLoad(() => api.client.providerReputation(50), [tick]);
  const ledger = useLoad(() => api.client.ledger({ limit: 2000 }), [tick]);
  const earnings = useLoad(
    () =>
      api.providerEarnings(48).catch((e) => {
        if (e instanceof NotSupportedError) return null;
        throw e;
      }),
    [tick],
  );
  const payments = useMemo(() => paymentsOf(ledger.data ?? [], me.accountId), [ledger.data, me.accountId]);
  const series = useMemo(() => {
    if (earnings.data) {
      let sum = 0;
      return { x: earnings.data.points.map((p) => p.t), y: earnings.data.points.map((p) => (sum += p.credits)) };
    }
    return cumulative(payments);
  }, [earnings.data, payments]);
  const chartSeries = useMemo(
    () => [{ label: 'credits earned (cumulative)', values: series.y, color: '#2f7d4f' }],
    [series],
  );
  const running = Object.fromEntries(Object.entries(now).map(([k, v]) => [k, [...new Set(Object.values(v))]]));
  const r = rep.data?.reputation;
  return (
    <>
      <h1>Provider</h1>
      <Card title="Agents">
        <ErrorNote error={agents.error} what="your agents" />
        {agents.data &&
          (agents.data.length ? (
            <Agents agents={agents.data} now={running} />
          ) : (
            <p className="muted">
              No agents yet: start one with <code>deqo agent</code>.
            </p>
          ))}
      </Card>
      <div className="grid-2">
        <Card title="Earnings">
          <Facts
            items={[
              ['earned (all time)', balance.data ? formatDecimalCredits(balance.data.earned) : '…'],
              ['available', balance.data ? formatDecimalCredits(balance.data.available) : '…'],
              ['last 48 h', earnings.data ? formatDecimalCredits(earnings.data.total) : '—'],
            ]}
          />
          <Chart title="Earnings over time" x={series.x} series={chartSeries} />
          <ErrorNote error={ledger.error ?? earnings.error} what="your earnings" />
          <TableWrap label="Earnings by job">
            <table>
              <thead>
                <tr>
                  <th>job</th>
                  <th>executions paid</th>
                  <th>credits</th>
                  <th>last paid</th>
                </tr>
              </thead>
              <tbody>
                {byJob(payments)
                  .slice(0, 20)
                  .map((j) => (
                    <tr key={j.jobId} data-earning-job={j.jobId}>
                      <td>
                        <code title={j.jobId}>{j.jobId}</code>
                      </td>
                      <td>{j.executions}</td>
                      <td>{formatDecimalCredits(j.credits)}</td>
                      <td>{when(j.last)}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
          </TableWrap>
          {payments.length === 0 && <p className="muted">No payments yet.</p>}
        </Card>
        <Card title="Reputation">
          <ErrorNote error={rep.error} what="your reputation" />
          {r && (
            <Facts
              items={[
                ['score', r.score.toFixed(3)],
                ['valid / invalid / errors', `${r.valid} / ${r.invalid} / ${r.errors}`],
                ['consecutive cross-checked valid', String(r.consecutiveValid)],
                ['daily quota', `${r.startedToday} of ${r.dailyQuota} started today`],
                ['mean turnaround', r.meanTurnaroundMs === null ? '—' : formatDuration(r.meanTurnaroundMs)],
              ]}
            />
          )}
          <TableWrap label="Reputation events">
            <table>
              <thead>
                <tr>
                  <th>when</th>
                  <th>event</th>
                  <th>job</th>
                  <th>score after</th>
                </tr>
              </thead>
              <tbody>
                {(rep.data?.events ?? []).map((e) => (
                  <tr key={e.id}>
                    <td>{when(e.at)}</td>
                    <td>
                      <StateBadge state={e.kind} />
                      {e.crossChecked && <span className="muted small"> cross-checked</span>}
                    </td>
                    <td>
                      <code title={e.jobId ?? ''}>{short(e.jobId, 12)}</code>
                    </td>
                    <td>{e.score.toFixed(3)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        </Card>
      </div>
      <Card title="Offers and availability windows">{agents.data && <Offers agents={agents.data} />}</Card>
    </>
  );
}
