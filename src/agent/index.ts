/** agent: the provider daemon, its executor port and the Docker executor, identity, offer and result packaging. */
export { Agent, type AgentConfig } from './agent.js';
export { probeCapacity } from './probe.js';
export type { Executor, ExecutionRequest, ExecutionOutcome, OwnContainer } from './executor.js';
export { ExecutorUnavailableError } from './executor.js';
export { DockerExecutor } from './docker-executor.js';
export { JOB_NETWORK, NetworkFenceError } from './job-network.js';
export { loadOrCreateIdentity, signRegistration } from './identity.js';
export {
  buildAgentSettings,
  describeOffer,
  OfferConfigError,
  readAgentConfigFile,
  type AgentSettings,
  type OfferFlags,
} from './offer.js';
export { FileLoadSampler } from './owner-load.js';
export { buildManifest, tarOutputs } from './results.js';
