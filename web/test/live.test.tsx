/**
 * Live updates: a job moves on screen from an SSE event, or by polling every 2 s when there is no event stream.
 * The refresh timers (setInterval) are fake and only move when a test advances them, so what moved a job is known
 * without measuring time: while live no timer is advanced (only the event can move it); without a stream, one
 * poll tick does.
 */
import { act, cleanup, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { useLiveMode } from '../src/live.js';
import { Jobs } from '../src/views/Jobs.js';
import { fakeFetch, json, jobView, renderSignedIn } from './fake-api.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
});
afterEach(() => {
  cleanup();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

const badge = () => document.querySelector('tr[data-job="job1"] .badge')?.textContent;

function Mode() {
  return <span data-testid="mode">{useLiveMode()}</span>;
}

const summary = (state: 'running' | 'succeeded') => ({
  id: 'job1',
  name: 'hello',
  state,
  createdAt: 1_700_000_000_000,
  finishedAt: null,
  image: 'deqo/busybox:test',
  tasks: { total: 1, verified: state === 'succeeded' ? 1 : 0, failed: 0 },
});

describe('live job list', () => {
  it('moves a job when an event arrives on the stream', async () => {
    let state: 'running' | 'succeeded' = 'running';
    let push: (s: string) => void = () => {};
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        push = (s) => c.enqueue(new TextEncoder().encode(s));
      },
    });
    const calls = fakeFetch((_m, p) => {
      if (p === '/v1/events')
        return new Response(stream, { status: 200, headers: { 'content-type': 'text/event-stream' } });
      if (p.startsWith('/v1/jobs?')) return json(200, { jobs: [summary(state)] });
      if (p === '/v1/jobs/job1') return json(200, jobView('job1', state));
      return undefined;
    });
    renderSignedIn(
      <>
        <Mode />
        <Jobs />
      </>,
    );
    await waitFor(() => expect(badge()).toBe('running'));
    await waitFor(() => expect(screen.getByTestId('mode').textContent).toBe('live'));
    expect(screen.getByText('replicate, 2 of 2 agree')).toBeTruthy();
    const listReads = calls.filter((c) => c.path.startsWith('/v1/jobs?')).length;
    state = 'succeeded';
    push(
      ': ping\n\nevent: job\ndata: {"jobId":"job1","state":"succeeded","tasks":{"total":1,"verified":1,"failed":0}}\n\n',
    );
    // No refresh timer is advanced: only the event can have made the list be read again.
    await waitFor(() => expect(badge()).toBe('succeeded'));
    expect(calls.filter((c) => c.path.startsWith('/v1/jobs?')).length).toBe(listReads + 1);
  });

  it('polls every 2 s when the coordinator has no event stream', async () => {
    let state: 'running' | 'succeeded' = 'running';
    const calls = fakeFetch((_m, p) => {
      if (p.startsWith('/v1/jobs?')) return json(200, { jobs: [summary(state)] });
      if (p === '/v1/jobs/job1') return json(200, jobView('job1', state));
      return undefined;
    });
    renderSignedIn(
      <>
        <Mode />
        <Jobs />
      </>,
    );
    await waitFor(() => expect(badge()).toBe('running'));
    await waitFor(() => expect(screen.getByTestId('mode').textContent).toBe('polling'));
    const listReads = () => calls.filter((c) => c.path.startsWith('/v1/jobs?')).length;
    const before = listReads();
    state = 'succeeded';
    await act(async () => {
      vi.advanceTimersByTime(1999);
    });
    expect(listReads()).toBe(before); // not read again before the poll is due
    await act(async () => {
      vi.advanceTimersByTime(1);
    });
    await waitFor(() => expect(badge()).toBe('succeeded'));
    expect(listReads()).toBe(before + 1); // read again once, by the poll
    expect(calls.filter((c) => c.path === '/v1/events')).toHaveLength(1);
  });
});
