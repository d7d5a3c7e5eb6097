// What a failed database call means for the caller. Drivers and drizzle wrap errors in each
// other; the answer depends on the innermost one: the database is down or restarting (503, try
// again), or it refused a value (bad input that got past validation: 422, never a 500).

export type DatabaseFailure = "unavailable" | "bad_value";

/** postgres.js's own codes for a connection that could not be made or was lost. */
const DRIVER_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * SQLSTATE classes (PostgreSQL appendix A) that say "not now": connection exceptions, operator
 * intervention (shutdown, restart), insufficient resources, transaction rollbacks (serialization,
 * deadlock), lock not available, system and internal errors.
 */
const UNAVAILABLE_CLASSES = new Set(["08", "40", "53", "57", "58", "XX"]);
const SQLSTATE = /^[0-9A-Z]{5}$/;

/** The error and its causes, outermost first (drivers and drizzle wrap each other). */
export function* causes(err: unknown): Generator<unknown> {
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    yield current;
    current = typeof current === "object" ? (current as { cause?: unknown }).cause : undefined;
  }
}

const field = (e: unknown, name: string): string | undefined => {
  if (typeof e !== "object" || e === null) return undefined;
  const value = (e as Record<string, unknown>)[name];
  return typeof value === "string" ? value : undefined;
};

/** Whether the error or one of its causes carries this SQLSTATE or driver code. */
export function hasErrorCode(err: unknown, code: string): boolean {
  for (const e of causes(err)) if (field(e, "code") === code) return true;
  return false;
}

/** Undefined when the error does not come from the database at all. */
export function classifyDatabaseError(err: unknown): DatabaseFailure | undefined {
  let fromDatabase = false;
  for (const e of causes(err)) {
    const name = e instanceof Error ? e.name : "";
    const code = field(e, "code");
    if (code !== undefined && SQLSTATE.test(code)) {
      if (code.startsWith("22")) return "bad_value";
      if (UNAVAILABLE_CLASSES.has(code.slice(0, 2)) || code === "55P03") return "unavailable";
      fromDatabase = true;
    }
    if (code !== undefined && DRIVER_CODES.has(code)) return "unavailable";
    if (e instanceof Error && /PGlite is closed|database is closed/i.test(e.message)) return "unavailable";
    if (name === "DrizzleQueryError" || name === "PostgresError" || name === "DatabaseError")
      fromDatabase = true;
  }
  // Any other failure of a query: the caller cannot fix it, and retrying later may work.
  return fromDatabase ? "unavailable" : undefined;
}

/**
 * One line for the service log: the innermost error's code and message, never drizzle's
 * wrapper, whose message repeats the query's parameters (output, command text).
 */
export function describeDatabaseError(err: unknown): string {
  let last: unknown = err;
  for (const e of causes(err)) last = e;
  const code = field(last, "code");
  const message = last instanceof Error ? last.message : String(last);
  const text = message.startsWith("Failed query:") ? "query failed" : message;
  return code ? `${code}: ${text}` : text;
}
