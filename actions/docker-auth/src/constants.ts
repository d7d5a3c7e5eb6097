/** The published docker-auth action's user agent (spec §7), so audit filters keep matching, plus ours. */
export const USER_AGENT = "reoclo-docker-auth-action (reoclo-docker-auth/2)";

/** Enough to ride out a service restart of about a minute (1, 2, 4, 8, 15, 15, 15 s ceilings, full jitter). */
export const RETRY = { attempts: 8, baseDelayMs: 1_000, maxDelayMs: 15_000 } as const;

/** Saved by main for the post step: what to log out of. Never a secret. */
export const STATE = {
  registryUrl: "registry_url",
} as const;
