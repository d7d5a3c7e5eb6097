// A fake of the automation API for the client's behaviour tests. It is a fake on purpose:
// the faults under test (a 503 or a dropped connection at an exact request, a stream cut
// in the middle of an event, an answer lost after the operation was created) cannot be
// produced on demand by the real service. It follows the real wire format (sse.ts and
// operations.ts of the service): events `status` (id = cursor), `output` (id = sequence),
// `end` (the result); Idempotency-Key replays; the error envelope.
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export const API_KEY = "rca_testkeytestkeytestkeytestkey123456";
const BASE = "/api/automation/v1";

export type Chunk = { stream: "stdout" | "stderr"; data: string };
/** A scripted answer to one POST /exec before the fake behaves normally. */
export type Fault =
  { status: number; retryAfter?: string; body?: string; contentType?: string } | { lostAnswer: true };

export interface FakeOptions {
  outputs: Chunk[];
  faults?: Fault[];
  /** Cut the first event stream after this many output events (and half of the next one). */
  dropAfter?: number;
  /** Cut every resumed event stream before its first new output event (after half of it). */
  dropResumed?: boolean;
  /** Cut only this many resumed event streams that way. */
  dropResumes?: number;
  /** Answer POST /exec with JSON whatever the Accept header (a service without streaming). */
  noStreaming?: boolean;
  /** Polls answered `running` before the operation is done. */
  pollsBeforeDone?: number;
  /** Keep the stream open after the outputs instead of ending it. */
  holdOpen?: boolean;
  /** Answer without the X-Operation-Id header, as a service from before it did. */
  noOperationIdHeader?: boolean;
  /**
   * The key is revoked after this many output events of the first stream: the stream ends with
   * an `error` event (`key_revoked`), and every later request is refused 401, as by the service.
   */
  revokeAfter?: number;
}

export const REVOKED_DETAIL =
  "The automation key was revoked: the operation goes on (poll it with another key or see it in the audit log), but this event stream ends here.";

export interface Seen {
  method: string;
  path: string;
  idempotencyKey?: string;
  accept?: string;
  lastEventId?: string;
  userAgent?: string;
}

export async function startFake(opts: FakeOptions) {
  const faults = [...(opts.faults ?? [])];
  const seen: Seen[] = [];
  const ops = new Map<string, { id: string; polls: number }>();
  let commandsRun = 0;
  let streams = 0;
  let revoked = false;
  const stdout = opts.outputs.filter((o) => o.stream === "stdout").map((o) => o.data);
  const stderr = opts.outputs.filter((o) => o.stream === "stderr").map((o) => o.data);
  const result = {
    exit_code: 3,
    stdout: stdout.join(""),
    stderr: stderr.join(""),
    duration_ms: 12,
    stdout_truncated: false,
    stderr_truncated: false,
  };

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "Content-Type": "application/json", "X-Request-Id": "req-1", ...headers });
    res.end(JSON.stringify(body));
  };

  const stream = (res: ServerResponse, after: number, id: string) => {
    const resume = streams++;
    const dropResumed = opts.dropResumed || resume <= (opts.dropResumes ?? 0);
    const dropAt = resume === 0 ? opts.dropAfter : dropResumed ? after : undefined;
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      ...(opts.noOperationIdHeader ? {} : { "X-Operation-Id": id }),
    });
    let text = `event: status\nid: ${after}\ndata: {"status":"running"}\n\n`;
    for (let seq = after + 1; seq <= opts.outputs.length; seq++) {
      if (resume === 0 && seq === (opts.revokeAfter ?? -1) + 1) {
        revoked = true;
        const error = { error: "key_revoked", detail: REVOKED_DETAIL, request_id: "req-stream" };
        return void res.end(`${text}event: error\nid: ${seq - 1}\ndata: ${JSON.stringify(error)}\n\n`);
      }
      const event = `event: output\nid: ${seq}\ndata: ${JSON.stringify(opts.outputs[seq - 1])}\n\n`;
      if (dropAt !== undefined && seq === dropAt + 1) {
        // Flushed first, then the socket is destroyed: the client sees half an event and a reset.
        res.write(text + event.slice(0, event.length >> 1), () => res.socket?.destroy());
        return;
      }
      text += event;
    }
    if (opts.holdOpen) return void res.write(text);
    const last = opts.outputs.length;
    text += `event: status\nid: ${last}\ndata: {"status":"completed"}\n\n`;
    res.end(`${text}event: end\nid: ${last + 1}\ndata: ${JSON.stringify(result)}\n\n`);
  };

  const operation = (id: string, done: boolean) => ({
    operation_id: id,
    operation_type: "exec",
    server_id: "6f1c2d3e-0000-4000-8000-000000000001",
    server_name: "web-1",
    status: done ? "completed" : "running",
    ...(done ? { result } : {}),
    run_id: null,
    run_context: null,
    started_at: "2025-01-31T12:00:00.000Z",
    completed_at: done ? "2025-01-31T12:00:01.000Z" : null,
  });

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "").replace(BASE, "");
    const h = (name: string) => req.headers[name] as string | undefined;
    seen.push({
      method: req.method ?? "",
      path,
      idempotencyKey: h("idempotency-key"),
      accept: h("accept"),
      lastEventId: h("last-event-id"),
      userAgent: h("user-agent"),
    });
    if (revoked || h("authorization") !== `Bearer ${API_KEY}`) {
      return json(res, 401, { error: "unauthorized", detail: "Missing or invalid key.", request_id: "r" });
    }
    const byId = /^\/operations\/([^/]+)(\/events)?$/.exec(path);
    if (req.method === "POST" && path === "/exec") {
      const key = h("idempotency-key") ?? randomUUID();
      const fault = faults.shift();
      const create = () => {
        if (!ops.has(key)) {
          ops.set(key, { id: randomUUID(), polls: 0 });
          commandsRun++;
        }
        return ops.get(key)!;
      };
      if (fault && "lostAnswer" in fault) {
        create();
        return void req.socket.destroy(); // created, but the answer never arrives
      }
      if (fault) {
        const headers: Record<string, string> = { "Content-Type": fault.contentType ?? "application/json" };
        if (fault.retryAfter !== undefined) headers["Retry-After"] = fault.retryAfter;
        res.writeHead(fault.status, headers);
        return void res.end(fault.body ?? "");
      }
      const replay = ops.has(key);
      const op = create();
      if (replay) res.setHeader("Idempotent-Replayed", "true");
      if (!opts.noStreaming && (h("accept") ?? "").includes("text/event-stream"))
        return stream(res, 0, op.id);
      // Like the service, a JSON answer of a finished operation carries its result.
      const done = !opts.noStreaming;
      return json(
        res,
        200,
        done
          ? { operation_id: op.id, status: "completed", ...result }
          : { operation_id: op.id, status: "running" },
      );
    }
    const op = byId ? [...ops.values()].find((o) => o.id === byId[1]) : undefined;
    if (!op) return json(res, 404, { error: "not_found", detail: "Operation not found", request_id: "r" });
    if (req.method === "GET" && byId?.[2]) return stream(res, Number(h("last-event-id") ?? 0), op.id);
    if (req.method === "GET")
      return json(res, 200, operation(op.id, ++op.polls > (opts.pollsBeforeDone ?? 0)));
    return json(res, 404, { error: "not_found", detail: "No such route.", request_id: "r" });
  };

  const server = createServer((req, res) => {
    req.resume(); // the bodies are not needed; drain them
    req.on("end", () => handle(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    expectedResult: result,
    get commandsRun() {
      return commandsRun;
    },
    posts: () => seen.filter((s) => s.method === "POST" && s.path === "/exec"),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
