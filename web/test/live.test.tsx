/** Live updates: a job moves on screen from an SSE event, or by polling every 2 s when there is no event stream. */
import { cleanup, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { useLiveMode } from '../src/live.js';
import { Jobs } from '../src/views/Jobs.js';
import { fakeFetch, json, jobView, renderSignedIn } from './fake-api.js';

afterEach(() => {
  cleanup();
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
    fakeFetch((_m, p) => {
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
    state = 'succeeded';
    push(
      ': ping\n\nevent: job\ndata: {"jobId":"job1","state":"succeeded","tasks":{"total":1,"verified":1,"failed":0}}\n\n',
    );
    // Within a second: only the event can have caused it (no polling while live).
    await waitFor(() => expect(badge()).toBe('succeeded'), { timeout: 1000 });
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
    state = 'succeeded';
    await new Promise((r) => setTimeout(r, 300));
    expect(badge()).toBe('running');
    await waitFor(() => expect(badge()).toBe('succeeded'), { timeout: 4000 });
    expect(calls.filter((c) => c.path === '/v1/events')).toHaveLength(1);
  });
});
