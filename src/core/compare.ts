/**
 * Output comparators (verification.compare): whether two executions' results agree when numbers may differ within a
 * tolerance, and the first difference when they do not — for the verifier's grouping and for the buyer's message.
 *
 * Two results agree when their exit codes, stdout (by SHA-256) and sets of output paths are equal and each output
 * file agrees: byte for byte (same SHA-256) when no rule matches its path, else as values of the first matching
 * rule's format — JSON (same structure, keys and strings; numbers within tolerance) or CSV (same number of rows and
 * cells per row; cells that both read as numbers within tolerance, other cells equal). Numbers a and b agree when
 * a === b, |a − b| ≤ absTol, or |a − b| ≤ relTol · max(|a|, |b|) (the relative test of Python's math.isclose).
 *
 * Tolerance is not transitive, so the verifier compares a result with one representative of each group (the
 * result that founded it), never with every member.
 */
import picomatch from 'picomatch';
import type { CompareRule, Manifest } from '../protocol/index.js';

/** Largest output file compared under a rule by default, bytes (larger ones differ with a message saying so). */
export const COMPARE_MAX_FILE_BYTES = 16 * 1024 * 1024;

/** Where two results differ: the output (`path`, or `(exit code)` / `(stdout)`), a place in it, and both sides. */
export interface OutputDifference {
  path: string;
  /** A place in the file: `$.metrics.loss`, `row 3, column 2 ("loss")`, or '' for the whole file. */
  where: string;
  a: string;
  b: string;
  /** Why the two sides do not agree, in words. */
  why: string;
}

/** One sentence for a person: `result.json at $.loss: 0.25 vs 0.26 (beyond absTol 0.001)`. */
export function describeDifference(d: OutputDifference): string {
  const place = d.where ? `${d.path} at ${d.where}` : d.path;
  return `${place}: ${d.a} vs ${d.b} (${d.why})`;
}

/** Compiled rules: the first rule whose glob matches a path (relative to the output directory), or null. */
export function ruleMatcher(rules: readonly CompareRule[]): (path: string) => CompareRule | null {
  const compiled = rules.map((r) => ({ rule: r, match: picomatch(r.glob) }));
  return (path) => compiled.find((c) => c.match(path))?.rule ?? null;
}

/** Whether numbers `a` and `b` agree under `rule`'s tolerances (see the module comment). */
export function withinTolerance(a: number, b: number, rule: Pick<CompareRule, 'absTol' | 'relTol'>): boolean {
  if (a === b) return true;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  const diff = Math.abs(a - b);
  if (rule.absTol !== undefined && diff <= rule.absTol) return true;
  return rule.relTol !== undefined && diff <= rule.relTol * Math.max(Math.abs(a), Math.abs(b));
}

const tolText = (rule: Pick<CompareRule, 'absTol' | 'relTol'>): string =>
  [
    rule.absTol !== undefined ? `absTol ${rule.absTol}` : null,
    rule.relTol !== undefined ? `relTol ${rule.relTol}` : null,
  ]
    .filter((x) => x !== null)
    .join(', ');

/** What comparing two manifests needs next: a difference found already, or the files to compare by content. */
export type ComparisonPlan =
  | { kind: 'differ'; difference: OutputDifference }
  | { kind: 'contents'; files: Array<{ path: string; rule: CompareRule }> };

/**
 * The manifest-level part of comparing results `a` and `b` under `rules`: exit codes, stdout, the sets of paths, and
 * every file no rule matches (by SHA-256) are compared here; files a rule matches that differ by SHA-256 are listed
 * for a comparison of their contents, unless one side is larger than `maxFileBytes` (then they differ). Files are
 * visited in path order, so the difference reported is the first by path.
 */
export function planComparison(
  rules: readonly CompareRule[],
  a: Manifest,
  b: Manifest,
  maxFileBytes = COMPARE_MAX_FILE_BYTES,
): ComparisonPlan {
  const differ = (difference: OutputDifference): ComparisonPlan => ({ kind: 'differ', difference });
  if (a.exitCode !== b.exitCode)
    return differ({ path: '(exit code)', where: '', a: String(a.exitCode), b: String(b.exitCode), why: 'differ' });
  if (a.stdoutSha256 !== b.stdoutSha256)
    return differ({
      path: '(stdout)',
      where: '',
      a: `SHA-256 ${a.stdoutSha256.slice(0, 12)}`,
      b: `SHA-256 ${b.stdoutSha256.slice(0, 12)}`,
      why: 'stdout must agree exactly',
    });
  const filesA = new Map(a.files.map((f) => [f.path, f]));
  const filesB = new Map(b.files.map((f) => [f.path, f]));
  const paths = [...new Set([...filesA.keys(), ...filesB.keys()])].sort();
  const ruleFor = ruleMatcher(rules);
  const files: Array<{ path: string; rule: CompareRule }> = [];
  for (const path of paths) {
    const fa = filesA.get(path);
    const fb = filesB.get(path);
    if (!fa || !fb)
      return differ({
        path,
        where: '',
        a: fa ? 'present' : 'missing',
        b: fb ? 'present' : 'missing',
        why: 'one run wrote it, the other did not',
      });
    if (fa.sha256 === fb.sha256) continue;
    const rule = ruleFor(path);
    if (!rule)
      return differ({
        path,
        where: '',
        a: `SHA-256 ${fa.sha256.slice(0, 12)}`,
        b: `SHA-256 ${fb.sha256.slice(0, 12)}`,
        why: 'no compare rule matches it, so it must agree byte for byte',
      });
    if (fa.size > maxFileBytes || fb.size > maxFileBytes)
      return differ({
        path,
        where: '',
        a: `${fa.size} bytes`,
        b: `${fb.size} bytes`,
        why: `larger than the ${maxFileBytes} bytes compared under a tolerance; it would have to agree byte for byte`,
      });
    files.push({ path, rule });
  }
  return { kind: 'contents', files };
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

const kindOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** The first place JSON values `a` and `b` disagree under `rule` (depth first, keys in sorted order), or null. */
export function compareJsonValues(
  a: unknown,
  b: unknown,
  rule: Pick<CompareRule, 'absTol' | 'relTol'>,
  where = '$',
): Omit<OutputDifference, 'path'> | null {
  if (typeof a === 'number' && typeof b === 'number') {
    return withinTolerance(a, b, rule) ? null : { where, a: String(a), b: String(b), why: `beyond ${tolText(rule)}` };
  }
  if (kindOf(a) !== kindOf(b)) return { where, a: show(a), b: show(b), why: `a ${kindOf(a)} vs a ${kindOf(b)}` };
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length)
      return { where, a: `${a.length} items`, b: `${b.length} items`, why: 'arrays of different lengths' };
    for (let i = 0; i < a.length; i++) {
      const d = compareJsonValues(a[i], b[i], rule, `${where}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const oa = a as Record<string, unknown>;
    const ob = b as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(oa), ...Object.keys(ob)])].sort();
    for (const k of keys) {
      const at = /^[A-Za-z_$][\w$]*$/.test(k) ? `${where}.${k}` : `${where}[${JSON.stringify(k)}]`;
      if (!(k in oa) || !(k in ob))
        return {
          where: at,
          a: k in oa ? 'present' : 'missing',
          b: k in ob ? 'present' : 'missing',
          why: 'key in one only',
        };
      const d = compareJsonValues(oa[k], ob[k], rule, at);
      if (d) return d;
    }
    return null;
  }
  return a === b ? null : { where, a: show(a), b: show(b), why: 'values must agree exactly' };
}

/**
 * Parses CSV text (RFC 4180: comma-separated, `"` quotes with `""` inside, CRLF or LF line ends; a final line end
 * is optional). Returns the rows of cells. Throws SyntaxError on an unterminated quote.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else cell += c;
      i++;
      continue;
    }
    if (c === '"' && cell === '') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      if (c === '\r' && text[i + 1] === '\n') i++;
    } else cell += c;
    i++;
  }
  if (quoted) throw new SyntaxError('a quoted cell is not closed');
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

/** A CSV cell as a number: decimal or exponent notation, Infinity / NaN spelled out; null for anything else. */
function csvNumber(cell: string): number | null {
  const t = cell.trim();
  if (!/^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)$/i.test(t)) return null;
  const lower = t.toLowerCase().replace(/^\+/, '');
  if (lower === 'nan') return NaN;
  if (/^-?inf/.test(lower)) return lower.startsWith('-') ? -Infinity : Infinity;
  return Number(t);
}

/** The first cell where CSV tables `a` and `b` disagree under `rule` (row by row), or null. Rows/columns 1-based. */
export function compareCsvRows(
  a: readonly string[][],
  b: readonly string[][],
  rule: Pick<CompareRule, 'absTol' | 'relTol'>,
): Omit<OutputDifference, 'path'> | null {
  if (a.length !== b.length)
    return { where: '', a: `${a.length} rows`, b: `${b.length} rows`, why: 'different numbers of rows' };
  const header = a[0] ?? [];
  for (let r = 0; r < a.length; r++) {
    const ra = a[r]!;
    const rb = b[r]!;
    if (ra.length !== rb.length)
      return {
        where: `row ${r + 1}`,
        a: `${ra.length} cells`,
        b: `${rb.length} cells`,
        why: 'rows of different lengths',
      };
    for (let c = 0; c < ra.length; c++) {
      const ca = ra[c]!;
      const cb = rb[c]!;
      if (ca === cb) continue;
      const na = csvNumber(ca);
      const nb = csvNumber(cb);
      const name = header[c] !== undefined && r > 0 ? ` (${JSON.stringify(header[c])})` : '';
      const where = `row ${r + 1}, column ${c + 1}${name}`;
      if (na !== null && nb !== null) {
        if (Number.isNaN(na) && Number.isNaN(nb)) continue;
        if (!withinTolerance(na, nb, rule)) return { where, a: ca, b: cb, why: `beyond ${tolText(rule)}` };
        continue;
      }
      return { where, a: show(ca), b: show(cb), why: 'cells that are not both numbers must agree exactly' };
    }
  }
  return null;
}

/**
 * Compares the contents `a` and `b` (UTF-8 text) of output `path` under `rule`. A side that does not parse as the
 * rule's format differs (naming the parse error) unless both texts are equal.
 */
export function compareFileContents(path: string, rule: CompareRule, a: string, b: string): OutputDifference | null {
  if (a === b) return null;
  const parse = (text: string, side: 'a' | 'b'): { ok: true; value: unknown } | { ok: false; d: OutputDifference } => {
    try {
      return { ok: true, value: rule.format === 'json' ? JSON.parse(text) : parseCsv(text) };
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      return {
        ok: false,
        d: {
          path,
          where: '',
          a: side === 'a' ? `not ${rule.format}` : 'parsed',
          b: side === 'b' ? `not ${rule.format}` : 'parsed',
          why: `the "${rule.glob}" rule reads it as ${rule.format.toUpperCase()}: ${msg.slice(0, 200)}`,
        },
      };
    }
  };
  const pa = parse(a, 'a');
  if (!pa.ok) return pa.d;
  const pb = parse(b, 'b');
  if (!pb.ok) return pb.d;
  const d =
    rule.format === 'json'
      ? compareJsonValues(pa.value, pb.value, rule)
      : compareCsvRows(pa.value as string[][], pb.value as string[][], rule);
  return d && { path, ...d };
}

/**
 * Whether results `a` and `b` agree under `rules`, reading the contents of the files that need it with `contents`
 * (UTF-8 text of one side's file, which the caller holds: the plan lists them). Null when they agree, else the first
 * difference. A convenience over planComparison + compareFileContents for callers that have every file at hand.
 */
export function compareResults(
  rules: readonly CompareRule[],
  a: Manifest,
  b: Manifest,
  contents: (side: 'a' | 'b', path: string) => string,
  maxFileBytes = COMPARE_MAX_FILE_BYTES,
): OutputDifference | null {
  const plan = planComparison(rules, a, b, maxFileBytes);
  if (plan.kind === 'differ') return plan.difference;
  for (const { path, rule } of plan.files) {
    const d = compareFileContents(path, rule, contents('a', path), contents('b', path));
    if (d) return d;
  }
  return null;
}
