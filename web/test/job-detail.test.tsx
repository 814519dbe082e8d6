/**
 * The job page: a job's determinism probe in words, and for an array larger than one page, which tasks are shown of
 * how many (the API returns one page of tasks with the counts per state).
 */
import { cleanup, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JobDetail } from '../src/views/JobDetail.js';
import { fakeFetch, json, jobView, renderSignedIn } from './fake-api.js';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('job page', () => {
  it("says what the determinism probe found, and which page of a large array's tasks it shows", async () => {
    const view = {
      ...jobView('job1', 'failed'),
      probe: 'failed' as const,
      taskCounts: { queued: 0, running: 0, verified: 0, failed: 250, cancelled: 0 },
      taskPage: { offset: 0, limit: 100, total: 250, state: null },
    };
    fakeFetch((_m, p) =>
      p.startsWith('/v1/jobs/job1')
        ? json(200, p.includes('/results') ? { jobId: 'job1', state: 'failed', tasks: [] } : view)
        : undefined,
    );
    renderSignedIn(<JobDetail jobId="job1" />);
    await waitFor(() => expect(screen.getByText('determinism probe')).toBeTruthy());
    expect(screen.getByText(/the two runs differed/)).toBeTruthy();
    expect(screen.getByTestId('task-page').textContent).toMatch(/showing tasks 1–1 of 250 \(0 verified, 250 failed\)/);
  });
});
