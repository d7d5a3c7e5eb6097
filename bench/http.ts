import http from "node:http";
import { StringDecoder } from "node:string_decoder";
import { setTimeout as delay } from "node:timers/promises";
import { API_BASE_PATH, HEADERS } from "@reoclo/protocol";
import type { Service } from "./testbed";

// The HTTP side of the exec scenarios: the calls a CI client makes to the service (JSON answers
// with polling, and SSE), written with node:http so the client costs little next to what it measures.

export interface Json {
  status: number;
  body: Record<string, unknown>;
}

export const agent = () => new http.Agent({ keepAlive: true });

/** One HTTP request on a keep-alive agent; resolves once the whole JSON answer is read. */
export function call(
  svc: Service,
  ag: http.Agent,
  method: "GET" | "POST",
  route: string,
  body?: unknown,
): Promise<Json> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<Json>((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: svc.port,
        method,
        path: `${API_BASE_PATH}${route}`,
        agent: ag,
        headers: {
          authorization: `Bearer ${svc.key}`,
          accept: "application/json",
          ...(payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
          } catch {
            reject(new Error(`${method} ${route}: ${res.statusCode} with a body that is not JSON: ${text}`));
          }
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

export interface Final {
  operationId: string;
  status: unknown;
  exit_code?: unknown;
  stdout?: unknown;
  stderr?: unknown;
  duration_ms?: unknown;
  /** True when the POST answered `running` (the sync window ran out) and GET had to be polled. */
  polled: boolean;
}

/** POST /exec, then, if the answer is still `running`, poll GET /operations/{id} until final. */
export async function execToFinal(
  svc: Service,
  ag: http.Agent,
  serverId: string,
  command: string,
  timeoutSeconds = 60,
): Promise<Final> {
  const res = await call(svc, ag, "POST", "/exec", {
    server_id: serverId,
    command,
    timeout_seconds: timeoutSeconds,
  });
  if (res.status !== 200) throw new Error(`POST /exec answered ${res.status} ${JSON.stringify(res.body)}`);
  const operationId = String(res.body.operation_id);
  if (res.body.status !== "running")
    return { ...res.body, operationId, status: res.body.status, polled: false };
  const deadline = Date.now() + 120_000;
  for (;;) {
    await delay(100);
    const got = await call(svc, ag, "GET", `/operations/${operationId}`);
    if (got.body.status !== "running") {
      const result = got.body.result as Record<string, unknown> | undefined;
      return { ...result, operationId, status: got.body.status, polled: true };
    }
    if (Date.now() > deadline) throw new Error(`operation ${operationId} still running after 2 minutes`);
  }
}

export interface SseEnd {
  /** `completed`, `failed`, `timeout`, `cancelled`, `lost`… */
  outcome?: string;
  reason?: string | null;
  exit_code?: number;
  stdout?: string;
  stderr?: string;
}

export interface SseResult {
  /** The operation's id, from the answer's header. */
  operationId: string | undefined;
  /** Bytes of the decoded `output` data, per stream. */
  stdout: number;
  stderr: number;
  end: SseEnd;
}

/**
 * The stream closed before its `end` event: the service cuts off a client that falls 16 MiB behind
 * (it would resume with Last-Event-ID), or the connection broke.
 */
export class SseCutOff extends Error {
  constructor(
    readonly operationId: string | undefined,
    readonly bytes: number,
    cause?: unknown,
  ) {
    super(`SSE stream of ${operationId} closed without "end" after ${bytes} bytes`, { cause });
  }
}

/**
 * POSTs /exec with `Accept: text/event-stream` and parses the events as they arrive, calling
 * `onOutput` with each decoded `output` event; resolves at `end` with the byte counts.
 */
export function sseExec(
  svc: Service,
  serverId: string,
  command: string,
  onOutput?: (stream: "stdout" | "stderr", data: string) => void,
): Promise<SseResult> {
  const payload = JSON.stringify({ server_id: serverId, command, timeout_seconds: 600 });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: svc.port,
        method: "POST",
        path: `${API_BASE_PATH}/exec`,
        agent: false,
        headers: {
          authorization: `Bearer ${svc.key}`,
          accept: "text/event-stream",
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
        },
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`SSE /exec answered ${res.statusCode}`));
        }
        const operationId = res.headers[HEADERS.operationId.toLowerCase()] as string | undefined;
        const decoder = new StringDecoder("utf8");
        let buf = "";
        const bytes = { stdout: 0, stderr: 0 };
        let end: SseEnd | undefined;
        const parse = (text: string) => {
          buf += text;
          let from = 0;
          for (let idx = buf.indexOf("\n\n"); idx !== -1; idx = buf.indexOf("\n\n", from)) {
            const block = buf.slice(from, idx);
            from = idx + 2;
            let event = "message";
            let data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) event = line.slice(7);
              else if (line.startsWith("data: ")) data = line.slice(6);
            }
            if (event === "output") {
              const out = JSON.parse(data) as { stream: "stdout" | "stderr"; data: string };
              bytes[out.stream] += Buffer.byteLength(out.data, "utf8");
              onOutput?.(out.stream, out.data);
            } else if (event === "end") {
              end = JSON.parse(data) as SseEnd;
              res.destroy();
              return resolve({ operationId, ...bytes, end });
            }
          }
          buf = buf.slice(from);
        };
        res.on("data", (chunk: Buffer) => parse(decoder.write(chunk)));
        res.on("error", (err) => reject(new SseCutOff(operationId, bytes.stdout, err)));
        res.on("close", () => end === undefined && reject(new SseCutOff(operationId, bytes.stdout)));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** Polls GET /operations/{id} until the operation is no longer running. */
export async function waitForOperation(svc: Service, operationId: string): Promise<void> {
  const ag = agent();
  try {
    for (let i = 0; i < 600; i++) {
      const got = await call(svc, ag, "GET", `/operations/${operationId}`);
      if (got.body.status !== "running") return;
      await delay(200);
    }
    throw new Error(`operation ${operationId} still running after 2 minutes`);
  } finally {
    ag.destroy();
  }
}

export interface ServerStats {
  rssMiB: number;
  maxRssMiB: number;
  /** CPU time of the service process so far, user + system, in seconds. */
  cpuSeconds: number;
  pool: { connections: number; channels: number; waiting: number };
  /** The longest the service's event loop was blocked since the previous stats read, in ms. */
  eventLoopMaxMs: number;
}

/** The service process's own figures, from its stats port (not part of what is measured). */
export async function serverStats(svc: Service): Promise<ServerStats> {
  const res = await fetch(`http://127.0.0.1:${svc.statsPort}/`);
  return (await res.json()) as ServerStats;
}
