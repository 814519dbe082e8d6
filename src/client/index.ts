/**
 * client: the typed HTTP client. Nobody else talks HTTP to the coordinator by hand. client.ts and sse.ts are
 * browser-safe; files.ts holds the Node-only file transfers (a browser bundle imports client.js directly).
 */
export { DeqoClient, ApiError } from './client.js';
export { parseLiveEvent, readEventStream } from './sse.js';
export { downloadBlob, fetchBlob, uploadFile, uploadStream, type Progress } from './files.js';
