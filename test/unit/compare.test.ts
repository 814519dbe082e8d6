import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareCsvRows,
  compareFileContents,
  compareJsonValues,
  compareResults,
  describeDifference,
  parseCsv,
  planComparison,
  ruleMatcher,
  withinTolerance,
} from '../../src/core/index.js';
import { JobSpecSchema, type CompareRule, type Manifest } from '../../src/protocol/index.js';

const sha = (c: string) => c.repeat(64);
const manifest = (files: Array<[string, string, number?]>, over: Partial<Manifest> = {}): Manifest => ({
  exitCode: 0,
  stdoutSha256: sha('0'),
  files: files.map(([path, h, size]) => ({ path, sha256: sha(h), size: size ?? 10 })),
  ...over,
});
const json = (glob: string, tol: Partial<CompareRule>): CompareRule => ({ glob, format: 'json', ...tol });

describe('withinTolerance', () => {
  it('accepts equal numbers, absolute and relative differences within the bounds', () => {
    expect(withinTolerance(1, 1, { absTol: 0 })).toBe(true);
    expect(withinTolerance(0.1 + 0.2, 0.3, { absTol: 1e-12 })).toBe(true);
    expect(withinTolerance(1000, 1000.5, { relTol: 1e-3 })).toBe(true);
    expect(withinTolerance(1000, 1002, { relTol: 1e-3 })).toBe(false);
    expect(withinTolerance(1, 1.1, { absTol: 0.01, relTol: 0.2 })).toBe(true);
    expect(withinTolerance(Infinity, 1e308, { relTol: 1 })).toBe(false);
  });

  it('is symmetric and holds for a perturbation inside the bound (property)', () => {
    const finite = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 });
    fc.assert(
      fc.property(finite, finite, fc.double({ min: 0, max: 1, noNaN: true }), (a, b, tol) => {
        expect(withinTolerance(a, b, { absTol: tol })).toBe(withinTolerance(b, a, { absTol: tol }));
        expect(withinTolerance(a, b, { relTol: tol })).toBe(withinTolerance(b, a, { relTol: tol }));
      }),
    );
    fc.assert(
      fc.property(finite, fc.double({ min: 0, max: 0.5, noNaN: true }), (a, f) => {
        // a + f·1e-9 is within absTol 1e-9 (the rounding of the sum aside, hence the slack)
        expect(withinTolerance(a, a + f * 1e-9, { absTol: 1e-9 * (1 + 1e-6) + Math.abs(a) * 1e-15 })).toBe(true);
      }),
    );
  });
});

describe('planComparison', () => {
  const rules = [json('**/*.json', { absTol: 1e-6 })];
  it('asks for the contents of rule files that differ, and nothing else', () => {
    const plan = planComparison(
      rules,
      manifest([
        ['out/m.json', 'a'],
        ['x.bin', 'c'],
      ]),
      manifest([
        ['out/m.json', 'b'],
        ['x.bin', 'c'],
      ]),
    );
    expect(plan).toEqual({ kind: 'contents', files: [{ path: 'out/m.json', rule: rules[0] }] });
  });

  it('names exit code, stdout, missing files and unmatched files that differ', () => {
    const base = manifest([['m.json', 'a']]);
    const d = (b: Manifest) => {
      const p = planComparison(rules, base, b);
      return p.kind === 'differ' ? p.difference : null;
    };
    expect(d(manifest([['m.json', 'a']], { exitCode: 1 }))?.path).toBe('(exit code)');
    expect(d(manifest([['m.json', 'a']], { stdoutSha256: sha('1') }))?.path).toBe('(stdout)');
    expect(
      d(
        manifest([
          ['m.json', 'a'],
          ['n.txt', 'b'],
        ]),
      ),
    ).toMatchObject({ path: 'n.txt', a: 'missing', b: 'present' });
    const unmatched = planComparison(rules, manifest([['n.txt', 'a']]), manifest([['n.txt', 'b']]));
    expect(unmatched.kind === 'differ' && describeDifference(unmatched.difference)).toMatch(
      /n\.txt: SHA-256 .* byte for byte/,
    );
    const big = planComparison(rules, manifest([['m.json', 'a', 100]]), manifest([['m.json', 'b', 100]]), 50);
    expect(big.kind === 'differ' && big.difference.why).toMatch(/larger than the 50 bytes/);
  });
});

describe('ruleMatcher', () => {
  it('uses the first rule whose glob matches, globs relative to the output directory', () => {
    const m = ruleMatcher([json('metrics.json', { absTol: 1 }), { glob: '**/*.csv', format: 'csv', relTol: 0.1 }]);
    expect(m('metrics.json')?.absTol).toBe(1);
    expect(m('sub/metrics.json')).toBeNull();
    expect(m('a/b/table.csv')?.format).toBe('csv');
    expect(m('table.csv')?.format).toBe('csv');
  });
});

describe('JSON values', () => {
  const rule = { absTol: 1e-6 };
  it('agree within tolerance, and name the first place they do not', () => {
    expect(compareJsonValues({ a: [1, 2.0000001], s: 'x' }, { s: 'x', a: [1, 2] }, rule)).toBeNull();
    expect(compareJsonValues({ loss: 0.25, acc: [0.9, 0.8] }, { loss: 0.25, acc: [0.9, 0.81] }, rule)).toMatchObject({
      where: '$.acc[1]',
      a: '0.8',
      b: '0.81',
    });
    expect(compareJsonValues({ 'a b': 'x' }, { 'a b': 'y' }, rule)?.where).toBe('$["a b"]');
    expect(compareJsonValues({ a: 1 }, { a: '1' }, rule)?.why).toMatch(/number vs a string/);
    expect(compareJsonValues([1], [1, 2], rule)?.why).toMatch(/lengths/);
    expect(compareJsonValues({ a: 1 }, { b: 1 }, rule)?.where).toBe('$.a');
  });

  it('a value always agrees with itself, and perturbing numbers within absTol keeps agreement (property)', () => {
    const leaf = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
      fc.string(),
      fc.boolean(),
      fc.constant(null),
    );
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        leaf,
        fc.array(tie('v'), { maxLength: 4 }),
        fc.dictionary(fc.string({ maxLength: 4 }), tie('v'), { maxKeys: 4 }),
      ),
    })).v;
    const perturb = (v: unknown): unknown =>
      typeof v === 'number'
        ? v + 1e-9
        : Array.isArray(v)
          ? v.map(perturb)
          : v && typeof v === 'object'
            ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, perturb(x)]))
            : v;
    fc.assert(
      fc.property(value, (v) => {
        const roundTrip = JSON.parse(JSON.stringify(v)) as unknown;
        expect(compareJsonValues(roundTrip, roundTrip, { absTol: 0 })).toBeNull();
        expect(compareJsonValues(roundTrip, perturb(roundTrip), { absTol: 1e-6 })).toBeNull();
      }),
    );
  });
});

describe('CSV', () => {
  it('parses quotes, embedded commas and line ends', () => {
    expect(parseCsv('a,"b,c","d""e"\r\n1,2,3\n')).toEqual([
      ['a', 'b,c', 'd"e'],
      ['1', '2', '3'],
    ]);
    expect(parseCsv('x\n\ny')).toEqual([['x'], [''], ['y']]);
    expect(() => parseCsv('"open')).toThrow(SyntaxError);
  });

  it('compares cell by cell: numbers within tolerance, other cells exactly, same shape', () => {
    const t = (s: string) => parseCsv(s);
    const rule = { relTol: 1e-3 };
    expect(compareCsvRows(t('C,acc\n1,0.9751\n'), t('C,acc\n1,0.97511\n'), rule)).toBeNull();
    expect(compareCsvRows(t('C,acc\n1,0.97\n'), t('C,acc\n1,0.99\n'), rule)).toMatchObject({
      where: 'row 2, column 2 ("acc")',
    });
    expect(compareCsvRows(t('C,acc\n1,x\n'), t('C,acc\n1,y\n'), rule)?.why).toMatch(/exactly/);
    expect(compareCsvRows(t('a\nb\n'), t('a\n'), rule)?.why).toMatch(/rows/);
    expect(compareCsvRows(t('a,b\n'), t('a\n'), rule)?.where).toBe('row 1');
    expect(compareCsvRows(t('1e3,NaN\n'), t('1000.0001,nan\n'), rule)).toBeNull();
  });
});

describe('compareFileContents / compareResults', () => {
  it('reports a file that does not parse as its rule format', () => {
    const d = compareFileContents('m.json', json('*.json', { absTol: 1 }), '{"a":1}', 'nope');
    expect(d).toMatchObject({ path: 'm.json', b: 'not json' });
  });

  it('agrees under the rules and names the first difference otherwise', () => {
    const a = manifest([
      ['m.json', 'a'],
      ['t.csv', 'c'],
    ]);
    const b = manifest([
      ['m.json', 'b'],
      ['t.csv', 'd'],
    ]);
    const text: Record<string, Record<string, string>> = {
      a: { 'm.json': '{"loss": 0.1234567}', 't.csv': 'x,1.0\n' },
      b: { 'm.json': '{"loss": 0.1234568}', 't.csv': 'x,1.5\n' },
    };
    const rules: CompareRule[] = [json('*.json', { absTol: 1e-6 }), { glob: '*.csv', format: 'csv', absTol: 0.1 }];
    const d = compareResults(rules, a, b, (side, p) => text[side]![p]!);
    expect(d && describeDifference(d)).toBe('t.csv at row 1, column 2: 1.0 vs 1.5 (beyond absTol 0.1)');
    text.b!['t.csv'] = 'x,1.05\n';
    expect(compareResults(rules, a, b, (side, p) => text[side]![p]!)).toBeNull();
  });
});

describe('verification.compare in the job spec', () => {
  const spec = (compare: unknown) =>
    JobSpecSchema.safeParse({ image: 'deqo/busybox:test', command: ['true'], verification: { compare } });
  it('accepts rules and names the field of a bad one', () => {
    expect(spec([{ glob: '**/*.json', format: 'json', relTol: 1e-6 }]).success).toBe(true);
    const issues = (x: unknown) => {
      const r = spec(x);
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    expect(issues([{ glob: 'a.json', format: 'json' }])).toEqual([
      'verification.compare.0.absTol: give absTol or relTol (or both): the tolerance numbers may differ by',
    ]);
    expect(issues([{ glob: 'a.json', format: 'json', absTol: -1 }])[0]).toMatch(/^verification\.compare\.0\.absTol/);
    expect(issues([{ glob: '../a.json', format: 'json', absTol: 1 }])[0]).toMatch(
      /^verification\.compare\.0\.glob: expected a glob relative/,
    );
    expect(issues([{ glob: '/a.json', format: 'json', absTol: 1 }])[0]).toMatch(/^verification\.compare\.0\.glob/);
    expect(issues([{ glob: 'a.xml', format: 'xml', absTol: 1 }])[0]).toMatch(/^verification\.compare\.0\.format/);
  });
});
