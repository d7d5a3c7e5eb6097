/** The published action's user agent (spec §7), so audit filters keep matching, plus ours. */
export const USER_AGENT = "reoclo-github-action (reoclo-run/2)";
