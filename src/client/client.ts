/**
 * Typed HTTP client of the coordinator API, used by the agent, the CLI and the dashboard.
 * Every response body is validated with the protocol schemas. Errors are thrown as ApiError.
 * It runs in a browser as well as in Node (fetch, TextDecoder, streams of the web platform; no node:*):
 * the Node-only file transfers (upload a file, download to a file) are in files.ts.
 */
import { z } from 'zod';
import { readEventStream } from './sse.js';
import {
  BalanceSchema,
  ExplainSchema,
  KeyListSchema,
  LedgerListSchema,
  NewKeySchema,
  ProviderReputationSchema,
  QuoteSchema,
  WhoAmISchema,
  type Balance,
  type CatalogQuery,
  type Explain,
  type LedgerEntry,
  type NewKey,
  type ProviderReputation,
  type Quote,
  type WhoAmI,
  BlobInfoSchema,
  ClaimResponseSchema,
  ErrorBodySchema,
  HeartbeatResponseSchema,
  JobListSchema,
  JobResultsSchema,
  JobViewSchema,
  ProviderListSchema,
  RegisterAgentResponseSchema,
  SubmitJobResponseSchema,
  type Assignment,
  type Availability,
  type BlobInfo,
  type HeartbeatResponse,
  type JobResults,
  type JobSpecInput,
  type JobState,
  type JobSummary,
  type JobView,
  type JobViewQuery,
  type ProviderView,
  type RegisterAgentRequestInput,
  type RegisterAgentResponse,
  type ReportRequest,
  type SubmitJobResponse,
  EarningsSchema,
  NetworkStatsSchema,
  type Earnings,
  type LiveEvent,
  type LogChunkRequest,
  type LogStream,
  type NetworkStats,
} from '../protocol/index.js';

/**
 * An error answered by the coordinator (or a failure to reach it: code `unreachable`, status 0). `retryAfterSec`:
 * how long to wait before trying again, seconds, when the answer said (a 429's Retry-After header).
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly retryable = false,
    readonly retryAfterSec?: number,
  ) {
    super(message);
  }
}

export class DeqoClient {
  /** @param baseUrl e.g. http://127.0.0.1:8470 ; @param apiKey bearer key */
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  private async request<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S,
    body?: unknown,
    signal?: AbortSignal,
  ): Promise<z.infer<S>> {
    const res = await this.fetch(path, {
      method,
      signal,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json: unknown = await res.json().catch(() => null);
    if (!res.ok) throw toApiError(res.status, json, res.headers);
    const parsed = schema.safeParse(json);
    if (!parsed.success)
      throw new ApiError(
        res.status,
        'bad_response',
        `unexpected response from ${method} ${path}: ${parsed.error.message}`,
      );
    return parsed.data;
  }

  /**
   * The authorized `fetch` of `path` (e.g. `/v1/blobs/…`), for streaming calls the typed methods do not cover.
   * Throws ApiError `unreachable` (retryable) when the coordinator cannot be reached; AbortError when aborted.
   */
  async fetch(path: string, init: RequestInit & { duplex?: 'half' }): Promise<Response> {
    try {
      return await fetch(`${this.baseUrl}${path}`, {
        ...init,
        headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${this.apiKey}` },
      });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new ApiError(
        0,
        'unreachable',
        `cannot reach the coordinator at ${this.baseUrl} (${(err as { cause?: Error }).cause?.message ?? (err as Error).message}); is it running?`,
        undefined,
        true,
      );
    }
  }

  // ---- buyer ----
  /** Submits a job spec (image + command, or a script job with `script: {language: 'python', source, requirements}`). */
  submitJob(spec: JobSpecInput): Promise<SubmitJobResponse> {
    return this.request('POST', '/v1/jobs', SubmitJobResponseSchema, spec);
  }
  /**
   * A job with its task counts and one page of its tasks (`page`: taskOffset, taskLimit ≤ 1,000 [100], taskState;
   * the view's taskPage says which).
   */
  getJob(jobId: string, page: JobViewQuery = {}): Promise<JobView> {
    const q = new URLSearchParams();
    if (page.taskOffset !== undefined) q.set('taskOffset', String(page.taskOffset));
    if (page.taskLimit !== undefined) q.set('taskLimit', String(page.taskLimit));
    if (page.taskState) q.set('taskState', page.taskState);
    const query = q.size > 0 ? `?${q}` : '';
    return this.request('GET', `/v1/jobs/${encodeURIComponent(jobId)}${query}`, JobViewSchema);
  }
  async listJobs(opts: { state?: JobState; limit?: number } = {}): Promise<JobSummary[]> {
    const q = new URLSearchParams();
    if (opts.state) q.set('state', opts.state);
    if (opts.limit) q.set('limit', String(opts.limit));
    return (await this.request('GET', `/v1/jobs?${q}`, JobListSchema)).jobs;
  }
  getResults(jobId: string): Promise<JobResults> {
    return this.request('GET', `/v1/jobs/${encodeURIComponent(jobId)}/results`, JobResultsSchema);
  }
  async cancelJob(jobId: string): Promise<boolean> {
    return (
      await this.request(
        'POST',
        `/v1/jobs/${encodeURIComponent(jobId)}/cancel`,
        z.object({ cancelled: z.boolean() }),
        {},
      )
    ).cancelled;
  }
  /** Quote a spec before submitting: escrow, cost per verification mode, matching providers, affordability. */
  quote(spec: JobSpecInput): Promise<Quote> {
    return this.request('POST', '/v1/quote', QuoteSchema, spec);
  }
  /** Why each provider was or was not chosen for a job. */
  explain(jobId: string): Promise<Explain> {
    return this.request('GET', `/v1/jobs/${encodeURIComponent(jobId)}/explain`, ExplainSchema);
  }
  /** The live output the coordinator keeps of an execution of the caller's job (text; '' when none arrived). */
  async executionLog(jobId: string, executionId: string, stream: LogStream = 'stdout'): Promise<string> {
    const res = await this.fetch(
      `/v1/jobs/${encodeURIComponent(jobId)}/executions/${encodeURIComponent(executionId)}/log?stream=${stream}`,
      { method: 'GET' },
    );
    if (!res.ok) throw toApiError(res.status, await res.json().catch(() => null), res.headers);
    return res.text();
  }

  // ---- live views ----
  /**
   * Follows `GET /v1/events` (Server-Sent Events), calling `onEvent` for each job, execution, log and network
   * event the caller may see (`opts.jobId`: only that job's, plus network events; `opts.onOpen` runs once the
   * stream is accepted). Resolves when the coordinator ends the stream or `signal` aborts; throws ApiError for a
   * refused request (401, 403, 400).
   */
  async events(
    opts: { jobId?: string; onOpen?: () => void },
    onEvent: (e: LiveEvent) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const q = opts.jobId ? `?jobId=${encodeURIComponent(opts.jobId)}` : '';
    let res: Response;
    try {
      res = await this.fetch(`/v1/events${q}`, { method: 'GET', headers: { accept: 'text/event-stream' }, signal });
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    }
    if (!res.ok || !res.body) throw toApiError(res.status, await res.json().catch(() => null), res.headers);
    opts.onOpen?.();
    await readEventStream(res.body, onEvent, signal);
  }
  /** Per-minute network activity for the last `minutes` (1–1440), the queue and agents now, the last 20 decided tasks. */
  networkStats(minutes = 60): Promise<NetworkStats> {
    return this.request('GET', `/v1/network/stats?minutes=${minutes}`, NetworkStatsSchema);
  }
  /** The caller's (provider) credits earned per hour for the last `hours` (1–2160), and their total. */
  providerEarnings(hours = 48): Promise<Earnings> {
    return this.request('GET', `/v1/provider/earnings?hours=${hours}`, EarningsSchema);
  }

  /** The provider catalog, filtered and sorted (see CatalogQuerySchema). */
  async listProviders(
    query: Partial<Record<keyof CatalogQuery, string | number | boolean>> = {},
  ): Promise<ProviderView[]> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
    return (await this.request('GET', `/v1/providers${q.size > 0 ? `?${q}` : ''}`, ProviderListSchema)).providers;
  }

  // ---- accounts and money ----
  whoami(): Promise<WhoAmI> {
    return this.request('GET', '/v1/whoami', WhoAmISchema);
  }
  balance(): Promise<Balance> {
    return this.request('GET', '/v1/balance', BalanceSchema);
  }
  async ledger(opts: { jobId?: string; limit?: number } = {}): Promise<LedgerEntry[]> {
    const q = new URLSearchParams();
    if (opts.jobId) q.set('jobId', opts.jobId);
    if (opts.limit) q.set('limit', String(opts.limit));
    return (await this.request('GET', `/v1/ledger?${q}`, LedgerListSchema)).entries;
  }
  async listKeys(): Promise<z.infer<typeof KeyListSchema>['keys']> {
    return (await this.request('GET', '/v1/keys', KeyListSchema)).keys;
  }
  createKey(scope: 'buyer' | 'provider' | 'admin', label?: string): Promise<NewKey> {
    return this.request('POST', '/v1/keys', NewKeySchema, { scope, label });
  }
  async revokeKey(keyId: string): Promise<void> {
    await this.request(
      'POST',
      `/v1/keys/${encodeURIComponent(keyId)}/revoke`,
      z.object({ revoked: z.literal(true) }),
      {},
    );
  }
  async providerAgents(): Promise<ProviderView[]> {
    return (await this.request('GET', '/v1/provider/agents', ProviderListSchema)).providers;
  }
  providerReputation(limit = 50): Promise<ProviderReputation> {
    return this.request('GET', `/v1/provider/reputation?limit=${limit}`, ProviderReputationSchema);
  }

  // ---- admin ----
  adminCreateAccount(
    name: string,
    roles: Array<'buyer' | 'provider' | 'admin'>,
  ): Promise<{ accountId: string; apiKey: string; keyId: string }> {
    return this.request(
      'POST',
      '/v1/admin/accounts',
      z.object({ accountId: z.string(), apiKey: z.string(), keyId: z.string() }),
      { name, roles },
    );
  }
  adminGrant(
    account: string,
    amount: number,
    memo?: string,
  ): Promise<{ txnId: string; accountId: string; available: number }> {
    return this.request(
      'POST',
      '/v1/admin/grants',
      z.object({ txnId: z.string(), accountId: z.string(), available: z.number() }),
      { account, amount, memo },
    );
  }
  /** Vouches for a provider account (name or id): the operator runs or vetted it, so it is established at once. */
  adminVouch(account: string): Promise<{ providerId: string; vouched: boolean }> {
    return this.request('POST', '/v1/admin/vouch', z.object({ providerId: z.string(), vouched: z.boolean() }), {
      account,
    });
  }
  adminAudit(): Promise<{ sound: boolean; problems: string[] }> {
    return this.request(
      'GET',
      '/v1/admin/ledger/audit',
      z.object({ sound: z.boolean(), problems: z.array(z.string()) }),
    );
  }

  // ---- blobs ---- (files and Node streams: files.ts)
  /** Uploads bytes as a blob: a Blob, bytes, or a stream of the web platform (`signal` aborts). */
  async uploadBytes(body: Blob | Uint8Array | ReadableStream<Uint8Array>, signal?: AbortSignal): Promise<BlobInfo> {
    const res = await this.fetch('/v1/blobs', {
      method: 'POST',
      body: body as NonNullable<RequestInit['body']>,
      signal,
      headers: { 'content-type': 'application/octet-stream' },
      ...(body instanceof ReadableStream ? { duplex: 'half' as const } : {}),
    });
    const json: unknown = await res.json().catch(() => null);
    if (!res.ok) throw toApiError(res.status, json, res.headers);
    return BlobInfoSchema.parse(json);
  }
  /** Opens a blob for reading: the response, whose body streams the bytes. Throws ApiError (404 when not readable). */
  async openBlob(sha256: string): Promise<Response> {
    const res = await this.fetch(`/v1/blobs/${sha256}`, { method: 'GET' });
    if (!res.ok || !res.body) throw toApiError(res.status, await res.json().catch(() => null), res.headers);
    return res;
  }
  /** A blob's bytes, in memory (small blobs: logs). */
  async blobBytes(sha256: string): Promise<Uint8Array> {
    return new Uint8Array(await (await this.openBlob(sha256)).arrayBuffer());
  }
  /** A blob as UTF-8 text (small blobs: logs). */
  async blobText(sha256: string): Promise<string> {
    return new TextDecoder().decode(await this.blobBytes(sha256));
  }

  // ---- agent ----
  // `signal` (e.g. AbortSignal.timeout) bounds a request; a timeout surfaces as ApiError `unreachable` (retryable).
  registerAgent(body: RegisterAgentRequestInput, signal?: AbortSignal): Promise<RegisterAgentResponse> {
    return this.request('POST', '/v1/agents/register', RegisterAgentResponseSchema, body, signal);
  }
  /** Renews leases; `availability` tells the coordinator whether the agent takes new work (windows, idle policy). */
  heartbeat(
    agentId: string,
    executions: Array<{ executionId: string; fencingToken: number }>,
    availability?: Availability,
    signal?: AbortSignal,
  ): Promise<HeartbeatResponse> {
    return this.request(
      'POST',
      `/v1/agents/${agentId}/heartbeat`,
      HeartbeatResponseSchema,
      { executions, availability },
      signal,
    );
  }
  async claim(agentId: string, max: number, waitMs: number, signal?: AbortSignal): Promise<Assignment[]> {
    return (await this.request('POST', `/v1/agents/${agentId}/claim`, ClaimResponseSchema, { max, waitMs }, signal))
      .executions;
  }
  async report(agentId: string, executionId: string, body: ReportRequest, signal?: AbortSignal): Promise<void> {
    await this.request(
      'POST',
      `/v1/agents/${agentId}/executions/${executionId}/report`,
      z.object({ ok: z.literal(true) }),
      body,
      signal,
    );
  }
  /** Sends a chunk of live output of a running execution; ApiError 409 stale_lease once the lease is gone. */
  async sendLog(agentId: string, executionId: string, body: LogChunkRequest, signal?: AbortSignal): Promise<void> {
    await this.request(
      'POST',
      `/v1/agents/${agentId}/executions/${executionId}/log`,
      z.object({ ok: z.literal(true) }),
      body,
      signal,
    );
  }
}

/**
 * The ApiError for an error answer (the catalogue's body, else `http_error`), with the Retry-After header's wait in
 * seconds when `headers` carry one (RFC 9110 §10.2.3: delay-seconds or an HTTP-date).
 */
export function toApiError(status: number, json: unknown, headers?: Headers): ApiError {
  const retryAfterSec = retryAfterOf(headers?.get('retry-after') ?? null);
  const body = ErrorBodySchema.safeParse(json);
  if (body.success)
    return new ApiError(
      status,
      body.data.error.code,
      body.data.error.message,
      body.data.error.details,
      body.data.error.retryable ?? false,
      retryAfterSec,
    );
  return new ApiError(status, 'http_error', `HTTP ${status}`, undefined, false, retryAfterSec);
}

/** Seconds to wait from a Retry-After value (delay-seconds or an HTTP-date; `now` epoch ms); undefined when absent or unreadable. */
export function retryAfterOf(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}
