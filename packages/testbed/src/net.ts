import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import net from "node:net";

// Loopback ports and servers for tests.

/** A loopback port nothing listens on: the kernel hands one out, and it is released at once. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Listens on loopback (port 0: any free one) and resolves with the port. */
export async function listenOnLoopback(server: net.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return (server.address() as net.AddressInfo).port;
}

export interface AnsweringServer {
  readonly server: Server;
  readonly url: string;
  /** `METHOD url` of every request, in arrival order. */
  readonly requests: string[];
}

/** A loopback HTTP server that answers every request, once its body is read, with `answer`. */
export async function answeringServer(
  answer: (req: IncomingMessage, res: ServerResponse) => void,
  port = 0,
): Promise<AnsweringServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    req.on("end", () => answer(req, res));
  });
  const bound = await listenOnLoopback(server, port);
  return { server, url: `http://127.0.0.1:${bound}`, requests };
}
