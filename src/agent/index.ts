/** agent: the provider daemon and its executor port. */
export { Agent, DEFAULT_GRACE_PERIOD_MS, type AgentConfig } from './agent.js';
export { probeCapacity } from './probe.js';
export type { Executor, ExecutionRequest, ExecutionOutcome, OwnContainer } from './executor.js';
export { ExecutorUnavailableError } from './executor.js';
