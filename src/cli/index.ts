/** cli: the `deqo` command line (main.ts). For benchmarks and tests: the local network it starts and the path of its executable. */
export { DEQO_BIN, startLocalNetwork, type LocalNetwork, type LocalNetworkOptions } from './network.js';
