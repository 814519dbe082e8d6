/**
 * client: the typed HTTP client. Nobody else talks HTTP to the coordinator by hand. This entry point is for Node
 * (the agent, the CLI): browser.ts plus the Node-only file transfers and file hashing (files.ts).
 */
export * from './browser.js';
export { downloadBlob, fetchBlob, sha256File, uploadFile, uploadStream, type Progress } from './files.js';
