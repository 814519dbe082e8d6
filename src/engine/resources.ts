/**
 * What the engine's stage systems share (one object, passed to each): the store, the blobs, settings, the clock, the
 * random source, the log and the event emitter. Modelled on trigger.dev's run-engine `systems/` (systems sharing one
 * resources object), which keeps each stage small and its dependencies visible.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { AccountLimits, CredibilityConfig, QuotaConfig } from '../core/index.js';
import type { Store } from '../store/index.js';
import type { EngineConfig } from './config.js';
import type { EngineEvents } from './events.js';

/** Time source in epoch ms (injected so tests and simulations control it). */
export type Clock = () => number;

/**
 * Market settings: the platform fee on payments (basis points, 0–10,000), the reputation quota rules, and the
 * credibility model (saboteur bound, probation, spot-check rate: core/credibility.ts).
 */
export interface MarketPolicy {
  feeBps: number;
  quota: QuotaConfig;
  credibility: CredibilityConfig;
}

/**
 * The port through which the engine reads and deletes blob bytes (the coordinator's BlobStore fills it). `open`
 * resolves to a stream of the blob named by its SHA-256 (hex), or rejects: with DeqoError not_found when no such
 * blob is stored. `remove` deletes a blob's bytes (nothing when there are none).
 */
export interface BlobReader {
  open(sha256: string): Promise<{ stream: Readable }>;
  remove(sha256: string): Promise<void>;
}

export interface EngineResources {
  store: Store;
  /** Blob bytes, for checking what reports name (an outputs tarball against its manifest, reports.ts). */
  blobs: BlobReader;
  config: EngineConfig;
  policy: MarketPolicy;
  /** Per-account limits: queued tasks, blob bytes and blob lifetimes (core/limits.ts). */
  limits: AccountLimits;
  log: Logger;
  now: Clock;
  /** Random draws in [0, 1) (adaptive replication), injected so tests can decide them. */
  random: () => number;
  events: EngineEvents;
}
