/** protocol: zod schemas and inferred types shared by every part. Imports zod only. */
export * from './offer.js';
export * from './limits.js';
export * from './job.js';
export * from './states.js';
export * from './api.js';
export * from './market.js';
export * from './errors.js';
export * from './live.js';
