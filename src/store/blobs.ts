/**
 * Blob records for quotas and expiry: who uploaded what (an account's stored bytes), which jobs use a blob, and
 * which blobs have expired — unused since a cutoff and used by no job still open or ended after another cutoff.
 * Decides nothing: the cutoffs come from the engine (core/limits.ts).
 */
import type { Kysely } from 'kysely';
import { requireTransaction } from './db.js';
import type { Database } from './schema.js';

/** When blobs expire: unused (uploaded or taken up by a job) before `unusedBefore`, epoch ms, and used by no job that is open or ended after `endedBefore`, nor by a job with a canary task (spot-checks replay it). */
export interface BlobExpiry {
  unusedBefore: number;
  endedBefore: number;
}

export class BlobRecordStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Marks `sha256` as uploaded by `accountId` at `now` (it may read it; its quota counts it). In a transaction. */
  async recordUpload(sha256: string, accountId: string, now: number): Promise<void> {
    requireTransaction(this.db);
    await this.db
      .insertInto('blob_access')
      .values({ sha256, account_id: accountId, uploaded_at: now })
      .onConflict((oc) => oc.columns(['sha256', 'account_id']).doUpdateSet({ uploaded_at: now }))
      .execute();
  }

  /** Bytes of the stored blobs `accountId` uploaded; with `unreferencedOnly`, of those no job uses. */
  async uploadedBytes(accountId: string, unreferencedOnly = false): Promise<number> {
    let q = this.db
      .selectFrom('blob_access')
      .innerJoin('blobs', 'blobs.sha256', 'blob_access.sha256')
      .select((eb) => eb.fn.sum<number | string | null>('blobs.size').as('n'))
      .where('blob_access.account_id', '=', accountId)
      .where('blob_access.uploaded_at', 'is not', null);
    if (unreferencedOnly)
      q = q.where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('blob_refs').select('job_id').whereRef('blob_refs.sha256', '=', 'blobs.sha256'))),
      );
    const r = await q.executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /** Records that job `jobId` uses the blobs (its inputs, its executions' logs and outputs). In a transaction. */
  async reference(jobId: string, sha256s: readonly string[]): Promise<void> {
    requireTransaction(this.db);
    const unique = [...new Set(sha256s)];
    if (unique.length === 0) return;
    await this.db
      .insertInto('blob_refs')
      .values(unique.map((sha256) => ({ sha256, job_id: jobId })))
      .onConflict((oc) => oc.columns(['sha256', 'job_id']).doNothing())
      .execute();
  }

  /**
   * Restarts the blobs' unreferenced lifetime at `now` (a job takes them up). Returns how many of the distinct
   * blobs are stored: fewer means one was deleted meanwhile. The row lock it takes makes a concurrent sweep
   * re-check the blob (and keep it). In a transaction.
   */
  async touch(sha256s: readonly string[], now: number): Promise<number> {
    requireTransaction(this.db);
    const unique = [...new Set(sha256s)];
    if (unique.length === 0) return 0;
    const r = await this.db.updateTable('blobs').set({ used_at: now }).where('sha256', 'in', unique).executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  /** Up to `limit` expired blobs (oldest use first). */
  async expired(e: BlobExpiry, limit: number): Promise<string[]> {
    const rows = await this.expiredQuery(e).select('blobs.sha256').orderBy('blobs.used_at').limit(limit).execute();
    return rows.map((r) => r.sha256);
  }

  /**
   * Deletes the records of those of `sha256s` that are still expired (a job may have taken one up since), with
   * their access and reference rows. Returns the ones deleted: their bytes may go. In a transaction.
   */
  async deleteExpired(sha256s: readonly string[], e: BlobExpiry): Promise<string[]> {
    requireTransaction(this.db);
    if (sha256s.length === 0) return [];
    const gone = (
      await this.db
        .deleteFrom('blobs')
        .where('sha256', 'in', sha256s)
        .where((eb) => eb('sha256', 'in', this.expiredQuery(e).select('blobs.sha256')))
        .returning('sha256')
        .execute()
    ).map((r) => r.sha256);
    if (gone.length > 0) {
      await this.db.deleteFrom('blob_access').where('sha256', 'in', gone).execute();
      await this.db.deleteFrom('blob_refs').where('sha256', 'in', gone).execute();
    }
    return gone;
  }

  private expiredQuery(e: BlobExpiry) {
    return this.db
      .selectFrom('blobs')
      .where('blobs.used_at', '<', e.unusedBefore)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('blob_refs')
              .innerJoin('jobs', 'jobs.id', 'blob_refs.job_id')
              .select('blob_refs.job_id')
              .whereRef('blob_refs.sha256', '=', 'blobs.sha256')
              .where((eb) =>
                eb.or([
                  eb('jobs.finished_at', 'is', null),
                  eb('jobs.finished_at', '>=', e.endedBefore),
                  eb.exists(
                    eb
                      .selectFrom('tasks')
                      .select('tasks.id')
                      .whereRef('tasks.job_id', '=', 'jobs.id')
                      .where('tasks.canary', '=', 1),
                  ),
                ]),
              ),
          ),
        ),
      );
  }
}
