/** agent: the provider daemon and its executor port. */
export { Agent, type AgentConfig } from './agent.js';
export { probeCapacity } from './probe.js';
export type { Executor, ExecutionRequest, ExecutionOutcome } from './executor.js';
export { ExecutorUnavailableError } from './executor.js';
