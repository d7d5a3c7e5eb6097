import {
  RateLimiterDrizzle,
  RateLimiterMemory,
  RateLimiterRes,
  type RateLimiterAbstract,
} from "rate-limiter-flexible";
import type { Database } from "../db/database";
import { rateLimitCounters } from "../db/schema";

// Per-key limits (per minute and per hour, from each key's settings). With PostgreSQL the
// counters live in the database so every instance shares them (spec §2: a key gets its
// limit once); the in-process store is used only with the embedded, single-instance database.

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

type Store = { kind: "database"; db: Database } | { kind: "memory" };

export class KeyRateLimiter {
  private readonly limiters = new Map<string, RateLimiterAbstract>();
  private cleanupOwned = false;

  constructor(private readonly store: Store) {}

  /** Consumes one request from both windows; the tighter one decides the headers. */
  async consume(keyId: string, limits: KeyLimits): Promise<RateDecision> {
    const [minute, hour] = await Promise.all([
      this.take(this.limiter(limits.perMinute, 60), keyId),
      this.take(this.limiter(limits.perHour, 3600), keyId),
    ]);
    const m = { res: minute, limit: limits.perMinute };
    const h = { res: hour, limit: limits.perHour };
    const minuteOk = minute.consumedPoints <= limits.perMinute;
    const hourOk = hour.consumedPoints <= limits.perHour;
    // Report the window that refused, else the one with fewer requests left.
    const binding = !hourOk ? h : !minuteOk ? m : h.res.remainingPoints < m.res.remainingPoints ? h : m;
    return {
      allowed: minuteOk && hourOk,
      limit: binding.limit,
      remaining: Math.max(0, binding.limit - binding.res.consumedPoints),
      resetSeconds: Math.max(1, Math.ceil(binding.res.msBeforeNext / 1000)),
    };
  }

  private async take(limiter: RateLimiterAbstract, key: string): Promise<RateLimiterRes> {
    try {
      return await limiter.consume(key, 1);
    } catch (rejection) {
      // rate-limiter-flexible rejects with the result when over the limit, with an Error otherwise.
      if (rejection instanceof RateLimiterRes) return rejection;
      throw rejection;
    }
  }

  private limiter(points: number, duration: number): RateLimiterAbstract {
    const id = `${duration}:${points}`;
    let limiter = this.limiters.get(id);
    if (!limiter) {
      const opts = { points, duration, keyPrefix: `key:${id}` };
      if (this.store.kind === "memory") {
        limiter = new RateLimiterMemory(opts);
      } else {
        // One limiter per process sweeps expired rows; the others leave it to that one.
        limiter = new RateLimiterDrizzle({
          ...opts,
          storeClient: this.store.db,
          schema: rateLimitCounters,
          clearExpiredByTimeout: !this.cleanupOwned,
        });
        this.cleanupOwned = true;
      }
      this.limiters.set(id, limiter);
    }
    return limiter;
  }
}

/**
 * Authentication failures per client IP, always in process memory: a malformed key must cost
 * no database work, and with 178-bit keys this only needs to slow down noise, not guessing.
 */
export class AuthFailureLimiter {
  private readonly limiter: RateLimiterMemory;

  constructor(readonly perMinute = 30) {
    this.limiter = new RateLimiterMemory({ points: perMinute, duration: 60, keyPrefix: "authfail" });
  }

  /** Seconds to wait when this IP is over its failure budget, else 0. */
  async blockedFor(ip: string): Promise<number> {
    const res = await this.limiter.get(ip);
    if (!res || res.consumedPoints < this.perMinute) return 0;
    return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
  }

  async recordFailure(ip: string): Promise<void> {
    await this.limiter.penalty(ip, 1);
  }
}
