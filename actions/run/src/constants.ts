import { PUBLISHED_USER_AGENTS } from "@reoclo/protocol";

/** The published action's user agent (spec §7), so audit filters keep matching, plus ours. */
export const USER_AGENT = `${PUBLISHED_USER_AGENTS.run} (reoclo-run/2)`;
