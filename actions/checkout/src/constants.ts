/** The published checkout action's user agent (spec §7), so audit filters keep matching, plus ours. */
export const USER_AGENT = "reoclo-github-action-checkout (reoclo-checkout/2)";
