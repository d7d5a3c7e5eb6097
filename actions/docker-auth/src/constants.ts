import { PUBLISHED_USER_AGENTS } from "@reoclo/protocol";

/** The published docker-auth action's user agent (spec §7), so audit filters keep matching, plus ours. */
export const USER_AGENT = `${PUBLISHED_USER_AGENTS.dockerAuth} (reoclo-docker-auth/2)`;

/** Saved by main for the post step: what to log out of. Never a secret. */
export const STATE = {
  registryUrl: "registry_url",
} as const;
