// An HTTP proxy in front of the real service that injects the faults a real network has and
// a real service cannot produce on demand: a 503 answer, an answer lost after the request
// arrived, an event stream cut in the middle of a run. Everything else passes through as is.
// It is fault injection on purpose; the service behind it is the real one.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Fault =
  /** Answer this POST /exec with 503 and Retry-After, without forwarding it. */
  | { kind: "unavailable" }
  /** Forward this POST /exec, then drop the connection before any answer reaches the client. */
  | { kind: "lost_answer" }
  /** Forward this POST /exec and pass its event stream through until `after` matches, then cut it. */
  | { kind: "cut_stream"; after: RegExp };

export interface FaultProxy {
  readonly port: number;
  readonly url: string;
  /** Requests seen, as "METHOD path". */
  readonly seen: string[];
  /** Resolves when a stream was cut. */
  readonly cut: Promise<void>;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string, faults: Fault[], port = 0): Promise<FaultProxy> {
  const upstream = new URL(target);
  const queue = [...faults];
  const seen: string[] = [];
  let onCut!: () => void;
  const cut = new Promise<void>((resolve) => (onCut = resolve));

  const forward = (req: IncomingMessage, body: Buffer, onResponse: (res: IncomingMessage) => void) => {
    const out = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      onResponse,
    );
    out.on("error", () => req.socket.destroy());
    out.end(body);
    return out;
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    seen.push(`${req.method} ${req.url}`);
    const fault = req.method === "POST" && req.url?.endsWith("/exec") ? queue.shift() : undefined;
    if (fault?.kind === "unavailable") {
      res.writeHead(503, { "Content-Type": "application/json", "Retry-After": "1" });
      return void res.end('{"error":"service_unavailable","detail":"Restarting.","request_id":"proxy"}');
    }
    const out = forward(req, body, (up) => {
      if (fault?.kind === "lost_answer") {
        // The service has the request (the operation exists); the client never hears back.
        req.socket.destroy();
        up.destroy();
        return;
      }
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (fault?.kind !== "cut_stream") return void up.pipe(res);
      let seenText = "";
      let done = false;
      up.on("data", (chunk: Buffer) => {
        if (done) return;
        seenText += chunk.toString();
        if (!fault.after.test(seenText)) return void res.write(chunk);
        // Delivered first, then the connection breaks: the client has seen up to `after`.
        done = true;
        up.destroy();
        res.write(chunk, () => {
          res.socket?.destroy();
          onCut();
        });
      });
      up.on("end", () => res.end());
    });
    res.on("close", () => out.destroy());
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    port: actual,
    url: `http://127.0.0.1:${actual}`,
    seen,
    cut,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
