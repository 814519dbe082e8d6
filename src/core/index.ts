/** core: the pure domain. No I/O, no clock (time is passed in), no node:* imports. */
export * from './errors.js';
export * from './states.js';
export * from './tasks.js';
export * from './manifest.js';
export * from './verification.js';
export * from './matching.js';
export * from './scheduler.js';
export * from './prediction.js';
export * from './money.js';
export * from './format.js';
export * from './pricing.js';
export * from './ledger.js';
export * from './reputation.js';
export * from './idle-policy.js';
export * from './faults.js';
