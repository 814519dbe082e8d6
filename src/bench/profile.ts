/**
 * Summary of V8 CPU profiles (`node --cpu-prof`, .cpuprofile JSON): self time per function and per package
 * (a node_modules package, a part of dist/, node internals, or V8's own buckets such as the garbage collector),
 * so a benchmark can say where a coordinator spends its CPU without opening a profiler.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

/** Self time of a function or package: ms and share of all samples (0–1). */
export interface SelfTime {
  name: string;
  ms: number;
  share: number;
}

/**
 * Summary of every profile in a folder. `byDeqoFunction` charges each sample to the innermost Deqo function
 * on its stack (so the time a store method spends inside Kysely and SQLite is charged to that method).
 */
export interface ProfileSummary {
  files: string[];
  totalMs: number;
  byPackage: SelfTime[];
  topFunctions: SelfTime[];
  byDeqoFunction: SelfTime[];
}

/** The package a frame belongs to: `node_modules/<pkg>` → pkg, `dist/<part>/…` → deqo/<part>, `node:…` → node, else V8's bucket name. */
export function packageOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const part = /\/dist\/([^/]+)\//.exec(url);
  if (part) return `deqo/${part[1]}`;
  if (url.startsWith('node:')) return 'node';
  return url;
}

/** Reads every `.cpuprofile` in `dir` and sums self time per package and per function (top `top` of each). */
export async function summarizeProfiles(dir: string, top = 25): Promise<ProfileSummary> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort();
  const byPkg = new Map<string, number>();
  const byFn = new Map<string, number>();
  const byDeqo = new Map<string, number>();
  let totalMs = 0;
  for (const f of files) {
    const p = JSON.parse(await readFile(join(dir, f), 'utf8')) as CpuProfile;
    const samples = p.samples?.length ?? p.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0);
    const msPerSample = samples > 0 ? (p.endTime - p.startTime) / 1000 / samples : 0;
    const parent = new Map<number, ProfileNode>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n);
    for (const n of p.nodes) {
      const ms = (n.hitCount ?? 0) * msPerSample;
      if (ms === 0) continue;
      const { functionName, url, lineNumber } = n.callFrame;
      const pkg = packageOf(url, functionName);
      byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + ms);
      const fn =
        `${functionName || '(anonymous)'} ${url ? `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}` : ''}`.trim();
      byFn.set(fn, (byFn.get(fn) ?? 0) + ms);
      let d: ProfileNode | undefined = n;
      while (d && !packageOf(d.callFrame.url, d.callFrame.functionName).startsWith('deqo/')) d = parent.get(d.id);
      const owner = d
        ? `${d.callFrame.functionName || '(anonymous)'} ${d.callFrame.url.replace(/^.*\/dist\//, '')}:${d.callFrame.lineNumber + 1}`
        : '(outside deqo)';
      byDeqo.set(owner, (byDeqo.get(owner) ?? 0) + ms);
      totalMs += ms;
    }
  }
  const rank = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({
        name,
        ms: Math.round(ms),
        share: totalMs > 0 ? Math.round((ms / totalMs) * 1000) / 1000 : 0,
      }));
  return {
    files,
    totalMs: Math.round(totalMs),
    byPackage: rank(byPkg),
    topFunctions: rank(byFn),
    byDeqoFunction: rank(byDeqo),
  };
}
