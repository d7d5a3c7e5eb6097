// @reoclo/client: the typed HTTP client of the automation API. Node's fetch and the
// protocol package only, so actions can bundle it without native dependencies.
export { ReocloClient, apiBaseUrl, type ClientOptions, type ExecCallOptions } from "./client.js";
export { NOT_REOCLO_SERVICE, ReocloApiError, ReocloUnreachableError } from "./errors.js";
export { MAX_STREAM_FAILURES } from "./exec.js";
export { isRetryable, neverSentReason } from "./http.js";
export { abortError, backoffDelay, isAbortError, parseRetryAfter } from "./retry.js";
export { parseSse, type SseMessage, type SseParser } from "./sse.js";
export type {
  ExecFinishedResponse,
  ExecRequestInput,
  Operation,
  OperationListResponse,
  OutputStream,
} from "@reoclo/protocol";
