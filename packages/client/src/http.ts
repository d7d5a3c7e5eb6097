// One HTTP exchange with the API, retried when that is safe: network errors, 5xx, 408 and
// 429 (honouring Retry-After), and 409 `idempotency_in_progress`. Every POST this client
// sends is idempotent (an Idempotency-Key, or cancel which the spec makes idempotent), so a
// retry can never run a command twice.
import { API_BASE_PATH, CONTENT_TYPE_EVENT_STREAM, HEADERS } from "@reoclo/protocol";
import { errorFromResponse, ReocloApiError, unexpectedResponse } from "./errors.js";
import { abortError, backoffDelay, parseRetryAfter, sleep } from "./retry.js";

export interface HttpSettings {
  /** Origin plus API_BASE_PATH, without a trailing slash. */
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly userAgent: string;
  readonly fetch: typeof fetch;
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly pollIntervalMs: number;
  /** A live stream silent this long is treated as dropped and resumed. */
  readonly streamIdleMs: number;
  readonly log: (msg: string) => void;
}

export interface HttpRequest {
  method: "GET" | "POST";
  /** Path below API_BASE_PATH, e.g. "/exec" (operationPath() results are accepted too). */
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
}

/**
 * 409 is retried only for `idempotency_in_progress`: the first request with this key is
 * still being created (e.g. our own earlier attempt whose answer was lost), and once it
 * is, the retry gets its replay. Every other 4xx is the caller's to fix.
 */
export function isRetryable(err: ReocloApiError): boolean {
  const s = err.status;
  return s >= 500 || s === 429 || s === 408 || (s === 409 && err.code === "idempotency_in_progress");
}

export function isEventStream(res: Response): boolean {
  return (res.headers.get("content-type") ?? "").toLowerCase().startsWith(CONTENT_TYPE_EVENT_STREAM);
}

function describe(err: unknown): string {
  if (err instanceof ReocloApiError) return `HTTP ${err.status} ${err.code}`;
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const code = cause && typeof cause === "object" && "code" in cause ? ` (${String(cause.code)})` : "";
    return `${err.message}${code}`;
  }
  return String(err);
}

export function urlOf(settings: HttpSettings, path: string): string {
  const rel = path.startsWith(API_BASE_PATH) ? path.slice(API_BASE_PATH.length) : path;
  return settings.baseUrl + rel;
}

/** Sends `req`, retrying as described above; resolves with a 2xx response (body unread). */
export async function send(settings: HttpSettings, req: HttpRequest): Promise<Response> {
  const { signal } = req;
  const headers: Record<string, string> = {
    [HEADERS.authorization]: `Bearer ${settings.apiKey}`,
    [HEADERS.userAgent]: settings.userAgent,
    Accept: "application/json",
    ...req.headers,
  };
  // Serialised once so every attempt sends byte-identical bodies (the replay compares them).
  const body = req.body === undefined ? undefined : JSON.stringify(req.body);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const what = `${req.method} ${req.path}`;
  let lastError: unknown;
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw abortError(signal);
    let retryAfterMs: number | undefined;
    try {
      const res = await settings.fetch(urlOf(settings, req.path), {
        method: req.method,
        headers,
        body,
        signal,
      });
      if (res.ok) return res;
      retryAfterMs = parseRetryAfter(res.headers.get(HEADERS.retryAfter));
      const err = await errorFromResponse(res, retryAfterMs);
      if (!isRetryable(err)) throw err;
      lastError = err;
    } catch (err) {
      if (signal?.aborted) throw abortError(signal);
      if (err instanceof ReocloApiError && !isRetryable(err)) throw err;
      lastError = err; // a network error: the request may or may not have arrived
    }
    if (attempt + 1 >= settings.attempts) throw lastError;
    // The server's Retry-After wins over our own guess; it knows when it will be back.
    const delay = retryAfterMs ?? backoffDelay(attempt, settings.baseDelayMs, settings.maxDelayMs);
    settings.log(
      `${what}: ${describe(lastError)}; retry ${attempt + 1} of ${settings.attempts - 1} in ${delay} ms`,
    );
    await sleep(delay, signal);
  }
}

/** The part of a zod schema used here, so this package needs no direct zod dependency. */
export interface Schema<T> {
  safeParse(
    data: unknown,
  ):
    | { success: true; data: T }
    | { success: false; error: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> } };
}

/** Reads a JSON body and checks it against a protocol schema (which ignores unknown fields). */
export async function readJson<T>(res: Response, schema: Schema<T>): Promise<T> {
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    throw unexpectedResponse(res, "a body that is not JSON");
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first ? `${first.path.map(String).join(".") || "body"}: ${first.message}` : "invalid";
    throw unexpectedResponse(res, `an unexpected body (${where})`);
  }
  return parsed.data;
}

/** send() then readJson(). */
export async function sendJson<T>(settings: HttpSettings, req: HttpRequest, schema: Schema<T>): Promise<T> {
  return readJson(await send(settings, req), schema);
}
