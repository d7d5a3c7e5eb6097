/** The published docker-auth action's user agent (spec §7), so audit filters keep matching, plus ours. */
export const USER_AGENT = "reoclo-docker-auth-action (reoclo-docker-auth/2)";

/** Saved by main for the post step: what to log out of. Never a secret. */
export const STATE = {
  registryUrl: "registry_url",
} as const;
