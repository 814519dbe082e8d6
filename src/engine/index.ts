/** engine: coordinator services using core + store (scheduler loop, leases, verifier). */
export { Engine, type Clock } from './engine.js';
export { DEFAULT_ENGINE_CONFIG, type EngineConfig } from './config.js';
export { classifyReport, verifyTask } from './verifier.js';
export { explainJob } from './explain.js';
export { quoteJob } from './quote.js';
export {
  EngineEvents,
  type CreditKind,
  type CreditsMovedEvent,
  type DispatchedEvent,
  type EngineEventMap,
  type ExecutionSettledEvent,
  type JobEndedEvent,
  type TaskDecidedEvent,
} from './events.js';
