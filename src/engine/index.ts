/** engine: coordinator services using core + store, as stage systems (see engine.ts and README.md). */
export { Engine, DEFAULT_MARKET_POLICY, type EngineOptions } from './engine.js';
export { DEFAULT_ENGINE_CONFIG, type EngineConfig } from './config.js';
export type { SchedulingSnapshot } from './scheduling.js';
export type { BlobReader, Clock, MarketPolicy } from './resources.js';
export { classifyReport, type ReportCheck } from './reports.js';
export { checkOutputs } from './outputs.js';
export type { VerifyOutcome } from './verification.js';
export { generateApiKey, hashApiKey, type AgentRegistration } from './accounts.js';
export { explainJob } from './explain.js';
export { quoteJob } from './quote.js';
export { jobResults } from './results.js';
export { PLATFORM_ACCOUNT } from './spotchecks.js';
export {
  EngineEvents,
  type CreditKind,
  type CreditsMovedEvent,
  type DispatchedEvent,
  type EngineEventMap,
  type ExecutionSettledEvent,
  type JobEndedEvent,
  type SettledExecution,
  type SettledJob,
  type TaskDecidedEvent,
} from './events.js';
