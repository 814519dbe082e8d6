/**
 * Reading a Server-Sent Events stream (WHATWG HTML "Server-sent events", §9.2: lines `event:` and `data:`,
 * comments starting with `:`, an event ending at a blank line) into typed live events. Browser-safe.
 */
import { LIVE_EVENT_SCHEMAS, type LiveEvent } from '../protocol/index.js';

/** Turns one event's `event` name and joined `data` lines into a LiveEvent; null for an unknown name or bad data. */
export function parseLiveEvent(name: string, data: string): LiveEvent | null {
  if (!Object.hasOwn(LIVE_EVENT_SCHEMAS, name)) return null;
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return null;
  }
  const r = LIVE_EVENT_SCHEMAS[name as LiveEvent['event']].safeParse(json);
  return r.success ? ({ event: name, data: r.data } as LiveEvent) : null;
}

/**
 * Reads `body` to its end (or until `signal` aborts), calling `onEvent` for each well-formed live event.
 * Events of unknown names or with data that fails its schema are skipped (a newer coordinator may send more).
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  onEvent: (e: LiveEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const onAbort = (): void => {
    void reader.cancel().catch(() => undefined);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  let buffered = '';
  let name = 'message';
  let data: string[] = [];
  const line = (l: string): void => {
    if (l === '') {
      if (data.length > 0) {
        const e = parseLiveEvent(name, data.join('\n'));
        if (e) onEvent(e);
      }
      name = 'message';
      data = [];
      return;
    }
    if (l.startsWith(':')) return;
    const colon = l.indexOf(':');
    const field = colon === -1 ? l : l.slice(0, colon);
    const value = colon === -1 ? '' : l.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  };
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
      if (chunk.done) return;
      buffered += decoder.decode(chunk.value, { stream: true });
      const lines = buffered.split(/\r\n|\r|\n/);
      buffered = lines.pop() ?? '';
      for (const l of lines) line(l);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
