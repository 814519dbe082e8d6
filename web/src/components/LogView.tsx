/**
 * stdout/stderr of one execution: streamed live while it runs (log events, or polling the buffered live log when
 * there is no event stream), then the stored logs once it reported.
 */
import { useEffect, useState } from 'react';
import { NotSupportedError, type DashboardApi } from '../api.js';
import { useLiveEvents, useLiveMode } from '../live.js';

export interface LogSource {
  jobId: string;
  executionId: string;
  running: boolean;
  stdoutBlob: string | null;
  stderrBlob: string | null;
}

/** Shows both streams of `src`; `label` names the region. */
export function LogView({ api, src, label }: { api: DashboardApi; src: LogSource; label: string }) {
  const [out, setOut] = useState({ stdout: '', stderr: '' });
  const [note, setNote] = useState('');
  const mode = useLiveMode();
  useLiveEvents((e) => {
    if (e.type === 'log' && e.data.executionId === src.executionId && src.running) {
      setOut((o) => ({ ...o, [e.data.stream]: o[e.data.stream] + e.data.data }));
    }
  });
  // Running: catch up from the buffered log (and keep polling it without an event stream).
  useEffect(() => {
    if (!src.running) return;
    let stop = false;
    const pull = async () => {
      try {
        const [stdout, stderr] = await Promise.all([
          api.executionLog(src.jobId, src.executionId, 'stdout'),
          api.executionLog(src.jobId, src.executionId, 'stderr'),
        ]);
        if (!stop)
          setOut((o) => ({
            stdout: stdout.length >= o.stdout.length ? stdout : o.stdout,
            stderr: stderr.length >= o.stderr.length ? stderr : o.stderr,
          }));
        return true;
      } catch (e) {
        if (e instanceof NotSupportedError) {
          setNote('Live output is not available on this coordinator; the logs appear when the execution reports.');
          return false;
        }
        return true;
      }
    };
    let timer: ReturnType<typeof setInterval> | undefined;
    void pull().then((ok) => {
      if (ok && mode !== 'live' && !stop) timer = setInterval(() => void pull(), 2000);
    });
    return () => {
      stop = true;
      if (timer) clearInterval(timer);
    };
  }, [api, src.jobId, src.executionId, src.running, mode]);
  // Reported: the stored logs are the truth.
  useEffect(() => {
    if (src.running || (!src.stdoutBlob && !src.stderrBlob)) return;
    let stop = false;
    const text = async (b: string | null) => (b ? (await api.blob(b)).text() : '');
    Promise.all([text(src.stdoutBlob), text(src.stderrBlob)])
      .then(([stdout, stderr]) => {
        if (!stop) {
          setOut({ stdout, stderr });
          setNote('');
        }
      })
      .catch((e: Error) => {
        if (!stop) setNote(`Could not load the logs: ${e.message}`);
      });
    return () => {
      stop = true;
    };
  }, [api, src.running, src.stdoutBlob, src.stderrBlob]);
  return (
    <div className="logs" role="region" aria-label={label}>
      {note && <p className="muted">{note}</p>}
      <h4>stdout</h4>
      <pre className="log" aria-live="polite" data-stream="stdout">
        {out.stdout || (src.running ? '…' : '(empty)')}
      </pre>
      {out.stderr && (
        <>
          <h4>stderr</h4>
          <pre className="log log-err" data-stream="stderr">
            {out.stderr}
          </pre>
        </>
      )}
    </div>
  );
}
