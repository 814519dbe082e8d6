/** Unit tests of task expansion, task environments, the canonical manifest and the state machines. */
import { describe, expect, it } from 'vitest';
import {
  canonicalManifest,
  canTransition,
  EXECUTION_TRANSITIONS,
  expandTasks,
  JOB_TRANSITIONS,
  MAX_TASKS_PER_JOB,
  countTasks,
  rollUpJobState,
  TASK_TRANSITIONS,
  taskEnv,
} from '../../src/core/index.js';
import { JobSpecSchema, type JobSpec, type JobSpecInput, type Manifest } from '../../src/protocol/index.js';

const base: JobSpecInput = { image: 'deqo/busybox:test', command: ['echo', 'hi'] };
const spec = (over: Partial<JobSpecInput> = {}): JobSpec => JobSpecSchema.parse({ ...base, ...over });

describe('expandTasks', () => {
  it('gives a plain job one task with no parameters', () => {
    expect(expandTasks(spec())).toEqual([{ index: 0, params: {} }]);
  });

  it('gives one task per index for count', () => {
    const tasks = expandTasks(spec({ array: { count: 4 } }));
    expect(tasks.map((t) => t.index)).toEqual([0, 1, 2, 3]);
    expect(tasks.every((t) => Object.keys(t.params).length === 0)).toBe(true);
  });

  it('gives one task per parameters entry, in order', () => {
    const tasks = expandTasks(spec({ array: { parameters: [{ lr: 0.1 }, { lr: 0.01, tag: 'x' }] } }));
    expect(tasks).toEqual([
      { index: 0, params: { lr: 0.1 } },
      { index: 1, params: { lr: 0.01, tag: 'x' } },
    ]);
  });

  it('expands a sweep to the cartesian product, first key varying slowest', () => {
    const tasks = expandTasks(spec({ array: { sweep: { a: [1, 2], b: ['x', 'y', 'z'] } } }));
    expect(tasks.map((t) => t.params)).toEqual([
      { a: 1, b: 'x' },
      { a: 1, b: 'y' },
      { a: 1, b: 'z' },
      { a: 2, b: 'x' },
      { a: 2, b: 'y' },
      { a: 2, b: 'z' },
    ]);
    expect(tasks.map((t) => t.index)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('allows exactly MAX_TASKS_PER_JOB and throws RangeError past it', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => i);
    expect(expandTasks(spec({ array: { sweep: { a: hundred, b: hundred } } }))).toHaveLength(MAX_TASKS_PER_JOB);
    expect(() => expandTasks(spec({ array: { sweep: { a: hundred, b: hundred, c: [1, 2] } } }))).toThrow(RangeError);
    expect(() => expandTasks(spec({ array: { sweep: { a: [...hundred, 100], b: hundred } } }))).toThrow(RangeError);
    expect(MAX_TASKS_PER_JOB).toBe(10_000);
  });
});

describe('taskEnv', () => {
  it('adds DEQO_TASK_INDEX, DEQO_TASK_COUNT, DEQO_PARAMS and DEQO_PARAM_<NAME> to the spec env', () => {
    const s = spec({
      env: { HOME: '/tmp', MODE: 'fast' },
      array: { parameters: [{ lr: 0.5, useGpu: true, name: 'run-1' }] },
    });
    const [t] = expandTasks(s);
    const env = taskEnv(s, t!, 7);
    expect(env).toEqual({
      HOME: '/tmp',
      MODE: 'fast',
      DEQO_TASK_INDEX: '0',
      DEQO_TASK_COUNT: '7',
      DEQO_PARAMS: JSON.stringify({ lr: 0.5, useGpu: true, name: 'run-1' }),
      DEQO_PARAM_LR: '0.5',
      DEQO_PARAM_USEGPU: 'true',
      DEQO_PARAM_NAME: 'run-1',
    });
  });

  it('gives a plain task index 0, count 1 and empty params', () => {
    const s = spec();
    const env = taskEnv(s, { index: 0, params: {} }, 1);
    expect(env).toEqual({ DEQO_TASK_INDEX: '0', DEQO_TASK_COUNT: '1', DEQO_PARAMS: '{}' });
    expect(s.env).toEqual({}); // the spec's env is not modified
  });
});

describe('canonicalManifest', () => {
  const sha = (c: string) => c.repeat(64);
  const m: Manifest = {
    exitCode: 0,
    stdoutSha256: sha('0'),
    files: [
      { path: 'b.txt', sha256: sha('1'), size: 10 },
      { path: 'a/x.bin', sha256: sha('2'), size: 20 },
      { path: 'B.txt', sha256: sha('3'), size: 3 },
    ],
  };

  it('has the documented layout, files sorted by path in code-unit order', () => {
    expect(canonicalManifest(m)).toBe(
      [
        'deqo-result-v1',
        'exit 0',
        `stdout ${sha('0')}`,
        `file ${sha('3')} 3 "B.txt"`,
        `file ${sha('2')} 20 "a/x.bin"`,
        `file ${sha('1')} 10 "b.txt"`,
      ].join('\n') + '\n',
    );
  });

  it('does not depend on the order of files', () => {
    const reversed = { ...m, files: [...m.files].reverse() };
    expect(canonicalManifest(reversed)).toBe(canonicalManifest(m));
  });

  it('changes when the exit code, stdout, a file hash, a size or a path changes', () => {
    const c = canonicalManifest(m);
    expect(canonicalManifest({ ...m, exitCode: 1 })).not.toBe(c);
    expect(canonicalManifest({ ...m, stdoutSha256: sha('9') })).not.toBe(c);
    expect(canonicalManifest({ ...m, files: [{ ...m.files[0]!, sha256: sha('f') }, ...m.files.slice(1)] })).not.toBe(c);
    expect(canonicalManifest({ ...m, files: [{ ...m.files[0]!, size: 11 }, ...m.files.slice(1)] })).not.toBe(c);
    expect(canonicalManifest({ ...m, files: [{ ...m.files[0]!, path: 'c.txt' }, ...m.files.slice(1)] })).not.toBe(c);
  });

  it('cannot be confused by paths containing spaces or newlines', () => {
    const a = canonicalManifest({ ...m, files: [{ path: 'x\nfile y', sha256: sha('1'), size: 1 }] });
    const b = canonicalManifest({
      ...m,
      files: [
        { path: 'x', sha256: sha('1'), size: 1 },
        { path: 'y', sha256: sha('1'), size: 1 },
      ],
    });
    expect(a).not.toBe(b);
    expect(a.split('\n')).toHaveLength(5); // header, exit, stdout, one file line, trailing empty
  });

  it('throws RangeError on duplicate paths', () => {
    expect(() =>
      canonicalManifest({ ...m, files: [...m.files, { path: 'b.txt', sha256: sha('4'), size: 1 }] }),
    ).toThrow(RangeError);
  });
});

describe('state machines', () => {
  it('allows the execution lifecycle and refuses going back', () => {
    expect(canTransition(EXECUTION_TRANSITIONS, 'assigned', 'running')).toBe(true);
    expect(canTransition(EXECUTION_TRANSITIONS, 'running', 'reported')).toBe(true);
    expect(canTransition(EXECUTION_TRANSITIONS, 'reported', 'valid')).toBe(true);
    expect(canTransition(EXECUTION_TRANSITIONS, 'reported', 'invalid')).toBe(true);
    expect(canTransition(EXECUTION_TRANSITIONS, 'running', 'lost')).toBe(true);
    expect(canTransition(EXECUTION_TRANSITIONS, 'assigned', 'lost')).toBe(true);
    expect(canTransition(EXECUTION_TRANSITIONS, 'valid', 'running')).toBe(false);
    expect(canTransition(EXECUTION_TRANSITIONS, 'assigned', 'reported')).toBe(false);
    expect(canTransition(EXECUTION_TRANSITIONS, 'running', 'valid')).toBe(false);
    expect(canTransition(EXECUTION_TRANSITIONS, 'reported', 'cancelled')).toBe(true); // its task was cancelled
    expect(canTransition(EXECUTION_TRANSITIONS, 'valid', 'cancelled')).toBe(false);
    expect(canTransition(EXECUTION_TRANSITIONS, 'lost', 'running')).toBe(false);
  });

  it('has no way out of a terminal state, but for a valid result a re-verification overturns (valid → invalid)', () => {
    expect(canTransition(EXECUTION_TRANSITIONS, 'valid', 'invalid')).toBe(true);
    for (const [table, terminal] of [
      [EXECUTION_TRANSITIONS, ['valid', 'invalid', 'failed', 'lost', 'cancelled']],
      [TASK_TRANSITIONS, ['verified', 'failed', 'cancelled']],
      [JOB_TRANSITIONS, ['succeeded', 'failed', 'cancelled']],
    ] as const) {
      for (const from of terminal) {
        for (const to of Object.keys(table))
          if (!(table === EXECUTION_TRANSITIONS && from === 'valid' && to === 'invalid'))
            expect(canTransition(table as Record<string, readonly string[]>, from, to)).toBe(false);
      }
    }
  });

  it('lets tasks and jobs start, end and be cancelled from any open state', () => {
    expect(canTransition(TASK_TRANSITIONS, 'queued', 'running')).toBe(true);
    expect(canTransition(TASK_TRANSITIONS, 'running', 'verified')).toBe(true);
    expect(canTransition(TASK_TRANSITIONS, 'running', 'queued')).toBe(false);
    expect(canTransition(JOB_TRANSITIONS, 'queued', 'cancelled')).toBe(true);
    expect(canTransition(JOB_TRANSITIONS, 'running', 'succeeded')).toBe(true);
    expect(canTransition(JOB_TRANSITIONS, 'succeeded', 'running')).toBe(false);
  });

  it('rolls task states up into a job state', () => {
    expect(rollUpJobState(countTasks(['queued', 'queued']))).toBe('queued');
    expect(rollUpJobState(countTasks(['queued', 'running']))).toBe('running');
    expect(rollUpJobState(countTasks(['verified', 'queued']))).toBe('running');
    expect(rollUpJobState(countTasks(['failed', 'running']))).toBe('running');
    expect(rollUpJobState(countTasks(['verified', 'verified']))).toBe('succeeded');
    expect(rollUpJobState(countTasks(['verified', 'failed']))).toBe('failed');
    expect(rollUpJobState(countTasks(['verified', 'cancelled']))).toBe('failed');
    expect(rollUpJobState(countTasks(['cancelled', 'cancelled']))).toBe('cancelled');
  });
});
