/**
 * Live updates for the whole app: one GET /v1/events stream per signed-in session, fanned out to the views.
 * When the coordinator has no event stream (404), views fall back to polling every 2 s — no page reloads either way.
 */
import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from 'react';
import type { DashboardApi } from './api.js';
import type { LiveEvent } from './live-types.js';

/** `live`: events arrive over SSE; `polling`: the coordinator has no event stream; `connecting` at first. */
export type LiveMode = 'connecting' | 'live' | 'polling';

interface LiveHub {
  mode: LiveMode;
  subscribe(fn: (e: LiveEvent) => void): () => void;
}

const LiveContext = createContext<LiveHub>({ mode: 'polling', subscribe: () => () => {} });

/** Opens the event stream for `api` and shares it with every view below. */
export function LiveProvider({ api, children }: { api: DashboardApi; children: ReactNode }) {
  const [mode, setMode] = useState<LiveMode>('connecting');
  const subs = useRef(new Set<(e: LiveEvent) => void>());
  useEffect(() => {
    const ctl = new AbortController();
    api
      .events({
        signal: ctl.signal,
        onOpen: () => setMode('live'),
        onEvent: (e) => {
          for (const fn of subs.current) fn(e);
        },
      })
      .then((supported) => {
        if (!supported) setMode('polling');
      })
      .catch(() => setMode('polling'));
    return () => ctl.abort();
  }, [api]);
  const hub: LiveHub = {
    mode,
    subscribe: (fn) => {
      subs.current.add(fn);
      return () => {
        subs.current.delete(fn);
      };
    },
  };
  return <LiveContext.Provider value={hub}>{children}</LiveContext.Provider>;
}

/** The live mode (for the header's indicator). */
export function useLiveMode(): LiveMode {
  return useContext(LiveContext).mode;
}

/** Calls `fn` for every live event (latest `fn`, subscribed once). */
export function useLiveEvents(fn: (e: LiveEvent) => void): void {
  const hub = useContext(LiveContext);
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => hub.subscribe((e) => ref.current(e)), [hub]);
}

/**
 * A counter that goes up whenever data matching `matches` may have changed: on each matching live event, or
 * every `pollMs` when there is no event stream (and every `safetyMs` even with one). Use it as an effect dependency.
 */
export function useRefreshTick(matches: (e: LiveEvent) => boolean, pollMs = 2000, safetyMs = 15_000): number {
  const mode = useLiveMode();
  const [tick, setTick] = useState(0);
  useLiveEvents((e) => {
    if (matches(e)) setTick((t) => t + 1);
  });
  useEffect(() => {
    const t = setInterval(() => setTick((x) => x + 1), mode === 'live' ? safetyMs : pollMs);
    return () => clearInterval(t);
  }, [mode, pollMs, safetyMs]);
  return tick;
}
