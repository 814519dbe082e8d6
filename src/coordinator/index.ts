/** coordinator: the Fastify app (wiring and HTTP only) and its launcher. */
export { buildServer } from './server.js';
export type { ServerDeps } from './http.js';
export { DEFAULT_ENGINE_CONFIG, type EngineConfig } from '../engine/index.js';
export {
  startCoordinator,
  DEFAULT_COORDINATOR_CONFIG,
  type CoordinatorConfig,
  type RunningCoordinator,
} from './start.js';
export { BlobStore } from './blobs.js';
export { createMetrics, COUNTS_CACHE_MS, OFFLINE_AFTER_TTLS, type CoordinatorMetrics } from './metrics.js';
