/**
 * Failed authentications per source: an exact sliding-window log (the times of the last `max` failures of each
 * source), in memory, per coordinator. A source with `max` failures inside the window is refused (429 rate_limited
 * with Retry-After) until its oldest failure leaves the window — before its key is looked up, so the refusal costs
 * no database work. Only failures count, and only per source: a wrong key sent from one address never locks out the
 * same account's key used from another.
 */
import { DeqoError, ipv6Groups } from '../core/index.js';

/** Sources remembered at most; past this, the one idle longest is forgotten (bounds memory under address churn). */
const MAX_SOURCES = 100_000;

export class FailureLimiter {
  /** Failure times per source, oldest first, epoch ms. Map order: least recently failed first. */
  private readonly failures = new Map<string, number[]>();

  /** @param max failures allowed per window; @param windowMs window length, ms. */
  constructor(
    readonly max: number,
    readonly windowMs: number,
  ) {}

  /** Throws DeqoError rate_limited (retryAfterSec: until the oldest failure leaves the window) when `source` is over. */
  check(source: string, now: number): void {
    const times = this.prune(source, now);
    if (times.length < this.max) return;
    const retryAfterSec = Math.max(1, Math.ceil((times[0]! + this.windowMs - now) / 1000));
    throw new DeqoError(
      'rate_limited',
      `too many failed authentications from your address (${this.max} in ${this.windowMs / 1000} s); ` +
        `try again in ${retryAfterSec} s with a valid API key (see \`deqo login\`)`,
      { limit: 'authFailures', max: this.max, windowMs: this.windowMs, retryAfterSec },
      retryAfterSec,
    );
  }

  /** Records a failed authentication of `source` at `now`. */
  fail(source: string, now: number): void {
    const times = this.prune(source, now);
    this.failures.delete(source);
    this.failures.set(source, times);
    times.push(now);
    if (times.length > this.max) times.shift();
    if (this.failures.size > MAX_SOURCES) this.failures.delete(this.failures.keys().next().value!);
  }

  /** The source's failures still inside the window at `now` (the stored array, pruned). */
  private prune(source: string, now: number): number[] {
    const times = this.failures.get(source) ?? [];
    while (times.length > 0 && times[0]! <= now - this.windowMs) times.shift();
    if (times.length === 0) this.failures.delete(source);
    return times;
  }
}

/**
 * The rate-limit key of a client address: an IPv4 address itself, an IPv6 address's /64 (one subscriber's network:
 * rotating addresses inside it gains nothing). IPv4-mapped IPv6 counts as IPv4. A request whose socket is already
 * gone has no address (Node leaves `remoteAddress` undefined): it shares the key `unknown`.
 */
export function sourceOf(ip: string | undefined): string {
  if (!ip) return 'unknown';
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (v4) return v4[1]!;
  if (!ip.includes(':')) return ip;
  return `${ipv6Groups(ip).slice(0, 4).join(':')}::/64`;
}
