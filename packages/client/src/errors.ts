// Errors that keep the API's envelope (spec §1), so callers can branch on `code` and show
// `detail` as the service worded it.
import { errorEnvelopeSchema, errorStatus, HEADERS, isErrorCode, type FieldErrors } from "@reoclo/protocol";

/** Longest slice of a non-JSON error body kept in `detail` (a proxy's HTML page can be huge). */
const RAW_DETAIL_MAX_CHARS = 500;

export class ReocloApiError extends Error {
  override readonly name = "ReocloApiError";
  readonly status: number;
  /** The envelope's `error`, or `http_<status>` when the body was not an envelope. */
  readonly code: string;
  readonly detail: string;
  readonly requestId?: string;
  readonly fields?: Record<string, string[]>;
  /** Milliseconds the server asked us to wait (429/503 `Retry-After`), if it did. */
  readonly retryAfterMs?: number;

  constructor(init: {
    status: number;
    code: string;
    detail: string;
    requestId?: string | undefined;
    fields?: FieldErrors | undefined;
    retryAfterMs?: number | undefined;
  }) {
    super(`${init.code} (HTTP ${init.status}): ${init.detail}`);
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    if (init.requestId !== undefined) this.requestId = init.requestId;
    if (init.fields !== undefined) this.fields = init.fields;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
  }
}

/** Reads an error answer's body (consuming it) into a ReocloApiError. */
export async function errorFromResponse(res: Response, retryAfterMs?: number): Promise<ReocloApiError> {
  const headerRequestId = res.headers.get(HEADERS.requestId) ?? undefined;
  let text = "";
  try {
    text = await res.text();
  } catch {
    // The body broke off; the status still says enough.
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const envelope = errorEnvelopeSchema.safeParse(json);
  if (envelope.success) {
    return new ReocloApiError({
      status: res.status,
      code: envelope.data.error,
      detail: envelope.data.detail,
      requestId: envelope.data.request_id || headerRequestId,
      fields: envelope.data.fields,
      retryAfterMs,
    });
  }
  const raw = text.trim().slice(0, RAW_DETAIL_MAX_CHARS);
  return new ReocloApiError({
    status: res.status,
    code: `http_${res.status}`,
    detail: raw || res.statusText || `HTTP ${res.status}`,
    requestId: headerRequestId,
    retryAfterMs,
  });
}

/**
 * The final `error` event of an event stream (e.g. `key_revoked`: the stream ends, the operation
 * goes on). It came in a 200 answer, so the status is the one the code always has (401 for
 * `key_revoked`); a code this client does not know keeps the answer's status.
 */
export function errorFromEvent(res: Response, data: string): ReocloApiError {
  const headerRequestId = res.headers.get(HEADERS.requestId) ?? undefined;
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    json = undefined;
  }
  const envelope = errorEnvelopeSchema.safeParse(json);
  if (!envelope.success) {
    return new ReocloApiError({
      status: res.status,
      code: "unexpected_response",
      detail: "The event stream ended with an error event the client cannot read.",
      requestId: headerRequestId,
    });
  }
  const code = envelope.data.error;
  return new ReocloApiError({
    status: isErrorCode(code) ? errorStatus(code) : res.status,
    code,
    detail: envelope.data.detail,
    requestId: envelope.data.request_id || headerRequestId,
    fields: envelope.data.fields,
  });
}

/** A 2xx answer whose body is not what the protocol says (wrong shape, not JSON). */
export function unexpectedResponse(res: Response, why: string): ReocloApiError {
  return new ReocloApiError({
    status: res.status,
    code: "unexpected_response",
    detail: `The API answered ${res.status} with ${why}.`,
    requestId: res.headers.get(HEADERS.requestId) ?? undefined,
  });
}
