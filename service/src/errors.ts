import { ERROR_CODES, type ErrorCode } from "@reoclo/protocol";

/** Codes only the admin side produces (SSH checks, data directory ownership, storage not there yet). */
export type AdminErrorCode =
  | "host_key_mismatch"
  | "host_unreachable"
  | "auth_failed"
  | "ssh_negotiation_failed"
  | "ssh_error"
  | "data_dir_in_use"
  | "data_dir_not_found"
  | "database_not_initialised";

/** A typed failure of a service function; mapped to the one error envelope in one place. */
export class ServiceError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode | AdminErrorCode,
    readonly detail: string,
    readonly fields?: Record<string, string[]>,
    /** For a 429: the seconds after which a retry may succeed, sent as `Retry-After`. */
    readonly retryAfterSeconds?: number,
  ) {
    // Expected refusals need no stack trace, and capturing one dominates the cost of a denial.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(detail);
    Error.stackTraceLimit = limit;
    this.name = "ServiceError";
    this.status = code in ERROR_CODES ? ERROR_CODES[code as ErrorCode] : 502;
  }
}
