import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { DatabaseHandle } from "../db/database";

// Per-key limits (per minute and per hour, from each key's settings), fixed windows. With
// PostgreSQL the counters live in `rate_limit_counters`, so every instance shares them (spec §2:
// a key gets its limit once) and the database clock decides the windows; both windows are
// counted in one prepared round trip. The in-process store serves only the single embedded instance.

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the binding window resets. */
  resetSeconds: number;
}

export interface KeyLimits {
  perMinute: number;
  perHour: number;
}

interface WindowCount {
  consumed: number;
  msBeforeReset: number;
}

interface CounterStore {
  /** Adds one request to the minute and hour windows of `keyId`, returning both counts. */
  hit(keyId: string): Promise<[WindowCount, WindowCount]>;
}

const HIT_SQL = `
insert into rate_limit_counters as c (key, points, expire)
values ($1, 1, now() + interval '60 seconds'), ($2, 1, now() + interval '3600 seconds')
on conflict (key) do update set
  points = case when c.expire <= now() then 1 else c.points + 1 end,
  expire = case when c.expire <= now() then excluded.expire else c.expire end
returning key, points, (extract(epoch from (expire - now())) * 1000)::float8 as ms`;

const SWEEP_SQL = `delete from rate_limit_counters where expire < now() - interval '1 hour'`;
const SWEEP_INTERVAL_MS = 5 * 60_000;

class DatabaseCounters implements CounterStore {
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly database: DatabaseHandle) {
    this.sweeper = setInterval(() => {
      database.query(SWEEP_SQL, []).catch(() => undefined);
    }, SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  async hit(keyId: string): Promise<[WindowCount, WindowCount]> {
    const rows = await this.database.query<{ key: string; points: number; ms: number }>(HIT_SQL, [
      `m:${keyId}`,
      `h:${keyId}`,
    ]);
    const of = (prefix: string): WindowCount => {
      const r = rows.find((row) => row.key.startsWith(prefix));
      return { consumed: Number(r?.points ?? 0), msBeforeReset: Math.max(0, Number(r?.ms ?? 0)) };
    };
    return [of("m:"), of("h:")];
  }

  close() {
    clearInterval(this.sweeper);
  }
}

class MemoryCounters implements CounterStore {
  // Points are never refused here (the limits vary per key): the counts decide.
  private readonly minute = new RateLimiterMemory({ points: Number.MAX_SAFE_INTEGER, duration: 60 });
  private readonly hour = new RateLimiterMemory({ points: Number.MAX_SAFE_INTEGER, duration: 3600 });

  async hit(keyId: string): Promise<[WindowCount, WindowCount]> {
    const [m, h] = await Promise.all([this.minute.consume(keyId), this.hour.consume(keyId)]);
    const count = (r: RateLimiterRes): WindowCount => ({
      consumed: r.consumedPoints,
      msBeforeReset: r.msBeforeNext,
    });
    return [count(m), count(h)];
  }

  close() {}
}

export class KeyRateLimiter {
  private readonly store: DatabaseCounters | MemoryCounters;

  constructor(database: DatabaseHandle, kind: "database" | "memory") {
    this.store = kind === "database" ? new DatabaseCounters(database) : new MemoryCounters();
  }

  async countRequest(keyId: string, limits: KeyLimits): Promise<RateDecision> {
    const [minute, hour] = await this.store.hit(keyId);
    const m = { ...minute, limit: limits.perMinute };
    const h = { ...hour, limit: limits.perHour };
    const minuteOk = m.consumed <= m.limit;
    const hourOk = h.consumed <= h.limit;
    // Report the window that refused, else the one with fewer requests left.
    const binding = !hourOk ? h : !minuteOk ? m : h.limit - h.consumed < m.limit - m.consumed ? h : m;
    return {
      allowed: minuteOk && hourOk,
      limit: binding.limit,
      remaining: Math.max(0, binding.limit - binding.consumed),
      resetSeconds: Math.max(1, Math.ceil(binding.msBeforeReset / 1000)),
    };
  }

  close(): void {
    this.store.close();
  }
}

/**
 * Failed lookups of well-formed keys per client IP, in process memory (a refusal must cost no
 * database work). Malformed keys never reach the database, so they are not budgeted, and a
 * misconfigured neighbour on a shared address cannot lock others out by accident.
 */
export class AuthFailureLimiter {
  private readonly limiter: RateLimiterMemory;

  constructor(readonly perMinute = 60) {
    this.limiter = new RateLimiterMemory({ points: perMinute, duration: 60, keyPrefix: "authfail" });
  }

  /** Seconds to wait when this address spent its budget, else 0. */
  async blockedFor(address: string): Promise<number> {
    const res = await this.limiter.get(address);
    if (!res || res.consumedPoints < this.perMinute) return 0;
    return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
  }

  async recordFailure(address: string): Promise<void> {
    await this.limiter.penalty(address, 1);
  }
}

/** Spec §11: 30 sign-in attempts per 5 minutes per client address (Cynchro's `/auth` limit). */
export const SIGN_IN_ATTEMPTS = 30;
export const SIGN_IN_WINDOW_SECONDS = 300;

/** One sign-in attempt counted: refused past the limit, with the seconds until the window ends. */
export interface SignInDecision {
  readonly allowed: boolean;
  /** This attempt's number in the window (the first refused one is limit + 1). */
  readonly attempt: number;
  readonly retryAfterSeconds: number;
}

const SIGN_IN_SQL = `
insert into rate_limit_counters as c (key, points, expire)
values ($1, 1, now() + make_interval(secs => $2))
on conflict (key) do update set
  points = case when c.expire <= now() then 1 else c.points + 1 end,
  expire = case when c.expire <= now() then excluded.expire else c.expire end
returning points, (extract(epoch from (expire - now())) * 1000)::float8 as ms`;

/**
 * Sign-in attempts per client address, a fixed window. With PostgreSQL the count is a
 * `signin:<address>` row of `rate_limit_counters` (swept with the key counters), so every instance
 * shares it; the embedded single instance counts in memory. Every attempt counts, not only
 * failures: the limit is on guessing, and a right guess is one too.
 */
export class SignInLimiter {
  private readonly memory: RateLimiterMemory | undefined;

  constructor(
    private readonly database: DatabaseHandle,
    kind: "database" | "memory",
    readonly attempts = SIGN_IN_ATTEMPTS,
    readonly windowSeconds = SIGN_IN_WINDOW_SECONDS,
  ) {
    this.memory =
      kind === "memory"
        ? new RateLimiterMemory({ points: attempts, duration: windowSeconds, keyPrefix: "signin" })
        : undefined;
  }

  async attempt(address: string): Promise<SignInDecision> {
    const { consumed, msBeforeReset } = this.memory
      ? await this.countInMemory(this.memory, address)
      : await this.countInDatabase(address);
    return {
      allowed: consumed <= this.attempts,
      attempt: consumed,
      retryAfterSeconds: Math.max(1, Math.ceil(msBeforeReset / 1000)),
    };
  }

  private async countInDatabase(address: string): Promise<WindowCount> {
    const [row] = await this.database.query<{ points: number; ms: number }>(SIGN_IN_SQL, [
      `signin:${address}`,
      this.windowSeconds,
    ]);
    return { consumed: Number(row?.points ?? 1), msBeforeReset: Math.max(0, Number(row?.ms ?? 0)) };
  }

  private async countInMemory(limiter: RateLimiterMemory, address: string): Promise<WindowCount> {
    try {
      const r = await limiter.consume(address);
      return { consumed: r.consumedPoints, msBeforeReset: r.msBeforeNext };
    } catch (refused) {
      // rate-limiter-flexible rejects with its result when the points are spent.
      if (!(refused instanceof RateLimiterRes)) throw refused;
      return { consumed: refused.consumedPoints, msBeforeReset: refused.msBeforeNext };
    }
  }
}
