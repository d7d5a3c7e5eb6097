// A TCP proxy on loopback in front of a host:port (a test sshd), which breaks the network on
// demand: every open connection cut at once, or the host made unreachable until healed. The
// client connects to the proxy's port; bytes pass through untouched both ways until a fault.
// It is fault injection on purpose; the server behind it is the real one.
import net from "node:net";
import { LOOPBACK } from "./ssh-host";

export interface TcpProxy {
  /** The loopback port to connect to instead of the target's. */
  readonly port: number;
  /** Proxied connections open now (accepted and not yet closed on either side). */
  readonly connections: number;
  /** Connections accepted since the start, refused ones during a partition included. */
  readonly accepted: number;
  /** Destroys every open proxied connection, both sides, now; new connections still pass. */
  cut(): void;
  /**
   * cut(), and from now on refuses new connections: each is accepted and destroyed at once,
   * without connecting to the target, so the host is unreachable until heal().
   */
  partition(): void;
  /** New connections pass to the target again (after partition()). */
  heal(): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (a free port) forwarding every connection to `targetHost:targetPort`. */
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  /** Each open connection and how to destroy both of its sides. */
  const open = new Map<net.Socket, () => void>();
  let refusing = false;
  let accepted = 0;

  const server = net.createServer({ noDelay: true }, (client) => {
    accepted++;
    if (refusing) return void client.destroy();
    const upstream = net.connect({ host: targetHost, port: targetPort, noDelay: true });
    const destroyBoth = (): void => {
      open.delete(client);
      client.destroy();
      upstream.destroy();
    };
    open.set(client, destroyBoth);
    // When either side closes or fails (the target refused, reset, hung up), the other goes too.
    for (const socket of [client, upstream]) {
      socket.on("error", destroyBoth);
      socket.once("close", destroyBoth);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const cut = (): void => [...open.values()].forEach((destroyBoth) => destroyBoth());

  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, LOOPBACK, resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get connections() {
      return open.size;
    },
    get accepted() {
      return accepted;
    },
    cut,
    partition() {
      refusing = true;
      cut();
    },
    heal() {
      refusing = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        refusing = true; // anything accepted while closing is destroyed at once
        server.close(() => resolve());
        cut();
      }),
  };
}
