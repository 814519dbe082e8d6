/**
 * A time-series line chart (uPlot, canvas) with the same numbers as a visually hidden table for screen readers.
 * `x` are epoch ms; each series has a label and values aligned with `x`.
 */
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  values: Array<number | null>;
  color: string;
}

/** Draws `series` over time `x`; resizes with its container. */
export function Chart({
  title,
  x,
  series,
  height = 200,
}: {
  title: string;
  x: number[];
  series: Series[];
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el || typeof window.matchMedia !== 'function' || x.length === 0) return;
    const plot = new uPlot(
      {
        width: Math.max(el.clientWidth, 240),
        height,
        series: [
          {},
          ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, points: { show: x.length < 40 } })),
        ],
        axes: [{}, { size: 56 }],
        // One point alone would stretch the axis over years: show the half hour around it.
        scales: {
          x: x.length === 1 ? { time: true, range: [x[0]! / 1000 - 1800, x[0]! / 1000 + 1800] } : { time: true },
        },
      },
      [x.map((t) => t / 1000), ...series.map((s) => s.values)] as uPlot.AlignedData,
      el,
    );
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(el.clientWidth, 240), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [x, series, height]);
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      {x.length === 0 ? <p className="muted">No data yet.</p> : <div ref={box} aria-hidden="true" />}
      <table className="sr-only">
        <caption>{title}</caption>
        <thead>
          <tr>
            <th>time</th>
            {series.map((s) => (
              <th key={s.label}>{s.label}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {x.slice(-50).map((t, i) => {
            const j = x.length - Math.min(x.length, 50) + i;
            return (
              <tr key={t}>
                <td>{new Date(t).toISOString()}</td>
                {series.map((s) => (
                  <td key={s.label}>{s.values[j] ?? ''}</td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </figure>
  );
}
