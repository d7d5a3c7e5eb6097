// Backoff arithmetic and abortable waiting, kept pure so they can be tested without a clock.

/**
 * `Retry-After` (RFC 9110 §10.2.3) in milliseconds from `now`: either delay-seconds or an
 * HTTP date. Undefined when absent or unreadable, so the caller falls back to its backoff.
 * A date in the past means "now" (0).
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Only a date-shaped value is read as a date: Date.parse accepts odd strings like "1.5".
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * Exponential backoff with "full jitter" (a uniform draw in [0, min(max, base·2^attempt)]),
 * which spreads retries of many clients hit by the same outage instead of synchronising them.
 * `attempt` counts from 0 for the first retry.
 */
export function backoffDelay(
  attempt: number,
  base: number,
  max: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(max, base * 2 ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}

/** The error an aborted call rejects with, named "AbortError" as fetch's own. */
export function abortError(signal?: AbortSignal): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error && reason.name === "AbortError") return reason;
  return new DOMException("The operation was aborted.", "AbortError");
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === "AbortError";
}

/** Waits `ms`, or rejects with an AbortError as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const done = () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    };
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * While every attempt was refused at connect, nothing reached the service: the retries come soon
 * and stop soon, a wrong URL fails within seconds, and a service that is just starting is still
 * met. Their delays add up to at most REFUSED_WINDOW_MS.
 */
export const REFUSED_WINDOW_MS = 5_000;

/** Delay before retry `retry` (from 0) of a refused connection: 250, 500, then 750 ms. */
export function refusedDelay(retry: number): number {
  return Math.min(750, 250 * (Math.max(0, retry) + 1));
}
