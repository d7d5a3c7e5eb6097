import { StringDecoder } from "node:string_decoder";
import type { ErrorEnvelope, OutputStream } from "@reoclo/protocol";
import type { OutputEvent } from "./output";
import type { OperationServices } from "./start";
import { getOperation, readOutput, type OperationRow } from "./store";
import { resultOf, statusEventOf } from "./view";

// Server-Sent Events of one operation (spec §6): `status`, `output` (id = event sequence) and a
// final `end`, or a final `error` when the stream is ended early (its key was revoked) while the
// operation goes on. A client resuming with Last-Event-ID gets exactly what it missed, from any
// instance: stored events come from the database; live ones from the runner when it is local.
// Small writes are batched so a chatty command cannot flood the event loop.

const BATCH_MS = 20;
const BATCH_BYTES = 64 * 1024;
const POLL_MS = 200;
const PAGE = 500;
/** A client this far behind is cut off (it resumes with Last-Event-ID), so it cannot grow our memory. */
const MAX_UNREAD_BYTES = 16 * 1024 * 1024;
/** A comment this often keeps proxies from closing a quiet stream and lets clients tell a dead one (WHATWG SSE §9.2.7). */
export const KEEPALIVE_MS = 15_000;

export interface EventStreamOptions {
  keepaliveMs?: number;
  /**
   * Lets the stream be ended early: called once with `end`, which sends a final `error` event
   * (the error envelope) and closes the stream; returns what stops listening.
   */
  endEarly?: (end: (error: ErrorEnvelope) => void) => () => void;
}

export function operationEventStream(
  svc: OperationServices,
  op: Pick<OperationRow, "id">,
  afterSeq: number,
  opts: EventStreamOptions = {},
) {
  const { db } = svc.ctx;
  const runner = svc.runner;
  const encoder = new TextEncoder();
  let closed = false;
  let cleanup: (() => void) | undefined;
  let stopEndEarly: (() => void) | undefined;
  let keepalive: NodeJS.Timeout | undefined;
  /** Whatever way the stream ends, it stops its timers and subscriptions here. */
  const detach = () => {
    closed = true;
    clearInterval(keepalive);
    cleanup?.();
    stopEndEarly?.();
  };
  return new ReadableStream<Uint8Array>(
    {
      async start(controller) {
        let buffer = "";
        let timer: NodeJS.Timeout | undefined;
        let cursor = afterSeq;
        const decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
        const flush = () => {
          clearTimeout(timer);
          timer = undefined;
          if (buffer && !closed) controller.enqueue(encoder.encode(buffer));
          buffer = "";
          if (!closed && (controller.desiredSize ?? 0) < -MAX_UNREAD_BYTES) {
            detach();
            controller.error(new Error("the client reads too slowly; reconnect with Last-Event-ID"));
          }
        };
        const send = (event: string, id: number, data: unknown) => {
          if (closed) return;
          buffer += `event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`;
          if (buffer.length >= BATCH_BYTES) flush();
          else timer ??= setTimeout(flush, BATCH_MS);
        };
        const output = (e: { seq: number; stream: OutputStream; data: Buffer }) => {
          if (e.seq <= cursor) return;
          cursor = e.seq;
          send("output", e.seq, { stream: e.stream, data: decoders[e.stream].write(e.data) });
        };
        keepalive = setInterval(() => {
          buffer += ": keep-alive\n\n";
          flush();
        }, opts.keepaliveMs ?? KEEPALIVE_MS);
        keepalive.unref();
        const catchUp = async (upTo = Number.MAX_SAFE_INTEGER) => {
          for (;;) {
            const page = await readOutput(db, op.id, cursor, PAGE);
            for (const e of page) if (e.seq <= upTo) output(e);
            if (page.length < PAGE || closed) return;
          }
        };
        const end = (row: OperationRow) => {
          if (closed) return;
          send("status", cursor, statusEventOf(row));
          send("end", Math.max(cursor, row.lastSeq) + 1, resultOf(row));
          flush();
          detach();
          controller.close();
        };
        // The error's id is the last output sent, so a resume (with another key) misses nothing.
        stopEndEarly = opts.endEarly?.((error) => {
          if (closed) return;
          send("error", cursor, error);
          flush();
          detach();
          controller.close();
        });
        try {
          send("status", cursor, { status: "running", outcome: "running" });
          const queued: OutputEvent[] = [];
          let forward: ((e: OutputEvent) => void) | undefined;
          const live = runner.subscribe(op.id, (e) => (forward ? forward(e) : queued.push(e)));
          if (live) {
            // Wakes once the runner settled it (after the row is final in the database) or when the client goes.
            let wake!: () => void;
            const finished = new Promise<void>((resolve) => (wake = resolve));
            const stopFinal = runner.onSettled(op.id, () => wake());
            cleanup = () => {
              live.unsubscribe();
              stopFinal();
              wake();
            };
            await live.stored();
            await catchUp(live.lastSeq);
            for (const e of queued) output(e);
            forward = output;
            await finished;
            cleanup();
          }
          // Remote or finished: the database has everything that was stored.
          while (!closed) {
            await catchUp();
            const row = await getOperation(db, op.id);
            if (!row) throw new Error("the operation no longer exists"); // its server was removed
            if (row.status !== "running") {
              await catchUp();
              end(row);
              return;
            }
            await new Promise((r) => setTimeout(r, POLL_MS));
          }
        } catch {
          const failed = !closed;
          detach();
          if (failed) controller.error(new Error("event stream failed"));
        }
      },
      cancel() {
        detach();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: BATCH_BYTES }),
  );
}
