/** coordinator: the Fastify app (wiring and HTTP only) and its launcher. */
export { buildServer, type ServerDeps } from './server.js';
export { startCoordinator, DEFAULT_COORDINATOR_CONFIG, type CoordinatorConfig, type RunningCoordinator } from './start.js';
export { createAccountWithKey, generateApiKey, hashApiKey } from './auth.js';
export { BlobStore } from './blobs.js';
export { createMetrics, COUNTS_CACHE_MS, OFFLINE_AFTER_TTLS, type CoordinatorMetrics } from './metrics.js';
