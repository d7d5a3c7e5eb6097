// The typed client of the automation API (spec §3, §6).
import { randomUUID } from "node:crypto";
import {
  API_BASE_PATH,
  cancelOperationResponseSchema,
  HEADERS,
  oidcExchangeResponseSchema,
  operationListResponseSchema,
  operationPath,
  operationSchema,
  registryLoginResponseSchema,
  registryLogoutResponseSchema,
  ROUTES,
  type RegistryLoginRequestInput,
  type RegistryLoginResponse,
  type RegistryLogoutRequestInput,
  type RegistryLogoutResponse,
  type ExecFinishedResponse,
  type ExecRequestInput,
  type Operation,
  type OidcExchangeResponse,
  type OperationListResponse,
  type OutputStream,
} from "@reoclo/protocol";
import { runExec } from "./exec.js";
import { sendJson, type HttpSettings } from "./http.js";
import { sleep } from "./retry.js";

export interface ClientOptions {
  /** e.g. https://reoclo.example.com; the client appends /api/automation/v1. A trailing slash is fine. */
  apiUrl: string;
  /** The automation key. Leave it out only for a client that calls exchangeOidcToken (which gets one). */
  apiKey?: string;
  /** Default "reoclo-client"; the service's audit log keeps it. */
  userAgent?: string;
  /** Injectable for tests; default the global fetch (undici). */
  fetch?: typeof fetch;
  /** attempts counts the first try too: 6 means up to 5 retries. */
  retry?: { attempts?: number; baseDelayMs?: number; maxDelayMs?: number };
  /** How often to poll GET /operations/{id} when streaming is unavailable; default 2000. */
  pollIntervalMs?: number;
  /** A live stream that sends nothing for this long (the service sends a keep-alive every 15 s) is resumed; default 60000. */
  streamIdleMs?: number;
  /** Aborts every call of this client. */
  signal?: AbortSignal;
  /** Debug log of retries, reconnects and fallbacks. It never receives the API key. */
  log?: (msg: string) => void;
}

export interface ExecCallOptions {
  /** Default: a random UUID. Give a stable one (e.g. derived from the CI run and step) so a re-run process never runs the command twice. */
  idempotencyKey?: string;
  /**
   * Each chunk of output as it arrives, in order, once. When the service cannot stream (or
   * the stream keeps failing), what was not seen yet of the polled result (the last 64 KiB
   * of each stream) is handed over once at the end, stdout first.
   */
  onOutput?: (e: { stream: OutputStream; data: string }) => void;
  /** The operation id, as soon as it is known (keep it to cancel on abort). */
  onOperation?: (operationId: string) => void;
  /** Stops waiting (rejects with an AbortError); it does not cancel the remote command. */
  signal?: AbortSignal;
}

/** The API root of `apiUrl`: tolerates a trailing slash and an apiUrl that already ends in the base path. */
export function apiBaseUrl(apiUrl: string): string {
  const origin = apiUrl.trim().replace(/\/+$/, "");
  return origin.endsWith(API_BASE_PATH) ? origin : origin + API_BASE_PATH;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a non-negative number.`);
  return value;
}

export class ReocloClient {
  readonly #http: HttpSettings;
  readonly #signal: AbortSignal | undefined;

  constructor(opts: ClientOptions) {
    if (!opts.apiUrl) throw new TypeError("apiUrl is required.");
    if (opts.apiKey !== undefined && !opts.apiKey)
      throw new TypeError("apiKey must not be empty (leave it out only to call exchangeOidcToken).");
    const attempts = Math.floor(positive(opts.retry?.attempts, 6, "retry.attempts"));
    this.#http = {
      baseUrl: apiBaseUrl(opts.apiUrl),
      apiKey: opts.apiKey,
      userAgent: opts.userAgent ?? "reoclo-client",
      fetch: opts.fetch ?? globalThis.fetch.bind(globalThis),
      attempts: Math.max(1, attempts),
      baseDelayMs: positive(opts.retry?.baseDelayMs, 500, "retry.baseDelayMs"),
      maxDelayMs: positive(opts.retry?.maxDelayMs, 15_000, "retry.maxDelayMs"),
      pollIntervalMs: positive(opts.pollIntervalMs, 2000, "pollIntervalMs"),
      streamIdleMs: positive(opts.streamIdleMs, 60_000, "streamIdleMs"),
      log: opts.log ?? (() => undefined),
    };
    this.#signal = opts.signal;
  }

  /**
   * Runs a command once and resolves with its final result, streaming its output to
   * onOutput. See exec.ts for how it streams, resumes, learns the operation id and falls
   * back to polling. Rejects with a ReocloApiError (the envelope, also when the service ends
   * the stream with an `error` event such as `key_revoked`: the command goes on), a network
   * error once the retries are used up, or an AbortError.
   */
  async exec(req: ExecRequestInput, opts: ExecCallOptions = {}): Promise<ExecFinishedResponse> {
    // Our own controller also stops the background id lookup once exec settles.
    const done = new AbortController();
    const signals = [done.signal, this.#signal, opts.signal].filter((s) => s !== undefined);
    try {
      return await runExec(this.#http, req, {
        idempotencyKey: opts.idempotencyKey ?? randomUUID(),
        onOutput: opts.onOutput,
        onOperation: opts.onOperation,
        signal: AbortSignal.any(signals),
      });
    } finally {
      done.abort();
    }
  }

  getOperation(id: string, signal?: AbortSignal): Promise<Operation> {
    return sendJson(
      this.#http,
      { method: "GET", path: operationPath(id), signal: this.#with(signal) },
      operationSchema,
    );
  }

  /** Cancels a running operation; idempotent, so it is retried like a read. */
  cancel(id: string, signal?: AbortSignal): Promise<Operation> {
    return sendJson(
      this.#http,
      { method: "POST", path: operationPath(id, "/cancel"), signal: this.#with(signal) },
      cancelOperationResponseSchema,
    );
  }

  /** One page of the operations of a CI run, newest first; pass `next_cursor` back for the next. */
  listOperations(
    runId: string,
    page: { cursor?: string; limit?: number; signal?: AbortSignal } = {},
  ): Promise<OperationListResponse> {
    const query = new URLSearchParams({ run_id: runId });
    if (page.cursor !== undefined) query.set("cursor", page.cursor);
    if (page.limit !== undefined) query.set("limit", String(page.limit));
    return sendJson(
      this.#http,
      { method: "GET", path: `${ROUTES.operations}?${query.toString()}`, signal: this.#with(page.signal) },
      operationListResponseSchema,
    );
  }

  /**
   * The operation this API key started with `idempotencyKey`, if the service got that far:
   * for a caller that lost the answer (it was stopped mid-request) and must cancel what it
   * may have started.
   */
  async findOperationByIdempotencyKey(
    idempotencyKey: string,
    signal?: AbortSignal,
  ): Promise<Operation | undefined> {
    const query = new URLSearchParams({ idempotency_key: idempotencyKey });
    const page = await sendJson(
      this.#http,
      { method: "GET", path: `${ROUTES.operations}?${query.toString()}`, signal: this.#with(signal) },
      operationListResponseSchema,
    );
    return page.items[0];
  }

  /** POST /registry-auth/login (202): starts the login operation; retried under one Idempotency-Key. */
  registryLogin(
    body: RegistryLoginRequestInput,
    opts: { idempotencyKey?: string; signal?: AbortSignal } = {},
  ): Promise<RegistryLoginResponse> {
    return sendJson(
      this.#http,
      {
        method: "POST",
        path: ROUTES.registryLogin,
        body,
        headers: { [HEADERS.idempotencyKey]: opts.idempotencyKey ?? randomUUID() },
        signal: this.#with(opts.signal),
      },
      registryLoginResponseSchema,
    );
  }

  /** POST /registry-auth/logout (200): the answer is final, or `running` after the sync window. */
  registryLogout(
    body: RegistryLogoutRequestInput,
    opts: { idempotencyKey?: string; signal?: AbortSignal } = {},
  ): Promise<RegistryLogoutResponse> {
    return sendJson(
      this.#http,
      {
        method: "POST",
        path: ROUTES.registryLogout,
        body,
        headers: { [HEADERS.idempotencyKey]: opts.idempotencyKey ?? randomUUID() },
        signal: this.#with(opts.signal),
      },
      registryLogoutResponseSchema,
    );
  }

  /**
   * POST /oidc/exchange (spec §12): a CI job's ID token for a short-lived automation key. Sent
   * without an API key. A token is accepted once, so it is sent again only while no attempt can
   * have reached the service (connection refused, unknown host); every answer is final: 401 the
   * token or trust policy refused it, 503 the service could not reach the token's issuer.
   */
  exchangeOidcToken(token: string, signal?: AbortSignal): Promise<OidcExchangeResponse> {
    return sendJson(
      this.#http,
      {
        method: "POST",
        path: ROUTES.oidcExchange,
        body: { token },
        authenticated: false,
        retryable: false,
        signal: this.#with(signal),
      },
      oidcExchangeResponseSchema,
    );
  }

  /** Polls an operation until it is final (every pollIntervalMs). */
  async waitForOperation(id: string, signal?: AbortSignal): Promise<Operation> {
    for (;;) {
      const op = await this.getOperation(id, signal);
      if (op.status !== "running") return op;
      await sleep(this.#http.pollIntervalMs, this.#with(signal));
    }
  }

  #with(signal: AbortSignal | undefined): AbortSignal | undefined {
    const signals = [this.#signal, signal].filter((s) => s !== undefined);
    return signals.length > 1 ? AbortSignal.any(signals) : signals[0];
  }
}
