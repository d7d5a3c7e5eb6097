// State passed from a main step to its post step, keys declared once. Never a secret: the post
// step reads the api_key input again.
export const STATE = {
  /** Saved before the first request: lets the post step find an operation whose id main never learned. */
  idempotencyKey: "idempotency_key",
  /** Saved as soon as the operation id is known. */
  operationId: "operation_id",
  /** "true" once main saw a final answer (the operation's end, or a refusal): nothing to cancel. */
  finished: "finished",
  /**
   * "true" while every request of main failed before it left the runner (connection refused,
   * unknown host): the service never saw one, so the post step has nothing to look up.
   */
  nothingSent: "nothing_sent",
} as const;
