// One HTTP exchange with the API, retried when that is safe: network errors, 5xx, 408 and
// 429 (honouring Retry-After), and 409 `idempotency_in_progress`. Every POST this client
// sends is idempotent (an Idempotency-Key, or cancel which the spec makes idempotent), so a
// retry can never run a command twice. An answer without the API's error envelope is not the
// service's: it is not retried, except a proxy's 502/503/504 (briefly) and a 429 with
// Retry-After. Connections refused on every attempt fail within seconds (issue 14). The one
// exception is the OIDC exchange (a token is accepted once): it is sent again only while no
// attempt can have left this machine.
import { API_BASE_PATH, CONTENT_TYPE_EVENT_STREAM, CONTENT_TYPE_JSON, HEADERS } from "@reoclo/protocol";
import {
  errorFromResponse,
  NOT_REOCLO_SERVICE,
  notReocloService,
  ReocloApiError,
  ReocloUnreachableError,
  unexpectedResponse,
  type NeverSentReason,
} from "./errors.js";
import {
  abortError,
  backoffDelay,
  parseRetryAfter,
  REFUSED_WINDOW_MS,
  refusedDelay,
  sleep,
} from "./retry.js";

/** Retries of a proxy's own 502/503/504 (no envelope), each waiting at most PROXY_MAX_DELAY_MS. */
const PROXY_RETRIES = 3;
const PROXY_MAX_DELAY_MS = 2_000;
const PROXY_STATUSES = new Set([502, 503, 504]);

export interface HttpSettings {
  /** Origin plus API_BASE_PATH, without a trailing slash. */
  readonly baseUrl: string;
  /** Undefined for a client made only to exchange an OIDC token for a key. */
  readonly apiKey: string | undefined;
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
  /** Default true. False: sent without the API key (the OIDC exchange, which has none yet). */
  authenticated?: boolean;
  /**
   * Default true. False: the request must not reach the service twice, so it is retried only
   * while every attempt failed before leaving this machine (refused, unknown host); any answer
   * or any other network error is final.
   */
  retryable?: boolean;
}

/**
 * 409 is retried only for `idempotency_in_progress`: the first request with this key is
 * still being created (e.g. our own earlier attempt whose answer was lost), and once it
 * is, the retry gets its replay. Every other 4xx is the caller's to fix. An answer without
 * the envelope is retried only when a proxy may have answered for a service that is down
 * (502/503/504), or when it asks to come back later (429 with Retry-After).
 */
export function isRetryable(err: ReocloApiError): boolean {
  const s = err.status;
  if (err.code === NOT_REOCLO_SERVICE)
    return PROXY_STATUSES.has(s) || (s === 429 && err.retryAfterMs !== undefined);
  return s >= 500 || s === 429 || s === 408 || (s === 409 && err.code === "idempotency_in_progress");
}

/** The socket errors of a fetch that failed before its request left this machine. */
function socketErrorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (const e of [err, (err as { cause?: unknown } | null)?.cause]) {
    if (e === null || typeof e !== "object") continue;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    // Node tries each address of a name in turn (happy eyeballs) and reports them together.
    const each = (e as { errors?: unknown }).errors;
    if (Array.isArray(each)) codes.push(...each.flatMap(socketErrorCodes));
  }
  return codes;
}

/** Why a failed fetch cannot have sent anything, or undefined when its request may have arrived. */
export function neverSentReason(err: unknown): NeverSentReason | undefined {
  if (err instanceof ReocloApiError) return undefined;
  const codes = socketErrorCodes(err);
  if (codes.includes("ENOTFOUND")) return "unknown_host";
  if (codes.length > 0 && codes.every((c) => c === "ECONNREFUSED")) return "connection_refused";
  return undefined;
}

export function isEventStream(res: Response): boolean {
  return (res.headers.get(HEADERS.contentType) ?? "").toLowerCase().startsWith(CONTENT_TYPE_EVENT_STREAM);
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

/** One attempt: the answer, or the network error (an abort rejects as such). */
async function attempt(
  settings: HttpSettings,
  url: string,
  init: RequestInit,
  signal: AbortSignal | undefined,
): Promise<Response | { failed: unknown }> {
  try {
    return await settings.fetch(url, init);
  } catch (err) {
    if (signal?.aborted) throw abortError(signal);
    return { failed: err };
  }
}

/** Sends `req`, retrying as described above; resolves with a 2xx response (body unread). */
export async function send(settings: HttpSettings, req: HttpRequest): Promise<Response> {
  const { signal } = req;
  const authenticated = req.authenticated ?? true;
  if (authenticated && settings.apiKey === undefined)
    throw new TypeError(`${req.method} ${req.path} needs an API key: this client was made without one.`);
  const headers: Record<string, string> = {
    ...(authenticated ? { [HEADERS.authorization]: `Bearer ${settings.apiKey}` } : {}),
    [HEADERS.userAgent]: settings.userAgent,
    [HEADERS.accept]: CONTENT_TYPE_JSON,
    ...req.headers,
  };
  // Serialised once so every attempt sends byte-identical bodies (the replay compares them).
  const body = req.body === undefined ? undefined : JSON.stringify(req.body);
  if (body !== undefined) headers[HEADERS.contentType] = CONTENT_TYPE_JSON;
  const url = urlOf(settings, req.path);
  const what = `${req.method} ${req.path}`;
  /** Set while no attempt can have reached the service; cleared by the first that may have. */
  let neverSent: NeverSentReason | undefined;
  let waitedWhileRefused = 0;
  let proxyRetries = 0;
  for (let tries = 1; ; tries++) {
    if (signal?.aborted) throw abortError(signal);
    const got = await attempt(settings, url, { method: req.method, headers, body, signal }, signal);
    let failure: unknown;
    let delay: number;
    if (got instanceof Response) {
      if (got.ok) return got;
      neverSent = undefined;
      const err = await errorFromResponse(got, parseRetryAfter(got.headers.get(HEADERS.retryAfter)));
      const proxy = err.code === NOT_REOCLO_SERVICE && PROXY_STATUSES.has(err.status);
      if (req.retryable === false || !isRetryable(err) || (proxy && ++proxyRetries > PROXY_RETRIES))
        throw err;
      failure = err;
      // The server's Retry-After wins over our own guess; it knows when it will be back.
      delay = err.retryAfterMs ?? backoffDelay(tries - 1, settings.baseDelayMs, settings.maxDelayMs);
      if (proxy) delay = Math.min(delay, PROXY_MAX_DELAY_MS);
    } else {
      failure = got.failed; // a network error: the request may or may not have arrived
      const reason = neverSentReason(got.failed);
      neverSent = tries === 1 || neverSent ? reason : undefined;
      if (req.retryable === false && !neverSent) throw failure;
      // Never longer than the backoff's own ceiling: a client configured to retry fast stays fast.
      const ceiling = Math.min(settings.maxDelayMs, settings.baseDelayMs * 2 ** (tries - 1));
      delay = neverSent
        ? Math.min(refusedDelay(tries - 1), ceiling)
        : backoffDelay(tries - 1, settings.baseDelayMs, settings.maxDelayMs);
    }
    const windowSpent = neverSent !== undefined && waitedWhileRefused + delay > REFUSED_WINDOW_MS;
    if (tries >= settings.attempts || windowSpent) {
      if (neverSent)
        throw new ReocloUnreachableError({ url, reason: neverSent, attempts: tries, cause: failure });
      throw failure;
    }
    if (neverSent) waitedWhileRefused += delay;
    settings.log(`${what}: ${describe(failure)}; retry ${tries} of ${settings.attempts - 1} in ${delay} ms`);
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
  let text: string;
  try {
    text = await res.text();
  } catch {
    throw unexpectedResponse(res, "a body that broke off");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // A web page or another API at this URL (a 200 to anything), not the service.
    throw notReocloService(res, text);
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
