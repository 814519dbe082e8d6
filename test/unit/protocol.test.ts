/** Unit tests of the job spec schema and field issue paths. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  fieldIssues,
  JobSpecSchema,
  ReportRequestSchema,
  utf8Bytes,
  type JobSpecInput,
} from '../../src/protocol/index.js';

const base = { image: 'deqo/busybox:test', command: ['sh', '-c', 'echo hi'] } satisfies JobSpecInput;

/** The issues of an invalid spec as dotted paths (fails the test if the spec is valid). */
function issuesOf(input: unknown): Array<{ path: string; message: string }> {
  const r = JobSpecSchema.safeParse(input);
  if (r.success) throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
  return fieldIssues(r.error);
}

describe('JobSpecSchema', () => {
  it('fills defaults', () => {
    const s = JobSpecSchema.parse(base);
    expect(s.verification).toEqual({
      mode: 'replicate',
      replicas: 1,
      quorum: 1,
      maxErrors: 3,
      spotChecks: false,
      compare: [],
      checkDeterminism: false,
    });
    expect(s.verification.maxExecutions).toBeUndefined();
    expect(s.resources).toEqual({ cpus: 1, memoryMb: 512, timeoutSeconds: 600, pids: 256, gpus: 0 });
    expect(s.maxPrice).toEqual({ cpuHour: 0.1, memoryGiBHour: 0.01, gpuHour: 1, startFee: 0.002 });
    expect(s.queueTimeoutSeconds).toBe(86_400);
    expect(s.outputDir).toBe('/outputs');
    expect(s.env).toEqual({});
    expect(s.inputs).toEqual([]);
    expect(s.network).toBe(false);
    expect(s.limits.outputBytes).toBe(256 * 1024 * 1024);
    expect(s.array).toBeUndefined();
  });

  it('fills defaults inside partially given objects', () => {
    const s = JobSpecSchema.parse({ ...base, resources: { cpus: 2 }, verification: { replicas: 3, quorum: 2 } });
    expect(s.resources.memoryMb).toBe(512);
    expect(s.resources.cpus).toBe(2);
    expect(s.verification.maxErrors).toBe(3);
  });

  it('accepts common image references', () => {
    for (const image of [
      'python:3.12',
      'deqo/busybox:test',
      'ghcr.io/org/app:v1.2',
      'localhost:5000/a/b',
      `alpine@sha256:${'a'.repeat(64)}`,
    ]) {
      expect(JobSpecSchema.safeParse({ ...base, image }).success, image).toBe(true);
    }
  });

  it('rejects bad image references', () => {
    for (const image of ['Python:3', 'bad image', '', 'a::b', '-leading']) {
      expect(
        issuesOf({ ...base, image }).map((i) => i.path),
        image,
      ).toContain('image');
    }
  });

  it('rejects quorum greater than replicas with the path verification.quorum', () => {
    const r = JobSpecSchema.safeParse({ ...base, verification: { replicas: 2, quorum: 3 } });
    expect(r.success).toBe(false);
    expect(r.error?.issues.some((i) => i.path.join('.') === 'verification.quorum')).toBe(true);
    expect(r.error?.issues.find((i) => i.path.join('.') === 'verification.quorum')?.path).toEqual([
      'verification',
      'quorum',
    ]);
  });

  it('rejects maxExecutions below replicas', () => {
    expect(issuesOf({ ...base, verification: { replicas: 3, maxExecutions: 2 } }).map((i) => i.path)).toContain(
      'verification.maxExecutions',
    );
  });

  it('rejects env names starting with DEQO_ and malformed env names', () => {
    expect(issuesOf({ ...base, env: { DEQO_TASK_INDEX: '5' } }).map((i) => i.path)).toEqual(['env.DEQO_TASK_INDEX']);
    // zod reports key problems as `invalid_key`, with the catalogue message nested inside.
    const r = JobSpecSchema.safeParse({ ...base, env: { DEQO_X: '1' } });
    expect(JSON.stringify(r.error?.issues)).toMatch(/names starting with DEQO_ are reserved/);
    expect(JobSpecSchema.safeParse({ ...base, env: { '1BAD': 'x' } }).success).toBe(false);
    expect(JobSpecSchema.safeParse({ ...base, env: { MY_DEQO_VAR: 'x' } }).success).toBe(true);
  });

  it('rejects input paths that climb out or are absolute, and duplicate input paths', () => {
    const blob = 'e'.repeat(64);
    for (const path of ['../etc/passwd', 'a/../../b', '..', '/abs', './x']) {
      const issues = issuesOf({ ...base, inputs: [{ path, blob }] });
      expect(
        issues.some((i) => i.path === 'inputs.0.path'),
        path,
      ).toBe(true);
    }
    expect(JobSpecSchema.safeParse({ ...base, inputs: [{ path: 'data/a..b.txt', blob }] }).success).toBe(true);
    expect(
      issuesOf({
        ...base,
        inputs: [
          { path: 'a', blob },
          { path: 'a', blob },
        ],
      }).map((i) => i.path),
    ).toContain('inputs.1.path');
  });

  it('rejects an outputDir of /, /inputs or a relative path', () => {
    for (const outputDir of ['/', '/inputs', '/inputs/x', 'outputs', '/a/../b']) {
      expect(JobSpecSchema.safeParse({ ...base, outputDir }).success, outputDir).toBe(false);
    }
    expect(JobSpecSchema.parse({ ...base, outputDir: '/work/out' }).outputDir).toBe('/work/out');
  });

  it('rejects unknown fields at the top level and in nested objects (strict)', () => {
    expect(
      issuesOf({ ...base, replicas: 3 })
        .map((i) => i.message)
        .join(' '),
    ).toMatch(/replicas/);
    expect(JobSpecSchema.safeParse({ ...base, resources: { tpus: 1 } }).success).toBe(false);
  });

  it('requires exactly one of count, parameters or sweep in an array job', () => {
    expect(JobSpecSchema.safeParse({ ...base, array: { count: 3 } }).success).toBe(true);
    expect(JobSpecSchema.safeParse({ ...base, array: { parameters: [{ a: 1 }] } }).success).toBe(true);
    expect(JobSpecSchema.safeParse({ ...base, array: { sweep: { a: [1, 2] } } }).success).toBe(true);
    expect(issuesOf({ ...base, array: {} }).map((i) => i.path)).toContain('array');
    expect(JobSpecSchema.safeParse({ ...base, array: { count: 2, sweep: { a: [1] } } }).success).toBe(false);
    expect(JobSpecSchema.safeParse({ ...base, array: { count: 2, parameters: [{ a: 1 }] } }).success).toBe(false);
    expect(JobSpecSchema.safeParse({ ...base, array: { count: 0 } }).success).toBe(false);
    expect(JobSpecSchema.safeParse({ ...base, array: { count: 10_001 } }).success).toBe(false);
  });

  it('requires a non-empty command', () => {
    expect(issuesOf({ ...base, command: [] }).map((i) => i.path)).toContain('command');
    expect(issuesOf({ image: base.image }).map((i) => i.path)).toContain('command');
  });
});

describe('fieldIssues', () => {
  it('names nested fields with dotted paths, array indices included', () => {
    const issues = issuesOf({ ...base, resources: { memoryMb: 4 }, inputs: [{ path: 'ok', blob: 'not-a-sha' }] });
    const paths = issues.map((i) => i.path);
    expect(paths).toContain('resources.memoryMb');
    expect(paths).toContain('inputs.0.blob');
    expect(issues.find((i) => i.path === 'inputs.0.blob')?.message).toMatch(/SHA-256/);
  });

  it('uses (body) for a problem with the whole value', () => {
    const r = JobSpecSchema.safeParse('not an object');
    expect(r.success).toBe(false);
    expect(fieldIssues(r.error!).map((i) => i.path)).toEqual(['(body)']);
  });
});

describe('ReportRequestSchema', () => {
  it('discriminates on outcome and rejects a completed report without a manifest', () => {
    const sha = 'd'.repeat(64);
    expect(
      ReportRequestSchema.safeParse({ outcome: 'failed', fencingToken: 1, reason: 'timeout', message: 'x' }).success,
    ).toBe(true);
    expect(
      ReportRequestSchema.safeParse({
        outcome: 'completed',
        fencingToken: 1,
        resultHash: sha,
        outputsBlob: sha,
        stdoutBlob: sha,
        stderrBlob: sha,
        usage: { wallMs: 1, cpuMs: 1, maxMemoryBytes: 1 },
      }).success,
    ).toBe(false);
    // A reason is a snake_case word on the wire; which ones an agent may report is the failure catalogue's to
    // say (the engine refuses others: engine.test.ts).
    expect(
      ReportRequestSchema.safeParse({ outcome: 'failed', fencingToken: 1, reason: 'No Such Reason!', message: 'x' })
        .success,
    ).toBe(false);
    expect(
      ReportRequestSchema.safeParse({ outcome: 'failed', fencingToken: 1, reason: 'out_of_memory', message: 'x' })
        .success,
    ).toBe(true);
  });
});

describe('paths cannot escape', () => {
  it('input paths refuse empty, "." and ".." segments and absolute paths', async () => {
    const { REL_PATH } = await import('../../src/protocol/index.js');
    for (const ok of ['a', 'a/b', 'sweep.py', 'data/train.csv']) expect(REL_PATH.test(ok)).toBe(true);
    for (const bad of ['a//b', 'a/', '/a', '../a', 'a/../b', './a', 'a/.']) expect(REL_PATH.test(bad)).toBe(false);
  });
  it('manifest file paths are relative and stay inside the output directory', async () => {
    const { ManifestSchema } = await import('../../src/protocol/index.js');
    const m = (path: string) => ({
      exitCode: 0,
      files: [{ path, sha256: 'a'.repeat(64), size: 1 }],
      stdoutSha256: 'a'.repeat(64),
    });
    expect(ManifestSchema.safeParse(m('out/result.json')).success).toBe(true);
    for (const bad of ['../x', '/etc/passwd', 'a/../../b', 'a//b'])
      expect(ManifestSchema.safeParse(m(bad)).success).toBe(false);
  });
});

describe('script jobs', () => {
  const script = { language: 'python' as const, source: 'print("hi")\n' };
  it('default the image and the command, and keep them when given', () => {
    const s = JobSpecSchema.parse({ script });
    expect(s.image).toBe('deqo/python-sklearn:bookworm');
    expect(s.command).toEqual(['python3', '/inputs/main.py']);
    expect(s.script).toEqual({ ...script, requirements: [] });
    // A stored spec parses again to itself (the job view re-validates it).
    expect(JobSpecSchema.parse(s)).toEqual(s);
    const own = JobSpecSchema.parse({
      script,
      image: 'python:3.12',
      command: ['python3', '/inputs/main.py', '--fast'],
    });
    expect([own.image, own.command]).toEqual(['python:3.12', ['python3', '/inputs/main.py', '--fast']]);
  });

  it('refuse a spec with neither script nor image/command, naming the field', () => {
    expect(issuesOf({ command: ['true'] })).toEqual([{ path: 'image', message: 'expected an image (or a script)' }]);
    expect(issuesOf({ image: 'deqo/busybox:test' })).toEqual([
      { path: 'command', message: 'expected a command (or a script)' },
    ]);
  });

  it('refuse a source over 256 KiB, bad requirements, more than 50 of them, and an input named main.py', () => {
    expect(issuesOf({ script: { ...script, source: 'é'.repeat(128 * 1024 + 1) } })[0]!.path).toBe('script.source');
    expect(JobSpecSchema.safeParse({ script: { ...script, source: 'x'.repeat(256 * 1024) } }).success).toBe(true);
    for (const bad of ['-r evil.txt', '--index-url=x', 'git+https://x/y', 'a b', '']) {
      expect(issuesOf({ script: { ...script, requirements: [bad] } })[0]!.path, bad).toBe('script.requirements.0');
    }
    const ok = JobSpecSchema.parse({
      script: {
        ...script,
        requirements: ['numpy', 'scikit-learn>=1.2', 'pandas[excel]==2.1.0,!=2.1.1', 'python-dateutil'],
      },
    });
    expect(ok.script?.requirements).toHaveLength(4);
    expect(
      issuesOf({ script: { ...script, requirements: Array.from({ length: 51 }, (_, i) => `pkg${i}`) } })[0]!.path,
    ).toBe('script.requirements');
    expect(issuesOf({ script, inputs: [{ path: 'main.py', blob: 'a'.repeat(64) }] })[0]!.path).toBe('inputs.0.path');
    expect(issuesOf({ script: { ...script, language: 'ruby' } })[0]!.path).toBe('script.language');
  });
});

describe('utf8Bytes', () => {
  it('counts what TextEncoder encodes, for any string (lone surrogates included)', () => {
    const enc = new TextEncoder();
    for (const s of ['', 'a', 'é', '€', '😀', '\ud800', '\udc00x', 'a\ud83d'])
      expect(utf8Bytes(s)).toBe(enc.encode(s).length);
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => utf8Bytes(s) === enc.encode(s).length),
      { numRuns: 2000 },
    );
  });
});
