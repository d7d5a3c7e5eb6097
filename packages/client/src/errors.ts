// Errors that keep the API's envelope (spec §1), so callers can branch on `code` and show
// `detail` as the service worded it.
import {
  API_BASE_PATH,
  errorEnvelopeSchema,
  errorStatus,
  HEADERS,
  isErrorCode,
  KEY_PREFIX,
  MASK,
  type ErrorEnvelope,
  type FieldErrors,
} from "@reoclo/protocol";

/**
 * The code of an answer without the API's error envelope, or of a 2xx whose body is not JSON:
 * the URL does not lead to a Reoclo service (or a proxy in front of it could not reach it).
 */
export const NOT_REOCLO_SERVICE = "not_reoclo_service";

/** Longest excerpt of such an answer's body kept in `detail` (a web page can be huge). */
const EXCERPT_MAX_CHARS = 120;

export class ReocloApiError extends Error {
  override readonly name = "ReocloApiError";
  readonly status: number;
  /** The envelope's `error`, or NOT_REOCLO_SERVICE when the answer did not carry the envelope. */
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

/** The error envelope in `text`, or undefined when it holds none. */
function readEnvelope(text: string): ErrorEnvelope | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const envelope = errorEnvelopeSchema.safeParse(json);
  return envelope.success ? envelope.data : undefined;
}

/** The error an envelope says; the request id from the answer's header when the body has none. */
function fromEnvelope(res: Response, envelope: ErrorEnvelope, status: number, retryAfterMs?: number) {
  return new ReocloApiError({
    status,
    code: envelope.error,
    detail: envelope.detail,
    requestId: envelope.request_id || (res.headers.get(HEADERS.requestId) ?? undefined),
    fields: envelope.fields,
    retryAfterMs,
  });
}

/** Reads an error answer's body (consuming it) into a ReocloApiError. */
export async function errorFromResponse(res: Response, retryAfterMs?: number): Promise<ReocloApiError> {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // The body broke off; the status still says enough.
  }
  const envelope = readEnvelope(text);
  if (envelope) return fromEnvelope(res, envelope, res.status, retryAfterMs);
  return notReocloService(res, text, retryAfterMs);
}

/** An answer that is not the API's: says where it came from and what it was, with a short excerpt. */
export function notReocloService(res: Response, body: string, retryAfterMs?: number): ReocloApiError {
  const type = (res.headers.get(HEADERS.contentType) ?? "").split(";")[0]?.trim() || "no content type";
  const server = serverOf(res);
  // A proxy answers these itself when the service behind it is down or slow.
  const proxy = res.status >= 502 && res.status <= 504 ? "; a proxy there may not reach the service" : "";
  const excerpt = bodyExcerpt(body);
  return new ReocloApiError({
    status: res.status,
    code: NOT_REOCLO_SERVICE,
    detail: `The server at ${server} did not answer like a Reoclo service (HTTP ${res.status}, ${type}${proxy})${excerpt ? `: "${excerpt}"` : "."}`,
    requestId: res.headers.get(HEADERS.requestId) ?? undefined,
    retryAfterMs,
  });
}

/** The api_url the request went to: its URL up to the API's base path (or its origin). */
function serverOf(res: Response): string {
  const at = res.url.indexOf(API_BASE_PATH);
  if (at > 0) return res.url.slice(0, at);
  try {
    return new URL(res.url).origin;
  } catch {
    return "this URL"; // a Response built by hand (tests) has no URL
  }
}

/** Anything shaped like an automation key, however long, in a foreign page's text. */
const KEY_LIKE = new RegExp(`${KEY_PREFIX}[0-9A-Za-z]+`, "g");

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };

/**
 * A few words of a body for a message: the text of an HTML page (without its head, scripts and
 * styles), whitespace collapsed, control characters dropped, an automation key masked, and cut.
 */
export function bodyExcerpt(body: string): string {
  const text = body
    .replace(/<(head|script|style)\b[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/<!--[\s\S]*?-->/g, " ")
    .replace(/<[^>]*>/g, " ")
    .replace(/&(#\d{1,7}|[a-z]+);/gi, (m, name: string) => {
      if (!name.startsWith("#")) return ENTITIES[name.toLowerCase()] ?? m;
      const point = Number(name.slice(1));
      return point > 0 && point <= 0x10ffff ? String.fromCodePoint(point) : " ";
    })
    .replace(KEY_LIKE, `${KEY_PREFIX}${MASK}`)
    .replace(/[\p{Cc}\s]+/gu, " ")
    .trim();
  return text.length > EXCERPT_MAX_CHARS ? `${text.slice(0, EXCERPT_MAX_CHARS - 1).trimEnd()}…` : text;
}

/**
 * The final `error` event of an event stream (e.g. `key_revoked`: the stream ends, the operation
 * goes on). It came in a 200 answer, so the status is the one the code always has (401 for
 * `key_revoked`); a code this client does not know keeps the answer's status.
 */
export function errorFromEvent(res: Response, data: string): ReocloApiError {
  const envelope = readEnvelope(data);
  if (!envelope) {
    return new ReocloApiError({
      status: res.status,
      code: "unexpected_response",
      detail: "The event stream ended with an error event the client cannot read.",
      requestId: res.headers.get(HEADERS.requestId) ?? undefined,
    });
  }
  const code = envelope.error;
  return fromEnvelope(res, envelope, isErrorCode(code) ? errorStatus(code) : res.status);
}

/** A 2xx answer whose JSON body is not what the protocol says (see notReocloService for one that is not JSON). */
export function unexpectedResponse(res: Response, why: string): ReocloApiError {
  return new ReocloApiError({
    status: res.status,
    code: "unexpected_response",
    detail: `The API answered ${res.status} with ${why}.`,
    requestId: res.headers.get(HEADERS.requestId) ?? undefined,
  });
}

/** How a request can fail without leaving this machine: nobody listens, or the name has no address. */
export type NeverSentReason = "connection_refused" | "unknown_host";

/**
 * Every attempt failed before its request left this machine (the connection was refused, or the
 * host name does not resolve): the service cannot have seen any of them, so nothing was started.
 */
export class ReocloUnreachableError extends Error {
  override readonly name = "ReocloUnreachableError";
  /**
   * Always true, for callers that only see the error: no request reached the service. (The actions'
   * post step keeps its own record of that, STATE.nothingSent, written by action-kit's fetch.)
   */
  readonly nothingSent = true;
  readonly reason: NeverSentReason;
  readonly attempts: number;

  constructor(init: { url: string; reason: NeverSentReason; attempts: number; cause: unknown }) {
    const url = new URL(init.url);
    super(
      init.reason === "connection_refused"
        ? `the connection to ${url.host} was refused on every attempt (ECONNREFUSED): nothing listens there; check the API URL (api_url) and that the service runs. No request reached the service.`
        : `the host name ${url.hostname} does not resolve (ENOTFOUND): check the API URL (api_url). No request reached the service.`,
      { cause: init.cause },
    );
    this.reason = init.reason;
    this.attempts = init.attempts;
  }
}
