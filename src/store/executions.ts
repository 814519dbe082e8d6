/**
 * Executions: inserting placed executions, recording an agent's report, moving executions along core's
 * EXECUTION_TRANSITIONS (`WHERE state IN (...)`, so a stale writer changes nothing), and the reads around them.
 * Leases (claim, renew, expire) are leases.ts.
 */
import type { Kysely } from 'kysely';
import { EXECUTION_TRANSITIONS, type ProbeRun } from '../core/index.js';
import {
  FailureSchema,
  ManifestSchema,
  type ExecutionState,
  type Failure,
  type Manifest,
  type Price,
  type Usage,
} from '../protocol/index.js';
import { newId, requireTransaction } from './db.js';
import type { Database } from './schema.js';

/** The end of an execution as recorded: `reported` results vote, `failed` are provider-side errors. */
export type ExecutionEnd =
  | {
      state: 'reported';
      verdict: string;
      exitCode: number | null;
      resultHash: string | null;
      manifest: Manifest | null;
      failure: Failure | null;
      usage: Usage | null;
      stdoutBlob: string | null;
      stderrBlob: string | null;
      outputsBlob: string | null;
    }
  | {
      state: 'failed';
      failure: Failure;
      usage: Usage | null;
      stdoutBlob: string | null;
      stderrBlob: string | null;
    };

/**
 * A new execution placed on an agent, paid at `price` (its agent's offer when placed); `probe`: its determinism probe
 * pair (core/probe.ts), absent or 0 for an ordinary execution.
 */
export interface NewExecution {
  taskId: string;
  jobId: string;
  agentId: string;
  providerId: string;
  price: Price;
  probe?: number;
}

/** A valid execution as backtracking reads it. */
export interface ValidExecution {
  id: string;
  providerId: string;
  verdict: string | null;
  paid: number | null;
  finishedAt: number | null;
  outputsBlob: string | null;
  stdoutBlob: string | null;
  stderrBlob: string | null;
}

/**
 * A task's comparable result: an execution that reported a manifest (reported, valid or invalid), with its verdict,
 * result hash, manifest, outputs blob and agent. What the verifier's comparator grouping reads (engine/compare.ts).
 */
export interface ComparableResult {
  id: string;
  agentId: string;
  providerId: string;
  verdict: string;
  resultHash: string;
  manifest: Manifest;
  outputsBlob: string;
  /** When it reported, epoch ms. */
  finishedAt: number;
}

/** A determinism probe execution (core/probe.ts ProbeRun) with its provider and outputs tarball. */
export interface ProbeResult extends ProbeRun {
  providerId: string;
  outputsBlob: string | null;
}

/** Who holds an execution and in which state, with its current fencing token, job and task. */
export interface LeaseInfo {
  agentId: string;
  providerId: string;
  state: ExecutionState;
  fencingToken: number;
  jobId: string;
  taskId: string;
  buyerId: string;
  /** When the agent claimed it (epoch ms, the claiming coordinator's clock); null while not claimed. */
  startedAt: number | null;
  /** Its determinism probe pair, or 0 for an ordinary execution. */
  probe: number;
}

export class ExecutionStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** True when the provider has an execution running (index executions_provider_created). */
  async providerRunning(providerId: string): Promise<boolean> {
    const r = await this.db
      .selectFrom('executions')
      .select('id')
      .where('provider_id', '=', providerId)
      .where('state', '=', 'running')
      .limit(1)
      .executeTakeFirst();
    return r !== undefined;
  }

  /** Inserts executions as `assigned` (desired run). Returns their ids, in order. In a transaction. */
  async insert(executions: readonly NewExecution[], now: number): Promise<string[]> {
    requireTransaction(this.db);
    if (executions.length === 0) return [];
    const rows = executions.map((e) => ({
      id: newId('exec'),
      task_id: e.taskId,
      job_id: e.jobId,
      agent_id: e.agentId,
      provider_id: e.providerId,
      state: 'assigned' as const,
      desired: 'run' as const,
      fencing_token: 0,
      lease_expires_at: null,
      created_at: now,
      started_at: null,
      finished_at: null,
      exit_code: null,
      result_hash: null,
      verdict: null,
      failure: null,
      usage: null,
      manifest: null,
      stdout_blob: null,
      stderr_blob: null,
      outputs_blob: null,
      revision: 0,
      price: JSON.stringify(e.price),
      paid: null,
      settled_at: null,
      probe: e.probe ?? 0,
    }));
    for (let i = 0; i < rows.length; i += 200)
      await this.db
        .insertInto('executions')
        .values(rows.slice(i, i + 200))
        .execute();
    return rows.map((r) => r.id);
  }

  /**
   * Records an execution's end if `agentId` still holds its lease (running, same fencing token): running →
   * reported or failed. Returns the task id, or null when the lease is no longer held. In a transaction.
   */
  async recordEnd(
    executionId: string,
    agentId: string,
    fencingToken: number,
    end: ExecutionEnd,
    now: number,
  ): Promise<string | null> {
    requireTransaction(this.db);
    const row = await this.db
      .updateTable('executions')
      .set((eb) => ({
        state: end.state,
        finished_at: now,
        lease_expires_at: null,
        failure: end.failure ? JSON.stringify(end.failure) : null,
        usage: end.usage ? JSON.stringify(end.usage) : null,
        stdout_blob: end.stdoutBlob,
        stderr_blob: end.stderrBlob,
        ...(end.state === 'reported'
          ? {
              verdict: end.verdict,
              exit_code: end.exitCode,
              result_hash: end.resultHash,
              outputs_blob: end.outputsBlob,
              manifest: end.manifest ? JSON.stringify(end.manifest) : null,
            }
          : {}),
        revision: eb('revision', '+', 1),
      }))
      .where('id', '=', executionId)
      .where('agent_id', '=', agentId)
      .where('fencing_token', '=', fencingToken)
      .where('state', '=', 'running')
      .where('state', 'in', EXECUTION_TRANSITIONS[end.state])
      .returning('task_id')
      .executeTakeFirst();
    return row?.task_id ?? null;
  }

  /**
   * Moves executions to `to` from the states core's EXECUTION_TRANSITIONS allow (others are left as they are),
   * setting `failure` (and desired stop) when given; finished_at is kept if set, else now. Returns the ids moved.
   * In a transaction.
   */
  async move(
    ids: readonly string[],
    to: ExecutionState,
    now: number,
    failure: Failure | null = null,
  ): Promise<string[]> {
    requireTransaction(this.db);
    const moved: string[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.db
        .updateTable('executions')
        .set((eb) => ({
          state: to,
          finished_at: eb.fn.coalesce('finished_at', eb.val(now)),
          revision: eb('revision', '+', 1),
          ...(failure ? { failure: JSON.stringify(failure), desired: 'stop' as const, lease_expires_at: null } : {}),
        }))
        .where('id', 'in', ids.slice(i, i + 500))
        .where('state', 'in', EXECUTION_TRANSITIONS[to])
        .returning('id')
        .execute();
      moved.push(...rows.map((r) => r.id));
    }
    return moved;
  }

  /** Who holds an execution, in which state, with its fencing token, job, task and buyer; null if it does not exist. */
  async leaseOf(executionId: string): Promise<LeaseInfo | null> {
    const row = await this.db
      .selectFrom('executions')
      .innerJoin('jobs', 'jobs.id', 'executions.job_id')
      .select([
        'executions.agent_id',
        'executions.provider_id',
        'executions.state',
        'executions.fencing_token',
        'executions.job_id',
        'executions.task_id',
        'executions.started_at',
        'executions.probe',
        'jobs.buyer_id',
      ])
      .where('executions.id', '=', executionId)
      .executeTakeFirst();
    return row
      ? {
          agentId: row.agent_id,
          providerId: row.provider_id,
          state: row.state,
          fencingToken: row.fencing_token,
          jobId: row.job_id,
          taskId: row.task_id,
          buyerId: row.buyer_id,
          startedAt: row.started_at === null ? null : Number(row.started_at),
          probe: row.probe,
        }
      : null;
  }

  /** Ordinary executions of a task that reported and were not graded yet, with their verdicts. */
  async ungraded(taskId: string): Promise<Array<{ id: string; verdict: string | null; providerId: string }>> {
    return this.db
      .selectFrom('executions')
      .select(['id', 'verdict', 'provider_id as providerId'])
      .where('task_id', '=', taskId)
      .where('state', '=', 'reported')
      .where('probe', '=', 0)
      .execute();
  }

  /** A task's valid executions: provider, verdict, what each was paid (µcr), when it reported, its blobs. */
  async validOf(taskId: string): Promise<ValidExecution[]> {
    const rows = await this.db
      .selectFrom('executions')
      .select(['id', 'provider_id', 'verdict', 'paid', 'finished_at', 'outputs_blob', 'stdout_blob', 'stderr_blob'])
      .where('task_id', '=', taskId)
      .where('state', '=', 'valid')
      .execute();
    return rows.map((r) => ({
      id: r.id,
      providerId: r.provider_id,
      verdict: r.verdict,
      paid: r.paid === null ? null : Number(r.paid),
      finishedAt: r.finished_at === null ? null : Number(r.finished_at),
      outputsBlob: r.outputs_blob,
      stdoutBlob: r.stdout_blob,
      stderrBlob: r.stderr_blob,
    }));
  }

  /**
   * A task's comparable results (see ComparableResult), earliest report first (ties by id): its ordinary ones, or
   * with `probe` those of that determinism probe pair.
   */
  async comparable(taskId: string, probe = 0): Promise<ComparableResult[]> {
    const rows = await this.db
      .selectFrom('executions')
      .select(['id', 'agent_id', 'provider_id', 'verdict', 'result_hash', 'manifest', 'outputs_blob', 'finished_at'])
      .where('task_id', '=', taskId)
      .where('probe', '=', probe)
      .where('state', 'in', ['reported', 'valid', 'invalid'])
      .where('manifest', 'is not', null)
      .where('result_hash', 'is not', null)
      .where('outputs_blob', 'is not', null)
      .execute();
    return rows
      .map((r) => ({
        id: r.id,
        agentId: r.agent_id,
        providerId: r.provider_id,
        verdict: r.verdict ?? r.result_hash!,
        resultHash: r.result_hash!,
        manifest: JSON.parse(r.manifest!) as Manifest,
        outputsBlob: r.outputs_blob!,
        finishedAt: Number(r.finished_at ?? 0),
      }))
      .sort((a, b) => a.finishedAt - b.finishedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Executions of a task in the given states. */
  async ofTask(taskId: string, states: readonly ExecutionState[]): Promise<string[]> {
    const rows = await this.db
      .selectFrom('executions')
      .select('id')
      .where('task_id', '=', taskId)
      .where('state', 'in', states)
      .execute();
    return rows.map((r) => r.id);
  }

  /** A task's determinism probe executions (every pair), with their providers, results and outputs, oldest first. */
  async probeRuns(taskId: string): Promise<ProbeResult[]> {
    const rows = await this.db
      .selectFrom('executions')
      .select(['id', 'probe', 'state', 'verdict', 'manifest', 'failure', 'provider_id', 'outputs_blob'])
      .where('task_id', '=', taskId)
      .where('probe', '>', 0)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map((r) => ({
      id: r.id,
      pair: r.probe,
      state: r.state,
      verdict: r.verdict,
      manifest: r.manifest ? ManifestSchema.parse(JSON.parse(r.manifest)) : null,
      failure: r.failure ? FailureSchema.parse(JSON.parse(r.failure)) : null,
      providerId: r.provider_id,
      outputsBlob: r.outputs_blob,
    }));
  }
}
