/**
 * client, browser-safe entry point: the typed HTTP client and the event-stream reader (no node:*). The dashboard
 * bundles this; Node programs import index.ts, which adds the file transfers.
 */
export { DeqoClient, ApiError, toApiError } from './client.js';
export { parseLiveEvent, readEventStream } from './sse.js';
