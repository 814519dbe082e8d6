/**
 * Typed HTTP client of the coordinator API, used by the agent, the CLI and (later) the dashboard.
 * Every response body is validated with the protocol schemas. Errors are thrown as ApiError.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { z } from 'zod';
import {
  BalanceSchema, ExplainSchema, KeyListSchema, LedgerListSchema, NewKeySchema, ProviderReputationSchema, QuoteSchema, WhoAmISchema,
  type Balance, type CatalogQuery, type Explain, type LedgerEntry, type NewKey, type ProviderReputation, type Quote, type WhoAmI,
  BlobInfoSchema, ClaimResponseSchema, ErrorBodySchema, HeartbeatResponseSchema, JobListSchema, JobResultsSchema,
  JobViewSchema, ProviderListSchema, RegisterAgentResponseSchema, SubmitJobResponseSchema,
  type Assignment, type Availability, type BlobInfo, type HeartbeatResponse, type JobResults, type JobSpecInput, type JobState, type JobSummary,
  type JobView, type ProviderView, type RegisterAgentRequestInput, type RegisterAgentResponse, type ReportRequest, type SubmitJobResponse,
} from '../protocol/index.js';

/** An error answered by the coordinator (or a failure to reach it: code `unreachable`, status 0). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: unknown, readonly retryable = false) {
    super(message);
  }
}

/** Read size of file uploads, bytes. */
const UPLOAD_CHUNK_BYTES = 1024 * 1024;

/** Progress callback for transfers: bytes done and total (null when unknown). */
export type Progress = (done: number, total: number | null) => void;

export class DeqoClient {
  /** @param baseUrl e.g. http://127.0.0.1:8470 ; @param apiKey bearer key */
  constructor(readonly baseUrl: string, private readonly apiKey: string) {}

  private async request<S extends z.ZodType>(method: string, path: string, schema: S, body?: unknown, signal?: AbortSignal): Promise<z.infer<S>> {
    const res = await this.fetch(path, { method, signal,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body) });
    const json: unknown = await res.json().catch(() => null);
    if (!res.ok) throw toApiError(res.status, json);
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new ApiError(res.status, 'bad_response', `unexpected response from ${method} ${path}: ${parsed.error.message}`);
    return parsed.data;
  }

  private async fetch(path: string, init: RequestInit & { duplex?: 'half' }): Promise<Response> {
    try {
      return await fetch(`${this.baseUrl}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${this.apiKey}` } });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new ApiError(0, 'unreachable', `cannot reach the coordinator at ${this.baseUrl} (${(err as { cause?: Error }).cause?.message ?? (err as Error).message}); is it running?`, undefined, true);
    }
  }

  // ---- buyer ----
  submitJob(spec: JobSpecInput): Promise<SubmitJobResponse> { return this.request('POST', '/v1/jobs', SubmitJobResponseSchema, spec); }
  getJob(jobId: string): Promise<JobView> { return this.request('GET', `/v1/jobs/${encodeURIComponent(jobId)}`, JobViewSchema); }
  async listJobs(opts: { state?: JobState; limit?: number } = {}): Promise<JobSummary[]> {
    const q = new URLSearchParams();
    if (opts.state) q.set('state', opts.state);
    if (opts.limit) q.set('limit', String(opts.limit));
    return (await this.request('GET', `/v1/jobs?${q}`, JobListSchema)).jobs;
  }
  getResults(jobId: string): Promise<JobResults> { return this.request('GET', `/v1/jobs/${encodeURIComponent(jobId)}/results`, JobResultsSchema); }
  async cancelJob(jobId: string): Promise<boolean> {
    return (await this.request('POST', `/v1/jobs/${encodeURIComponent(jobId)}/cancel`, z.object({ cancelled: z.boolean() }), {})).cancelled;
  }
  /** Quote a spec before submitting: escrow, cost per verification mode, matching providers, affordability. */
  quote(spec: JobSpecInput): Promise<Quote> { return this.request('POST', '/v1/quote', QuoteSchema, spec); }
  /** Why each provider was or was not chosen for a job. */
  explain(jobId: string): Promise<Explain> { return this.request('GET', `/v1/jobs/${encodeURIComponent(jobId)}/explain`, ExplainSchema); }

  /** The provider catalog, filtered and sorted (see CatalogQuerySchema). */
  async listProviders(query: Partial<Record<keyof CatalogQuery, string | number | boolean>> = {}): Promise<ProviderView[]> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
    return (await this.request('GET', `/v1/providers${q.size > 0 ? `?${q}` : ''}`, ProviderListSchema)).providers;
  }

  // ---- accounts and money ----
  whoami(): Promise<WhoAmI> { return this.request('GET', '/v1/whoami', WhoAmISchema); }
  balance(): Promise<Balance> { return this.request('GET', '/v1/balance', BalanceSchema); }
  async ledger(opts: { jobId?: string; limit?: number } = {}): Promise<LedgerEntry[]> {
    const q = new URLSearchParams();
    if (opts.jobId) q.set('jobId', opts.jobId);
    if (opts.limit) q.set('limit', String(opts.limit));
    return (await this.request('GET', `/v1/ledger?${q}`, LedgerListSchema)).entries;
  }
  async listKeys(): Promise<z.infer<typeof KeyListSchema>['keys']> { return (await this.request('GET', '/v1/keys', KeyListSchema)).keys; }
  createKey(scope: 'buyer' | 'provider' | 'admin', label?: string): Promise<NewKey> { return this.request('POST', '/v1/keys', NewKeySchema, { scope, label }); }
  async revokeKey(keyId: string): Promise<void> {
    await this.request('POST', `/v1/keys/${encodeURIComponent(keyId)}/revoke`, z.object({ revoked: z.literal(true) }), {});
  }
  async providerAgents(): Promise<ProviderView[]> { return (await this.request('GET', '/v1/provider/agents', ProviderListSchema)).providers; }
  providerReputation(limit = 50): Promise<ProviderReputation> { return this.request('GET', `/v1/provider/reputation?limit=${limit}`, ProviderReputationSchema); }

  // ---- admin ----
  adminCreateAccount(name: string, roles: Array<'buyer' | 'provider' | 'admin'>): Promise<{ accountId: string; apiKey: string; keyId: string }> {
    return this.request('POST', '/v1/admin/accounts', z.object({ accountId: z.string(), apiKey: z.string(), keyId: z.string() }), { name, roles });
  }
  adminGrant(account: string, amount: number, memo?: string): Promise<{ txnId: string; accountId: string; available: number }> {
    return this.request('POST', '/v1/admin/grants', z.object({ txnId: z.string(), accountId: z.string(), available: z.number() }), { account, amount, memo });
  }
  adminAudit(): Promise<{ sound: boolean; problems: string[] }> {
    return this.request('GET', '/v1/admin/ledger/audit', z.object({ sound: z.boolean(), problems: z.array(z.string()) }));
  }

  // ---- blobs ----
  /**
   * Uploads a file as a blob, streaming; `onProgress` gets bytes sent. Read in 1 MiB chunks: fetch's web streams
   * cost per chunk, and with the default 64 KiB a 1 GiB upload spent a third more CPU (docs/benchmarks.md).
   */
  async uploadFile(path: string, onProgress?: Progress): Promise<BlobInfo> {
    const size = (await stat(path)).size;
    return this.uploadStream(createReadStream(path, { highWaterMark: UPLOAD_CHUNK_BYTES }), size, onProgress);
  }
  /** Uploads bytes from a stream as a blob. */
  async uploadStream(source: Readable, size: number | null, onProgress?: Progress): Promise<BlobInfo> {
    let done = 0;
    const meter = new Transform({ transform(chunk: Buffer, _e, cb) { done += chunk.length; onProgress?.(done, size); cb(null, chunk); } });
    source.on('error', (e) => meter.destroy(e));
    const body = Readable.toWeb(source.pipe(meter)) as unknown as ReadableStream;
    const res = await this.fetch('/v1/blobs', { method: 'POST', body, duplex: 'half', headers: { 'content-type': 'application/octet-stream' } });
    const json: unknown = await res.json().catch(() => null);
    if (!res.ok) throw toApiError(res.status, json);
    return BlobInfoSchema.parse(json);
  }
  /** Downloads a blob to a file, streaming; `onProgress` gets bytes received. Returns the size. */
  async downloadBlob(sha256: string, dest: string, onProgress?: Progress): Promise<number> {
    const res = await this.fetch(`/v1/blobs/${sha256}`, { method: 'GET' });
    if (!res.ok || !res.body) throw toApiError(res.status, await res.json().catch(() => null));
    const total = Number(res.headers.get('content-length') ?? NaN);
    let done = 0;
    const meter = new Transform({ transform(chunk: Buffer, _e, cb) { done += chunk.length; onProgress?.(done, Number.isFinite(total) ? total : null); cb(null, chunk); } });
    await pipeline(Readable.fromWeb(res.body as WebReadableStream), meter, createWriteStream(dest));
    return done;
  }
  /** Downloads a blob into memory (small blobs: logs). */
  async fetchBlob(sha256: string): Promise<Buffer> {
    const res = await this.fetch(`/v1/blobs/${sha256}`, { method: 'GET' });
    if (!res.ok) throw toApiError(res.status, await res.json().catch(() => null));
    return Buffer.from(await res.arrayBuffer());
  }

  // ---- agent ----
  registerAgent(body: RegisterAgentRequestInput): Promise<RegisterAgentResponse> { return this.request('POST', '/v1/agents/register', RegisterAgentResponseSchema, body); }
  /** Renews leases; `availability` tells the coordinator whether the agent takes new work (windows, idle policy). */
  heartbeat(agentId: string, executions: Array<{ executionId: string; fencingToken: number }>, availability?: Availability): Promise<HeartbeatResponse> {
    return this.request('POST', `/v1/agents/${agentId}/heartbeat`, HeartbeatResponseSchema, { executions, availability });
  }
  async claim(agentId: string, max: number, waitMs: number, signal?: AbortSignal): Promise<Assignment[]> {
    return (await this.request('POST', `/v1/agents/${agentId}/claim`, ClaimResponseSchema, { max, waitMs }, signal)).executions;
  }
  async report(agentId: string, executionId: string, body: ReportRequest): Promise<void> {
    await this.request('POST', `/v1/agents/${agentId}/executions/${executionId}/report`, z.object({ ok: z.literal(true) }), body);
  }
}

function toApiError(status: number, json: unknown): ApiError {
  const body = ErrorBodySchema.safeParse(json);
  if (body.success) return new ApiError(status, body.data.error.code, body.data.error.message, body.data.error.details, body.data.error.retryable ?? false);
  return new ApiError(status, 'http_error', `HTTP ${status}`);
}
