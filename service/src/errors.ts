import { ERROR_CODES, type ErrorCode } from "@reoclo/protocol";

/** Codes only the admin side produces (SSH checks, data directory ownership). */
export type AdminErrorCode =
  "host_key_mismatch" | "host_unreachable" | "auth_failed" | "ssh_error" | "data_dir_in_use";

/** A typed failure of a service function; mapped to the one error envelope in one place. */
export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode | AdminErrorCode,
    readonly detail: string,
    readonly fields?: Record<string, string[]>,
  ) {
    super(detail);
    this.name = "AppError";
    this.status = code in ERROR_CODES ? ERROR_CODES[code as ErrorCode] : 502;
  }
}

export const notFound = (what: string) => new AppError("not_found", `${what} not found`);
