// Reading one operation event stream (spec §6): `output`, `status`, then `end`, or a final
// `error` (the envelope) when the service ends the stream early, e.g. because its key was revoked.
import {
  EXIT_CODE_CANCELLED,
  EXIT_CODE_FAILED,
  EXIT_CODE_TIMEOUT,
  endEventSchema,
  isTerminalOutcome,
  outputEventSchema,
  statusEventSchema,
  type OperationResult,
  type TerminalOutcome,
  type OutputEvent,
  type StatusEvent,
} from "@reoclo/protocol";
import { errorFromEvent, type ReocloApiError } from "./errors.js";
import { abortError } from "./retry.js";
import { parseSse } from "./sse.js";

export type StreamEvent =
  { event: "output"; data: OutputEvent; id: string } | { event: "status"; data: StatusEvent; id: string };
export type StreamOutcome =
  | { kind: "end"; result: OperationResult }
  /** The service ended the stream with an `error` event: final, not to be resumed with this key. */
  | { kind: "error"; error: ReocloApiError }
  | { kind: "dropped"; why: string };

/**
 * Reads one event stream until `end` (or a final `error`), handing each known event's JSON to
 * `onEvent`. A broken connection, an early close or an unreadable event is a "dropped" outcome
 * (the caller resumes); an abort rejects; an exception thrown by `onEvent`'s caller code
 * (onOutput) propagates.
 */
export async function consume(
  res: Response,
  signal: AbortSignal,
  onEvent: (e: StreamEvent) => void,
  idleMs: number,
): Promise<StreamOutcome> {
  if (!res.body) return { kind: "dropped", why: "no body" };
  // Typed loosely by the DOM lib; fetch bodies are bytes.
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let result: OperationResult | undefined;
  let ended: TerminalOutcome | undefined;
  let failure: ReocloApiError | undefined;
  let bad: string | undefined;
  const parser = parseSse((msg) => {
    if (result !== undefined || failure !== undefined || bad !== undefined) return;
    if (msg.event === "error") {
      failure = errorFromEvent(res, msg.data);
      return;
    }
    if (msg.event !== "output" && msg.event !== "status" && msg.event !== "end") return;
    let data: unknown;
    try {
      data = JSON.parse(msg.data);
    } catch {
      bad = `unreadable ${msg.event} event ${msg.id}`;
      return;
    }
    if (msg.event === "end") {
      const parsed = endEventSchema.safeParse(data);
      // An older service put the end in the `status` event before `end` only.
      if (parsed.success)
        result = {
          ...parsed.data,
          outcome: parsed.data.outcome ?? ended ?? outcomeOfExitCode(parsed.data.exit_code),
        };
      else bad = `unexpected end event`;
      return;
    }
    if (msg.event === "output") {
      const parsed = outputEventSchema.safeParse(data);
      if (parsed.success) onEvent({ event: "output", data: parsed.data, id: msg.id });
      else bad = `unexpected output event ${msg.id}`;
    } else {
      const parsed = statusEventSchema.safeParse(data);
      if (parsed.success) {
        if (isTerminalOutcome(parsed.data.outcome)) ended = parsed.data.outcome;
        onEvent({ event: "status", data: parsed.data, id: msg.id });
      } else bad = `unexpected status event ${msg.id}`;
    }
  });
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>> | "idle";
      try {
        chunk = await readWithin(reader, idleMs);
      } catch (err) {
        if (signal.aborted) throw abortError(signal);
        return { kind: "dropped", why: err instanceof Error ? err.message : String(err) };
      }
      // The service sends a comment every 15 s; silence this long means a dead connection.
      if (chunk === "idle") return { kind: "dropped", why: `no data for ${Math.round(idleMs / 1000)} s` };
      if (chunk.done) break;
      parser.push(decoder.decode(chunk.value, { stream: true }));
      if (result !== undefined) return { kind: "end", result };
      if (failure !== undefined) return { kind: "error", error: failure };
      if (bad !== undefined) return { kind: "dropped", why: bad };
    }
    parser.push(decoder.decode());
    parser.end();
    if (result !== undefined) return { kind: "end", result };
    if (failure !== undefined) return { kind: "error", error: failure };
    return { kind: "dropped", why: bad ?? "the stream closed before its end event" };
  } finally {
    // Releases the connection when we stop early (end seen, abort, bad event).
    reader.cancel().catch(() => undefined);
  }
}

/** A foreign service's end without any outcome: the exit codes of spec §4 say it. */
function outcomeOfExitCode(exitCode: number): TerminalOutcome {
  if (exitCode === EXIT_CODE_TIMEOUT) return "timeout";
  if (exitCode === EXIT_CODE_CANCELLED) return "cancelled";
  if (exitCode === EXIT_CODE_FAILED) return "failed";
  return "completed";
}

/** One read, or "idle" when nothing arrives within `ms` (the caller then cancels the reader). */
function readWithin<T>(reader: ReadableStreamDefaultReader<T>, ms: number) {
  return new Promise<Awaited<ReturnType<ReadableStreamDefaultReader<T>["read"]>> | "idle">(
    (resolve, reject) => {
      const timer = setTimeout(() => resolve("idle"), ms);
      reader.read().then(
        (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    },
  );
}
