/** Small shared pieces: state badges, error notes, empty states, a scrolling table wrapper. */
import type { ReactNode } from 'react';
import { NotSupportedError } from '../api.js';

/** A coloured state word (job, task or execution state). */
export function StateBadge({ state }: { state: string }) {
  return <span className={`badge badge-${state}`}>{state}</span>;
}

/** An error from a load, in words; a route the coordinator lacks is shown as a quiet note instead. */
export function ErrorNote({ error, what }: { error: Error | undefined; what: string }) {
  if (!error) return null;
  if (error instanceof NotSupportedError)
    return <p className="muted">{what} is not available on this coordinator yet.</p>;
  return (
    <p className="error-note" role="alert">
      Could not load {what}: {error.message}
    </p>
  );
}

/** A table that scrolls sideways on narrow screens instead of breaking the layout. */
export function TableWrap({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="table-wrap" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}

/** A titled card. */
export function Card({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="card" aria-label={title}>
      <header className="card-head">
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

/** Label/value pairs. */
export function Facts({ items }: { items: Array<[string, ReactNode]> }) {
  return (
    <dl className="facts">
      {items.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}
