/** Test support: a fake coordinator behind `fetch` (answers built from the protocol schemas) and a signed-in render. */
import { render } from '@testing-library/react';
import type { ReactElement } from 'react';
import { vi } from 'vitest';
import { JobSpecSchema, type JobView, type Quote } from '../../src/protocol/index.js';
import { DashboardApi } from '../src/api.js';
import { LiveProvider } from '../src/live.js';
import { SessionContext } from '../src/session-context.js';

/** A route handler: returns a Response for requests it knows, undefined for the rest (answered 404 route). */
export type Handler = (method: string, path: string, body: unknown) => Response | Promise<Response> | undefined;

export const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
const notFound = (m: string, p: string) =>
  json(404, { error: { code: 'not_found', message: `route ${m} ${p} not found` } });

/** Replaces global fetch with `handler` (over http://deqo.test); returns the calls made. */
export function fakeFetch(handler: Handler): Array<{ method: string; path: string }> {
  const calls: Array<{ method: string; path: string }> = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const u = new URL(url);
    const method = init.method ?? 'GET';
    const path = u.pathname + u.search;
    calls.push({ method, path });
    const body = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
    return (await handler(method, path, body)) ?? notFound(method, u.pathname);
  });
  return calls;
}

/** Renders `ui` as a signed-in buyer (or `scope`) of the fake coordinator. */
export function renderSignedIn(ui: ReactElement, scope: 'buyer' | 'provider' = 'buyer') {
  const api = new DashboardApi('http://deqo.test', 'dq_test');
  const me = { accountId: 'acct1', accountName: `test-${scope}`, roles: [scope], scope };
  return render(
    <SessionContext.Provider value={{ api, me }}>
      <LiveProvider api={api}>{ui}</LiveProvider>
    </SessionContext.Provider>,
  );
}

/** A valid job view in `state` (one task, two replicas). */
export function jobView(id: string, state: JobView['state']): JobView {
  const done = state === 'succeeded';
  return {
    id,
    name: 'hello',
    state,
    createdAt: 1_700_000_000_000,
    finishedAt: done ? 1_700_000_005_000 : null,
    spec: JobSpecSchema.parse({
      image: 'deqo/busybox:test',
      command: ['echo', 'hi'],
      verification: { replicas: 2, quorum: 2 },
    }),
    taskCounts: { queued: 0, running: done ? 0 : 1, verified: done ? 1 : 0, failed: 0, cancelled: 0 },
    taskPage: { offset: 0, limit: 100, total: 1, state: null },
    tasks: [
      {
        id: 't1',
        index: 0,
        params: {},
        state: done ? 'verified' : 'running',
        targetReplicas: 2,
        resultHash: null,
        failure: null,
        audit: null,
        executions: ['provider-1', 'provider-2'].map((n, i) => ({
          id: `e${i}`,
          taskId: 't1',
          agentId: `a${i}`,
          agentName: n,
          providerId: `p${i}`,
          state: done ? ('valid' as const) : ('running' as const),
          desired: 'run' as const,
          createdAt: 1,
          startedAt: 2,
          finishedAt: done ? 3 : null,
          exitCode: done ? 0 : null,
          resultHash: null,
          failure: null,
          usage: null,
          stdoutBlob: null,
          stderrBlob: null,
          outputsBlob: null,
          paid: done ? 0.001 : null,
        })),
      },
    ],
    billing: {
      escrowHeld: 1,
      paid: done ? 0.002 : 0,
      fees: 0,
      refunded: done ? 0.998 : 0,
      inEscrow: done ? 0 : 1,
      settled: done,
    },
    history: [],
  };
}

/** A quote; `affordable` false makes the buyer short by 2 credits. */
export function quote(affordable: boolean): Quote {
  return {
    errorBound: null,
    tasks: 1,
    mode: 'replicate',
    executionMaxCost: 0.5,
    expectedSecondsPerExecution: 60,
    escrow: 1,
    matchingProviders: 3,
    modes: [{ mode: 'replicate', executionsPerTask: 2, maxCost: 1, expectedCost: 0.1 }],
    cheapestMatchingCpuHour: 0.05,
    feeBps: 0,
    balance: affordable ? 100 : 0,
    affordable,
    shortfall: affordable ? 0 : 2,
  };
}
