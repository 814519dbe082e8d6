/**
 * Blobs as accounts hold them: who may upload (buyers and admins anything; a provider only while it runs an
 * execution: its logs and outputs), how many bytes an account may keep (core/limits.ts: all a buyer uploaded; what
 * no report named yet, for a provider key), recording an upload, and
 * the sweep that deletes expired blobs — unused for `limits.unreferencedBlobTtlMs` and used by no job that is open or
 * ended less than `limits.blobRetentionMs` ago (nor by a job with a canary task, which spot-checks replay).
 */
import { blobQuotaExceeded, blobRoom, DeqoError } from '../core/index.js';
import type { Role } from '../store/index.js';
import type { EngineResources } from './resources.js';

/** Blobs deleted per sweep transaction. */
const SWEEP_BATCH = 500;

/** What an upload may take: `room` bytes; past them, `exceeded(size)` is the error. */
export interface UploadAllowance {
  room: number;
  exceeded: (size: number) => DeqoError;
}

export class BlobSystem {
  /** When the last sweep ran, epoch ms (null: never). */
  private lastSweepAt: number | null = null;

  constructor(private readonly r: EngineResources) {}

  /**
   * Checks an account may upload `declared` bytes (the request's length, when known). Throws DeqoError forbidden for
   * a provider key without a running execution, quota_exceeded (limit `blobBytes`) when the bytes do not fit.
   */
  async admitUpload(principal: { accountId: string; scope: Role }, declared?: number): Promise<UploadAllowance> {
    const { store, limits } = this.r;
    const provider = principal.scope === 'provider';
    if (provider && !(await store.executions.providerRunning(principal.accountId))) {
      throw new DeqoError(
        'forbidden',
        'a provider key uploads only the logs and outputs of an execution it is running; upload job inputs with a buyer key',
      );
    }
    // A provider's reported logs and outputs belong to the jobs that use them: only what no report named counts.
    const used = await store.blobs.uploadedBytes(principal.accountId, provider);
    const retryAfterSec = Math.ceil(limits.blobSweepMs / 1000);
    const room = blobRoom(used, declared, limits.blobBytes, retryAfterSec);
    return { room, exceeded: (size) => blobQuotaExceeded(used, size, limits.blobBytes, retryAfterSec) };
  }

  /** Records bytes an account uploaded (already stored): it may read them, and its quota counts them. */
  async uploaded(accountId: string, sha256: string, size: number): Promise<void> {
    await this.r.store.transaction(async (tx) => {
      const now = this.r.now();
      await tx.accounts.recordBlob(sha256, size, now);
      await tx.blobs.recordUpload(sha256, accountId, now);
    });
  }

  /** Sweeps when `limits.blobSweepMs` passed since the last sweep (the engine's tick calls this). */
  async sweepIfDue(): Promise<void> {
    const now = this.r.now();
    if (this.lastSweepAt !== null && now - this.lastSweepAt < this.r.limits.blobSweepMs) return;
    this.lastSweepAt = now;
    await this.sweep();
  }

  /**
   * Deletes expired blobs: their records first (conditionally, in one transaction per batch), then their bytes.
   * Returns how many were deleted.
   */
  async sweep(): Promise<number> {
    const { store, limits, blobs, log } = this.r;
    const now = this.r.now();
    const expiry = { unusedBefore: now - limits.unreferencedBlobTtlMs, endedBefore: now - limits.blobRetentionMs };
    let deleted = 0;
    for (;;) {
      const candidates = await store.blobs.expired(expiry, SWEEP_BATCH);
      if (candidates.length === 0) break;
      const gone = await store.transaction((tx) => tx.blobs.deleteExpired(candidates, expiry));
      for (const sha of gone) await blobs.remove(sha);
      deleted += gone.length;
      // A short batch was the last; an empty deletion means jobs took them up meanwhile: the next sweep goes on.
      if (candidates.length < SWEEP_BATCH || gone.length === 0) break;
    }
    if (deleted > 0) log.info({ deleted }, 'expired blobs deleted');
    return deleted;
  }
}
