/** The live output buffers: the coordinator's per-execution buffer and the agent's cut of chunks at UTF-8 boundaries. */
import { appendFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/client/index.js';
import { LogTail, wholeCharsLength } from '../../src/agent/log-tail.js';
import { LiveLogs } from '../../src/coordinator/live-logs.js';

describe('LiveLogs (coordinator)', () => {
  it('appends by byte offset, skipping what was already received and joining over a gap', () => {
    const logs = new LiveLogs();
    expect(logs.append('e1', 'stdout', 0, 'ab')).toBe('ab');
    expect(logs.append('e1', 'stdout', 0, 'ab')).toBeNull(); // resent
    expect(logs.append('e1', 'stdout', 1, 'bcd')).toBe('cd'); // overlapping
    expect(logs.append('e1', 'stdout', 10, 'z')).toBe('z'); // a lost chunk before it
    expect(logs.text('e1', 'stdout')).toBe('abcdz');
    expect(logs.text('e1', 'stderr')).toBe('');
    expect(logs.text('nope', 'stdout')).toBe('');
  });

  it('keeps the last bytes of each stream, starting on a whole character, and forgets the oldest executions', () => {
    const logs = new LiveLogs(5, 2);
    logs.append('e1', 'stdout', 0, 'abcdé'); // 6 bytes: é is 2
    expect(logs.text('e1', 'stdout')).toBe('bcdé');
    logs.append('e1', 'stdout', 6, 'éé');
    expect(logs.text('e1', 'stdout')).toBe('éé'); // the last 5 bytes would start inside an é
    logs.append('e2', 'stdout', 0, 'two');
    logs.append('e1', 'stderr', 0, 'touch'); // e1 written more recently than e2
    logs.append('e3', 'stdout', 0, 'three');
    expect([logs.text('e1', 'stderr'), logs.text('e2', 'stdout'), logs.text('e3', 'stdout')]).toEqual([
      'touch',
      '',
      'three',
    ]);
  });
});

describe('LogTail (agent)', () => {
  it('wholeCharsLength cuts before an incomplete UTF-8 character', () => {
    const b = Buffer.from('aé€😀'); // characters end at bytes 1, 3, 6, 10
    const expected: Record<number, number> = { 0: 0, 1: 1, 2: 1, 3: 3, 4: 3, 5: 3, 6: 6, 7: 6, 8: 6, 9: 6, 10: 10 };
    for (const [cut, n] of Object.entries(expected)) expect(wholeCharsLength(b.subarray(0, Number(cut))), cut).toBe(n);
  });

  it('sends what is new in each file with its byte offset, retries a failed send, and stops at 409', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'deqo-tail-'));
    const paths = { stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr') };
    const sent: Array<[string, number, string]> = [];
    const failures: Error[] = [];
    let attempts = 0;
    const tail = new LogTail(
      paths,
      async (stream, offset, data) => {
        attempts++;
        const f = failures.shift();
        if (f) throw f;
        sent.push([stream, offset, data]);
      },
      5,
    );
    const until = async (pred: () => boolean) => {
      while (!pred()) await new Promise((r) => setTimeout(r, 5));
    };
    tail.start();
    await writeFile(paths.stdout, 'one\n');
    await until(() => sent.length === 1);
    failures.push(new Error('coordinator unreachable'));
    await appendFile(paths.stdout, 'two\n');
    await writeFile(paths.stderr, 'err\n');
    await until(() => sent.length === 3);
    expect(sent).toEqual([
      ['stdout', 0, 'one\n'],
      ['stdout', 4, 'two\n'],
      ['stderr', 0, 'err\n'],
    ]);
    failures.push(new ApiError(409, 'stale_lease', 'gone'));
    await appendFile(paths.stdout, 'three\n');
    await until(() => failures.length === 0);
    const after = attempts;
    await appendFile(paths.stdout, 'four\n');
    await tail.stop();
    expect(sent).toHaveLength(3);
    expect(attempts).toBe(after); // stopped: nothing more was tried
  });

  it('does not queue looks behind a send that hangs, and stops without a last look after a failed send', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'deqo-tail-'));
    const paths = { stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr') };
    await writeFile(paths.stdout, 'one\n');
    let attempts = 0;
    let hang!: (err: Error) => void;
    const tail = new LogTail(
      paths,
      (): Promise<void> => {
        attempts++;
        if (attempts > 1) return Promise.reject(new ApiError(0, 'unreachable', 'down', undefined, true));
        return new Promise((_resolve, reject) => (hang = reject)); // a coordinator that does not answer
      },
      5,
    );
    tail.start();
    while (attempts === 0) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 5)); // ten intervals pass meanwhile
    expect(attempts).toBe(1);
    const stopped = tail.stop();
    hang(new ApiError(0, 'unreachable', 'timed out', undefined, true));
    await stopped;
    expect(attempts).toBe(1); // the send in flight failed: no last look
  });
});
