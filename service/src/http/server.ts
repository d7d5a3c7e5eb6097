import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { createAdaptorServer } from "@hono/node-server";
import { CONTENT_TYPE_JSON, HEADERS } from "@reoclo/protocol";

export interface HttpServerOptions {
  /** Time a client has to send the request headers. */
  headersTimeoutMs?: number;
  /** Time a client has to send the whole request (headers and body); responses may stream longer. */
  requestTimeoutMs?: number;
  /** How often Node checks the two timeouts above. */
  checkIntervalMs?: number;
}

type Fetch = Parameters<typeof createAdaptorServer>[0]["fetch"];

// Requests Node's parser refuses never reach the app; they still get the one error envelope.
const CLIENT_ERRORS: Record<string, [number, string, string, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, "Request Timeout", "request_timeout", "The request was not sent in time."],
  HPE_HEADER_OVERFLOW: [
    431,
    "Request Header Fields Too Large",
    "bad_request",
    "The request headers are too large.",
  ],
  HPE_INVALID_TRANSFER_ENCODING: [
    400,
    "Bad Request",
    "bad_request",
    "The request has both Content-Length and Transfer-Encoding, or an invalid Transfer-Encoding; send only one (RFC 9112 §6.3).",
  ],
};
const DEFAULT_CLIENT_ERROR: [number, string, string, string] = [
  400,
  "Bad Request",
  "bad_request",
  "The request is not valid HTTP/1.1.",
];

function answerClientError(err: NodeJS.ErrnoException, socket: Duplex) {
  if (err.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, code, detail] = CLIENT_ERRORS[err.code ?? ""] ?? DEFAULT_CLIENT_ERROR;
  const body = JSON.stringify({ error: code, detail, request_id: randomUUID() });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n${HEADERS.contentType}: ${CONTENT_TYPE_JSON}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The service's HTTP server: slow clients get bounded time to send their request (slowloris). */
export function createHttpServer(fetch: Fetch, opts: HttpServerOptions = {}): Server {
  const server = createAdaptorServer({
    fetch,
    serverOptions: {
      headersTimeout: opts.headersTimeoutMs ?? 10_000,
      requestTimeout: opts.requestTimeoutMs ?? 30_000,
      connectionsCheckingInterval: opts.checkIntervalMs ?? 1_000,
    },
  }) as Server;
  server.on("clientError", answerClientError);
  return server;
}

/**
 * Connections the kernel may hold for the service before it accepts them. Node's default (511)
 * overflows when CI fans out a thousand requests at once (the bench does): the kernel then drops
 * handshakes and the clients' retransmissions arrive seconds later. Linux caps it at somaxconn.
 */
const LISTEN_BACKLOG = 4096;

/**
 * Listens on `host:port` with the service's backlog and resolves with the bound port (`port` 0:
 * any free one); rejects on EADDRINUSE and the like.
 */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
