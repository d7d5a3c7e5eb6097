// `exec`: start a command once, follow its output live, and return its final result.
//
// 1. POST /exec with `Accept: text/event-stream` and an Idempotency-Key; retries re-send
//    the same key, so however often the request is repeated the command runs once.
// 2. The event stream carries output and status but not the operation id, which we need to
//    resume a dropped stream, to poll, to report it (onOperation, for cancelling) and to
//    fill the result. The service names it in the `X-Operation-Id` header of the answer,
//    before any event. A service that does not (an older one) is asked by re-POSTing the
//    same body with the same Idempotency-Key without the SSE Accept header: a replay
//    (`Idempotent-Replayed: true`) that runs nothing and answers `{operation_id, status}`.
// 3. When the stream drops before `end`, it resumes from GET /operations/{id}/events with
//    `Last-Event-ID`, so onOutput sees every chunk once, without gap or duplicate.
// 4. When streaming is unavailable (a JSON answer, or the stream failing repeatedly) it
//    polls GET /operations/{id}, and at the end hands onOutput what it had not seen yet.
// 5. A final `error` event (the key was revoked or expired while the stream was open; the
//    command goes on) ends it: no resume and no polling with that key; it rejects with a
//    ReocloApiError of the event's code and detail.
import {
  CONTENT_TYPE_EVENT_STREAM,
  CONTENT_TYPE_JSON,
  execResponseSchema,
  HEADERS,
  isTerminalStatus,
  OUTPUT_TAIL_BYTES,
  operationPath,
  operationSchema,
  OUTPUT_STREAMS,
  ROUTES,
  type ExecFinishedResponse,
  type ExecRequestInput,
  type ExecResponse,
  type OperationResult,
  type OutputStream,
  type TerminalStatus,
} from "@reoclo/protocol";
import { ReocloApiError } from "./errors.js";
import { isEventStream, isRetryable, readJson, send, sendJson, type HttpSettings } from "./http.js";
import { abortError, backoffDelay, sleep } from "./retry.js";
import { consume, type StreamEvent } from "./stream.js";

/**
 * Stream failures in a row without new output after which polling takes over: the stream
 * path is then not working. A drop after progress starts the count again, so a proxy that
 * cuts long connections now and then does not cost the live output of a long command.
 */
export const MAX_STREAM_FAILURES = 5;

export interface ExecOptions {
  idempotencyKey: string;
  onOutput?: ((e: { stream: OutputStream; data: string }) => void) | undefined;
  onOperation?: ((operationId: string) => void) | undefined;
  signal: AbortSignal;
}

export async function runExec(
  http: HttpSettings,
  req: ExecRequestInput,
  opts: ExecOptions,
): Promise<ExecFinishedResponse> {
  const { signal } = opts;
  let announced: string | undefined;
  const announce = (id: string) => {
    if (announced !== undefined) return;
    announced = id;
    opts.onOperation?.(id);
  };
  // Characters handed to onOutput per stream, to complete the output from a polled result.
  const delivered: Record<OutputStream, number> = { stdout: 0, stderr: 0 };
  const emit = (stream: OutputStream, data: string) => {
    delivered[stream] += data.length;
    if (data !== "") opts.onOutput?.({ stream, data });
  };

  let lastEventId = "";
  let lastSeq = -1;
  let finalStatus: TerminalStatus | undefined;
  const onEvent = (e: StreamEvent) => {
    if (e.event === "output") {
      // Ids are the server's output sequence: never hand the same chunk over twice.
      const seq = /^\d+$/.test(e.id) ? Number(e.id) : undefined;
      if (seq !== undefined && seq <= lastSeq) return;
      if (seq !== undefined) lastSeq = seq;
      emit(e.data.stream, e.data.data);
    } else if (isTerminalStatus(e.data.status)) {
      finalStatus = e.data.status;
    }
    if (e.id !== "") lastEventId = e.id;
  };
  const openEvents = (id: string) =>
    send(http, {
      method: "GET",
      path: operationPath(id, "/events"),
      headers: {
        [HEADERS.accept]: CONTENT_TYPE_EVENT_STREAM,
        ...(lastEventId ? { [HEADERS.lastEventId]: lastEventId } : {}),
      },
      signal,
    });

  const post = (stream: boolean) =>
    send(http, {
      method: "POST",
      path: ROUTES.exec,
      body: req,
      headers: {
        [HEADERS.idempotencyKey]: opts.idempotencyKey,
        [HEADERS.accept]: stream ? CONTENT_TYPE_EVENT_STREAM : CONTENT_TYPE_JSON,
      },
      signal,
    });

  const poll = async (id: string): Promise<ExecFinishedResponse> => {
    for (;;) {
      const op = await sendJson(http, { method: "GET", path: operationPath(id), signal }, operationSchema);
      if (op.status !== "running" && op.result) {
        if (lastSeq >= 0 && (await catchUpFinished(id))) return finish(id, op.status, op.result, false);
        return finish(id, op.status, op.result, true);
      }
      await sleep(http.pollIntervalMs, signal);
    }
  };

  /**
   * After streaming broke off, the stored events of the finished operation give exactly what
   * onOutput missed (the polled tail cannot say where it starts). One try; false if it fails.
   */
  const catchUpFinished = async (id: string): Promise<boolean> => {
    try {
      const res = await openEvents(id);
      if (!isEventStream(res)) {
        await res.body?.cancel().catch(() => undefined);
        return false;
      }
      return (await consume(res, signal, onEvent, http.streamIdleMs)).kind === "end";
    } catch {
      if (signal.aborted) throw abortError(signal);
      return false;
    }
  };

  const finish = (id: string, status: TerminalStatus, result: OperationResult, complete: boolean) => {
    // The polled result holds the last 64 KiB of each stream: hand over the part onOutput has
    // not seen. A tail shorter than that is the whole stream, so the unseen part is exact;
    // a full one may start anywhere, so it is handed over whole after a note (some lines may
    // repeat) rather than risk losing the end.
    for (const stream of OUTPUT_STREAMS) {
      const text = result[stream];
      const seen = delivered[stream];
      if (!complete || text === "") continue;
      const whole = !result[`${stream}_truncated`] && Buffer.byteLength(text) < OUTPUT_TAIL_BYTES;
      if (seen === 0) emit(stream, text);
      else if (whole) emit(stream, text.slice(seen));
      else {
        http.log(
          `exec ${id}: live ${stream} was interrupted; its last ${OUTPUT_TAIL_BYTES / 1024} KiB follow`,
        );
        emit(stream, text);
      }
    }
    return { operation_id: id, status, ...result } satisfies ExecFinishedResponse;
  };

  const first = await post(true);
  if (!isEventStream(first)) {
    const answer: ExecResponse = await readJson(first, execResponseSchema);
    announce(answer.operation_id);
    if (answer.status === "running") return poll(answer.operation_id);
    const { operation_id, status, ...result } = answer;
    return finish(operation_id, status, result, true);
  }

  const headerId = first.headers.get(HEADERS.operationId);
  const replay: Promise<{ operation_id: string; status: ExecResponse["status"] }> = headerId
    ? Promise.resolve({ operation_id: headerId, status: "running" })
    : post(false).then((res) => readJson(res, execResponseSchema));
  void replay.then((answer) => announce(answer.operation_id)).catch(() => undefined); // awaited below

  let res = first;
  let failures = 0;
  for (;;) {
    const seqBefore = lastSeq;
    const outcome = await consume(res, signal, onEvent, http.streamIdleMs);
    if (outcome.kind === "end") {
      const answer = await replay;
      const status = finalStatus ?? (answer.status === "running" ? undefined : answer.status);
      if (status === undefined) return poll(answer.operation_id);
      return finish(answer.operation_id, status, outcome.result, false);
    }
    if (outcome.kind === "error") throw outcome.error;
    failures = lastSeq > seqBefore ? 1 : failures + 1;
    const { operation_id: id } = await replay;
    if (failures >= MAX_STREAM_FAILURES) {
      http.log(`exec ${id}: event stream failed ${failures} times (${outcome.why}); polling instead`);
      return poll(id);
    }
    const delay = backoffDelay(failures - 1, http.baseDelayMs, http.maxDelayMs);
    http.log(`exec ${id}: event stream dropped (${outcome.why}); resuming after event ${lastEventId || "0"}`);
    await sleep(delay, signal);
    try {
      res = await openEvents(id);
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      // No events route (an older service) or retries used up: polling still finds the result.
      const why = err instanceof ReocloApiError && !isRetryable(err) ? err.code : String(err);
      http.log(`exec ${id}: cannot resume the event stream (${why}); polling instead`);
      return poll(id);
    }
    if (!isEventStream(res)) {
      await res.body?.cancel().catch(() => undefined);
      http.log(
        `exec ${id}: the events route answered ${res.headers.get(HEADERS.contentType)}; polling instead`,
      );
      return poll(id);
    }
  }
}
