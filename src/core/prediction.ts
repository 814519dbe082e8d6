/**
 * Predicted runtime of an execution on an agent, learnt from finished executions. The model (simple, and
 * easy to show): for an (image, cores) pair the baseline is the median wall time over every agent; an
 * agent's speed factor is the median of its own wall time / baseline over what it ran. The prediction for an
 * agent is the mean of its own recent runs of that pair when it has any, else baseline × its speed factor
 * (1 for an agent with no history), else unknown. Times in ms.
 */
import type { Predictor } from './scheduler.js';

/** One finished execution: agent, image, cores requested, wall time ms. */
export interface RuntimeSample {
  agentId: string;
  image: string;
  cpus: number;
  wallMs: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Builds a predictor from samples (newest last; at most the last 20 per agent and pair count). */
export function buildPredictor(samples: readonly RuntimeSample[]): Predictor {
  const key = (image: string, cpus: number) => `${image}\u0000${cpus}`;
  const byPair = new Map<string, number[]>();
  const own = new Map<string, number[]>();
  const push = (m: Map<string, number[]>, k: string, v: number) => {
    const xs = m.get(k);
    if (xs) xs.push(v);
    else m.set(k, [v]);
  };
  for (const s of samples) {
    const k = key(s.image, s.cpus);
    push(byPair, k, s.wallMs);
    push(own, `${s.agentId}\u0000${k}`, s.wallMs);
  }
  for (const [k, xs] of own) if (xs.length > 20) own.set(k, xs.slice(-20));
  const baseline = new Map([...byPair].map(([k, xs]) => [k, Math.max(1, median(xs))]));
  const ratios = new Map<string, number[]>();
  for (const s of samples) {
    const b = baseline.get(key(s.image, s.cpus))!;
    push(ratios, s.agentId, s.wallMs / b);
  }
  const speed = new Map([...ratios].map(([a, xs]) => [a, median(xs)]));
  return (agentId, image, cpus) => {
    const k = key(image, cpus);
    const mine = own.get(`${agentId}\u0000${k}`);
    if (mine && mine.length > 0) return mine.reduce((x, y) => x + y, 0) / mine.length;
    const b = baseline.get(k);
    return b === undefined ? null : b * (speed.get(agentId) ?? 1);
  };
}
