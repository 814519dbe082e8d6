/** Small data hooks shared by the views. */
import { useCallback, useEffect, useRef, useState } from 'react';

/** The state of one async load: the last data (kept while reloading), the last error, whether it is loading. */
export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `load` now and whenever `deps` change (e.g. a refresh tick); keeps the previous data while a reload runs and
 * ignores answers that arrive after a newer load started.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<Error>();
  const [loading, setLoading] = useState(true);
  const [nonce, setNonce] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    setLoading(true);
    load()
      .then(
        (d) => {
          if (mine === seq.current) {
            setData(d);
            setError(undefined);
          }
        },
        (e: Error) => {
          if (mine === seq.current) setError(e);
        },
      )
      .finally(() => {
        if (mine === seq.current) setLoading(false);
      });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, nonce]);
  const reload = useCallback(() => setNonce((n) => n + 1), []);
  return { data, error, loading, reload };
}
