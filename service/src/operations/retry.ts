// Backoff for work that must eventually reach the database (output, final states): quick at
// first, then every few seconds, for as long as it takes.

const DELAYS_MS = [100, 200, 500, 1_000, 2_000];

export const retryDelayMs = (attempt: number): number =>
  DELAYS_MS[Math.min(attempt, DELAYS_MS.length - 1)] ?? 2_000;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
