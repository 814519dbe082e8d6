/** core: the pure domain. No I/O, no clock (time is passed in), no node:* imports. */
export * from './errors.js';
export * from './states.js';
export * from './tasks.js';
export * from './manifest.js';
export * from './verification.js';
export * from './scheduler.js';
