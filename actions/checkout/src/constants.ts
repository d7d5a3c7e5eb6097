/** The published checkout action's user agent (spec §7), so audit filters keep matching, plus ours. */
export const USER_AGENT = "reoclo-github-action-checkout (reoclo-checkout/2)";

/** Enough to ride out a service restart of about a minute (1, 2, 4, 8, 15, 15, 15 s ceilings, full jitter). */
export const RETRY = { attempts: 8, baseDelayMs: 1_000, maxDelayMs: 15_000 } as const;
