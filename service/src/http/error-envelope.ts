import { HEADERS, type ErrorCode, type ErrorEnvelope } from "@reoclo/protocol";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { classifyDatabaseError, describeDatabaseError } from "../db/errors";
import { ServiceError } from "../errors";
import type { Logger } from "../logger";

const STATUS_CODES: Partial<Record<number, ErrorCode>> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  408: "request_timeout",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  422: "validation",
  429: "rate_limited",
  503: "service_unavailable",
};

export function errorResponse(
  c: Context,
  status: number,
  code: string,
  detail: string,
  fields?: Record<string, string[]>,
) {
  const body: ErrorEnvelope = { error: code, detail, request_id: c.get("requestId") ?? "" };
  if (fields) body.fields = fields;
  // RFC 9110 §15.5.2: a 401 names the scheme that would work; RFC 6750 §3 its parameters.
  if (status === 401) c.header("WWW-Authenticate", bearerChallenge(c));
  return c.json(body, status as ContentfulStatusCode);
}

const REALM = "reoclo";

function bearerChallenge(c: Context): string {
  const sent = Boolean(c.req.header(HEADERS.authorization)?.trim());
  return sent
    ? `Bearer realm="${REALM}", error="invalid_token", error_description="The access token is missing, malformed, unknown, revoked or expired."`
    : `Bearer realm="${REALM}"`;
}

/** A client that hung up while its request was being read (Node's "aborted" ECONNRESET). */
export function isClientAbort(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && err.message === "aborted" && code === "ECONNRESET";
}

/** The one place typed errors become HTTP answers; nothing internal reaches the body. */
export function onServiceError(logger: Logger) {
  return function handleError(err: Error, c: Context) {
    if (err instanceof ServiceError) {
      if (err.retryAfterSeconds !== undefined) c.header(HEADERS.retryAfter, String(err.retryAfterSeconds));
      return errorResponse(c, err.status, err.code, err.detail, err.fields);
    }
    if (err instanceof HTTPException) {
      const status = err.status;
      const code = STATUS_CODES[status] ?? (status >= 500 ? "service_unavailable" : "bad_request");
      return errorResponse(c, status, code, err.message || "The request could not be processed.");
    }
    // Nobody reads this answer; it is not an error of the service either.
    if (isClientAbort(err)) {
      logger.info("client closed the connection mid-request", { request_id: c.get("requestId") });
      return errorResponse(c, 400, "bad_request", "The client closed the connection mid-request.");
    }
    const failure = classifyDatabaseError(err);
    if (failure) {
      logger.warn("database call failed", {
        request_id: c.get("requestId"),
        failure,
        error: describeDatabaseError(err),
      });
      return failure === "unavailable"
        ? errorResponse(c, 503, "database_unavailable", "The database does not answer; retry shortly.")
        : errorResponse(
            c,
            422,
            "validation",
            "The request holds a value the service cannot store (for example a NUL character or a number out of range).",
          );
    }
    logger.error("unhandled error", { request_id: c.get("requestId"), error: err.stack ?? String(err) });
    return errorResponse(
      c,
      500,
      "internal_error",
      "The service hit an unexpected error; the request id identifies it in the service log.",
    );
  };
}
