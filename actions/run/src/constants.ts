// Names shared by the main and post steps, declared once. Never a secret in the state: the
// post step reads the api_key input again.
export const STATE = {
  /** Set as soon as the operation id is known, so a post step can cancel what main left running. */
  operationId: "operation_id",
  /** "true" once main saw the operation's final status: nothing left to cancel. */
  finished: "finished",
} as const;

/** The published action's user agent (spec §7), so audit filters keep matching, plus ours. */
export const USER_AGENT = "reoclo-github-action (reoclo-run/2)";
