/**
 * The ledger: append-only double-entry postings (`ledger_entries`) and a cached balance per ledger account
 * (`balances`), both written in one transaction. Balances that must stay non-negative are debited with a
 * conditional update (`WHERE balance + amount >= 0`), so concurrent spenders cannot overdraw.
 * Amounts are micro-credits. Ledger account names: core/ledger.ts.
 */
import type { Kysely } from 'kysely';
import {
  accountLedger,
  assertBalanced,
  circulationExceeded,
  DeqoError,
  escrowLedger,
  formatCredits,
  fromMicro,
  ISSUER,
  lowestBalance,
  type LedgerKind,
  type LedgerTxn,
} from '../core/index.js';
import type { LedgerEntry } from '../protocol/index.js';
import { newId, requireTransaction } from './db.js';
import type { Database } from './schema.js';

/** Thrown (as DeqoError insufficient_funds) when a posting would take a ledger account below zero. */
export function insufficientFunds(account: string, needed: number, available: number): DeqoError {
  return new DeqoError(
    'insufficient_funds',
    `not enough credits in ${account}: needs ${formatCredits(needed)}, has ${formatCredits(available)} (short ${formatCredits(needed - available)})`,
    { account, needed: fromMicro(needed), available: fromMicro(available), shortfall: fromMicro(needed - available) },
  );
}

/**
 * Posts a balanced transaction inside the caller's database transaction `tx`. Throws RangeError for an
 * unbalanced transaction, DeqoError insufficient_funds when a debit would overdraw, DeqoError validation_failed
 * (core circulationExceeded) when a grant would take the issuer below its lowest balance (the caller's transaction
 * must then roll back, which it does when the error propagates out of `db.transaction().execute`).
 * Every debit is a conditional update (`WHERE balance + amount >= lowestBalance`), so concurrent writers cannot
 * pass either bound.
 * Balance rows are written in account-name order, so two transactions never lock the same two in opposite orders.
 */
export async function postTxn(tx: Kysely<Database>, t: LedgerTxn, now: number): Promise<string> {
  assertBalanced(t);
  const txnId = newId('txn');
  for (const p of [...t.postings].sort((a, b) => (a.account < b.account ? -1 : a.account > b.account ? 1 : 0))) {
    if (p.amount < 0) {
      const floor = lowestBalance(p.account);
      if (p.account === ISSUER)
        await tx
          .insertInto('balances')
          .values({ account: p.account, balance: 0 })
          .onConflict((oc) => oc.column('account').doNothing())
          .execute();
      const r = await tx
        .updateTable('balances')
        .set((eb) => ({ balance: eb('balance', '+', p.amount) }))
        .where('account', '=', p.account)
        .where((eb) => eb(eb('balance', '+', p.amount), '>=', floor))
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) {
        const row = await tx
          .selectFrom('balances')
          .select('balance')
          .where('account', '=', p.account)
          .executeTakeFirst();
        const balance = Number(row?.balance ?? 0);
        throw p.account === ISSUER
          ? circulationExceeded(-p.amount, -balance)
          : insufficientFunds(p.account, -p.amount, balance);
      }
    } else {
      await tx
        .insertInto('balances')
        .values({ account: p.account, balance: p.amount })
        .onConflict((oc) =>
          oc.column('account').doUpdateSet((eb) => ({ balance: eb('balances.balance', '+', p.amount) })),
        )
        .execute();
    }
  }
  await tx
    .insertInto('ledger_entries')
    .values(
      t.postings.map((p) => ({
        txn_id: txnId,
        kind: t.kind,
        account: p.account,
        amount: p.amount,
        job_id: t.jobId,
        execution_id: t.executionId,
        memo: t.memo,
        created_at: now,
      })),
    )
    .execute();
  return txnId;
}

/** Balance of one ledger account from the cache, µcr (0 when it never moved). */
export async function balanceOf(db: Kysely<Database>, account: string): Promise<number> {
  const row = await db.selectFrom('balances').select('balance').where('account', '=', account).executeTakeFirst();
  return Number(row?.balance ?? 0);
}

export class LedgerStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Posts a transaction (postTxn: same errors). In a transaction. */
  async post(t: LedgerTxn, now: number): Promise<string> {
    requireTransaction(this.db);
    return postTxn(this.db, t, now);
  }

  /** Cached balance of a ledger account, µcr. */
  balance(account: string): Promise<number> {
    return balanceOf(this.db, account);
  }

  /** Available credits, credits in escrow for the account's unsettled jobs, and provider earnings; µcr. */
  async summary(accountId: string): Promise<{ available: number; inEscrow: number; earned: number }> {
    const available = await balanceOf(this.db, accountLedger(accountId));
    const inEscrow = await this.escrowOfUnsettledJobs(accountId);
    const earned = await this.db
      .selectFrom('ledger_entries')
      .select((eb) => eb.fn.sum<number>('amount').as('s'))
      .where('account', '=', accountLedger(accountId))
      .where('kind', '=', 'payment')
      .executeTakeFirst();
    return { available, inEscrow, earned: Number(earned?.s ?? 0) };
  }

  private async escrowOfUnsettledJobs(accountId: string): Promise<number> {
    const jobs = await this.db
      .selectFrom('jobs')
      .select('id')
      .where('buyer_id', '=', accountId)
      .where('settled_at', 'is', null)
      .execute();
    let total = 0;
    for (let i = 0; i < jobs.length; i += 500) {
      const row = await this.db
        .selectFrom('balances')
        .select((eb) => eb.fn.sum<number>('balance').as('s'))
        .where(
          'account',
          'in',
          jobs.slice(i, i + 500).map((j) => escrowLedger(j.id)),
        )
        .executeTakeFirst();
      total += Number(row?.s ?? 0);
    }
    return total;
  }

  /** Entries of the given ledger accounts (and optionally one job), newest first. */
  async entries(
    accounts: readonly string[],
    opts: { jobId?: string | undefined; limit: number },
  ): Promise<LedgerEntry[]> {
    let q = this.db
      .selectFrom('ledger_entries')
      .selectAll()
      .where('account', 'in', accounts)
      .orderBy('id', 'desc')
      .limit(opts.limit);
    if (opts.jobId) q = q.where('job_id', '=', opts.jobId);
    const rows = await q.execute();
    return rows.map((r) => ({
      id: Number(r.id),
      txnId: r.txn_id,
      at: Number(r.created_at),
      kind: r.kind as LedgerKind,
      account: r.account,
      amount: fromMicro(Number(r.amount)),
      jobId: r.job_id,
      executionId: r.execution_id,
      memo: r.memo,
    }));
  }

  /** Every posting of a job (all ledger accounts), oldest first, µcr. */
  async jobPostings(
    jobId: string,
  ): Promise<Array<{ kind: LedgerKind; account: string; amount: number; executionId: string | null }>> {
    const rows = await this.db
      .selectFrom('ledger_entries')
      .select(['kind', 'account', 'amount', 'execution_id'])
      .where('job_id', '=', jobId)
      .orderBy('id')
      .execute();
    return rows.map((r) => ({
      kind: r.kind as LedgerKind,
      account: r.account,
      amount: Number(r.amount),
      executionId: r.execution_id,
    }));
  }

  /**
   * Checks the ledger against its own rules: every transaction sums to zero, the balances cache equals the
   * sums of the entries (rebuilt here), no account is below its lowest balance (core lowestBalance). Returns the problems found (empty = sound).
   * Reads one snapshot (a REPEATABLE READ transaction), so postings committed meanwhile by another coordinator
   * cannot make the entries and the cached balances disagree.
   */
  async audit(): Promise<string[]> {
    return this.db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute((tx) => auditIn(tx));
  }
}

/** The audit's checks over `db` (see LedgerStore.audit). */
async function auditIn(db: Kysely<Database>): Promise<string[]> {
  const problems: string[] = [];
  const txns = await db
    .selectFrom('ledger_entries')
    .select(['txn_id', (eb) => eb.fn.sum<number>('amount').as('s')])
    .groupBy('txn_id')
    .execute();
  for (const t of txns) if (Number(t.s) !== 0) problems.push(`transaction ${t.txn_id} sums to ${t.s}`);
  const sums = await db
    .selectFrom('ledger_entries')
    .select(['account', (eb) => eb.fn.sum<number>('amount').as('s')])
    .groupBy('account')
    .execute();
  const cached = new Map(
    (await db.selectFrom('balances').selectAll().execute()).map((b) => [b.account, Number(b.balance)]),
  );
  for (const s of sums) {
    const rebuilt = Number(s.s);
    if ((cached.get(s.account) ?? 0) !== rebuilt)
      problems.push(`balance of ${s.account} is ${cached.get(s.account)} but its entries sum to ${rebuilt}`);
    if (rebuilt < lowestBalance(s.account))
      problems.push(`${s.account} is ${rebuilt}, below its lowest balance ${lowestBalance(s.account)}`);
    cached.delete(s.account);
  }
  for (const [account, b] of cached) if (b !== 0) problems.push(`balance of ${account} is ${b} with no entries`);
  return problems;
}
