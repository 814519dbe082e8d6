/**
 * The provider catalog's filters and sort orders (`GET /v1/providers`, `deqo providers`, the dashboard's Network
 * view): which catalog rows match a query, and in which order they are listed.
 */
import type { CatalogQuery, ProviderView } from '../protocol/index.js';

/** True when a catalog row matches every filter the query gives. */
export function matchesCatalogQuery(p: ProviderView, q: CatalogQuery): boolean {
  const eq = q.label ? q.label.indexOf('=') : -1;
  const label = q.label ? { key: q.label.slice(0, eq), value: q.label.slice(eq + 1) } : null;
  const model = q.gpuModel?.toLowerCase();
  return (
    (q.minCpus === undefined || p.capacity.cpus >= q.minCpus) &&
    (q.minMemoryMb === undefined || p.capacity.memoryMb >= q.minMemoryMb) &&
    (q.gpus === undefined || p.capacity.gpus.length >= q.gpus) &&
    (model === undefined || p.capacity.gpus.some((g) => g.model.toLowerCase().includes(model))) &&
    (q.arch === undefined || p.capacity.arch === q.arch) &&
    (q.os === undefined || p.capacity.os === q.os) &&
    (q.maxCpuHour === undefined || p.offer.prices.cpuHour <= q.maxCpuHour) &&
    (q.minReputation === undefined || p.reputation.score >= q.minReputation) &&
    (q.online === undefined || p.online === q.online) &&
    (label === null || p.offer.labels[label.key] === label.value)
  );
}

const SORT_KEYS: Record<CatalogQuery['sort'], (p: ProviderView) => number | string> = {
  price: (p) => p.offer.prices.cpuHour,
  reputation: (p) => p.reputation.score,
  cpus: (p) => p.capacity.cpus,
  memory: (p) => p.capacity.memoryMb,
  name: (p) => p.name,
  jobs: (p) => p.jobsDone,
};

/** Sorts that list the largest first unless the query says otherwise. */
const DESCENDING_BY_DEFAULT: ReadonlySet<CatalogQuery['sort']> = new Set(['reputation', 'cpus', 'memory', 'jobs']);

/** The rows matching `q`, in its order (ties by name). Does not modify `rows`. */
export function queryCatalog(rows: readonly ProviderView[], q: CatalogQuery): ProviderView[] {
  const key = SORT_KEYS[q.sort];
  const dir = (q.order ?? (DESCENDING_BY_DEFAULT.has(q.sort) ? 'desc' : 'asc')) === 'asc' ? 1 : -1;
  return rows
    .filter((p) => matchesCatalogQuery(p, q))
    .sort((a, b) => {
      const x = key(a);
      const y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * dir || a.name.localeCompare(b.name);
    });
}
