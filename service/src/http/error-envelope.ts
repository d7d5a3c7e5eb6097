import type { ErrorCode, ErrorEnvelope } from "@reoclo/protocol";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { AppError } from "../errors";
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
  return c.json(body, status as ContentfulStatusCode);
}

/** The one place typed errors become HTTP answers; nothing internal reaches the body. */
export function onAppError(logger: Logger) {
  return function handleError(err: Error, c: Context) {
    if (err instanceof AppError) return errorResponse(c, err.status, err.code, err.detail, err.fields);
    if (err instanceof HTTPException) {
      const status = err.status;
      const code = STATUS_CODES[status] ?? (status >= 500 ? "service_unavailable" : "bad_request");
      return errorResponse(c, status, code, err.message || "The request could not be processed.");
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
