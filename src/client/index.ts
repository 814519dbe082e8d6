/** client: the typed HTTP client. Nobody else talks HTTP to the coordinator by hand. */
export { DeqoClient, ApiError, type Progress } from './client.js';
