// The network faults the reattach tests inject, against a real test host: the TCP proxy's cut,
// partition and heal, and killSessions(), a session dying with its commands left running.
import { randomInt } from "node:crypto";
import ssh2 from "ssh2";
import type { Client } from "ssh2";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { pgrep, signal } from "../src/process-tree";
import { startTestHost, type TestHost } from "../src/sshd";
import { startTcpProxy, type TcpProxy } from "../src/tcp-proxy";

/** Logs in to `host` through `port` (the host's own, or a proxy's); rejects if the connection ends first. */
function connect(host: TestHost, port: number): Promise<Client> {
  return new Promise<Client>((resolve, reject) => {
    const client = new ssh2.Client();
    client.on("error", reject); // after "ready" a reject is a no-op: errors then show as "close"
    client.once("close", () => reject(new Error("the connection closed before it was ready")));
    client.once("ready", () => resolve(client));
    client.connect({
      host: "127.0.0.1",
      port,
      username: host.username,
      privateKey: host.privateKey,
      readyTimeout: 10_000,
    });
  });
}

/** Resolves when the client's connection has closed, whatever closed it. */
const closed = (client: Client): Promise<void> => new Promise((resolve) => client.once("close", resolve));

/** Runs `command` and calls `onOutput` with everything it has printed so far, on each chunk. */
function exec(client: Client, command: string, onOutput: (stdout: string) => void = () => undefined) {
  return new Promise<string>((resolve, reject) => {
    client.exec(command, (err, stream) => {
      if (err) return reject(err);
      let stdout = "";
      stream.on("data", (chunk: Buffer) => onOutput((stdout += chunk.toString())));
      stream.stderr.resume();
      stream.once("close", () => resolve(stdout));
    });
  });
}

describe("tcp proxy", () => {
  let host: TestHost;
  let proxy: TcpProxy;
  const clients: Client[] = [];
  const connectThroughProxy = async (): Promise<Client> => {
    const client = await connect(host, proxy.port);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    host = await startTestHost();
  });
  afterAll(async () => {
    await host?.close();
  });
  beforeEach(async () => {
    proxy = await startTcpProxy(host.host, host.port);
  });
  afterEach(async () => {
    clients.splice(0).forEach((c) => c.end());
    await proxy?.close();
  });

  it("passes connections through; cut() ends every open one at once, and new ones still pass", async () => {
    const first = await connectThroughProxy();
    expect(await exec(first, "echo through-the-proxy")).toBe("through-the-proxy\n");
    const second = await connectThroughProxy();
    expect(proxy.connections).toBe(2);
    expect(proxy.accepted).toBe(2);

    const bothClosed = Promise.all([closed(first), closed(second)]);
    proxy.cut();
    expect(proxy.connections).toBe(0);
    await bothClosed;

    const third = await connectThroughProxy();
    expect(await exec(third, "echo after-the-cut")).toBe("after-the-cut\n");
    expect(proxy.connections).toBe(1);
    expect(proxy.accepted).toBe(3);
  });

  it("partition() cuts and refuses every new connection until heal()", async () => {
    const before = await connectThroughProxy();
    const beforeClosed = closed(before);
    proxy.partition();
    await beforeClosed;

    await expect(connect(host, proxy.port)).rejects.toThrow();
    await expect(connect(host, proxy.port)).rejects.toThrow();
    expect(proxy.accepted).toBe(3); // accepted and dropped at once, never forwarded
    expect(proxy.connections).toBe(0);

    proxy.heal();
    const after = await connectThroughProxy();
    expect(await exec(after, "echo healed")).toBe("healed\n");
    expect(proxy.connections).toBe(1);
  });

  it("a target that refuses the connection ends the client's side too", async () => {
    await host.stop();
    try {
      await expect(connect(host, proxy.port)).rejects.toThrow();
      expect(proxy.connections).toBe(0);
    } finally {
      await host.start();
    }
  });
});

describe("killSessions", () => {
  let host: TestHost;
  beforeAll(async () => {
    host = await startTestHost();
  });
  afterAll(async () => {
    await host?.close();
  });

  it("ends the connection as a network drop would, and leaves its command running", async () => {
    // A duration of this test's own, so pgrep finds no other test's sleep.
    const sleep = `sleep ${randomInt(300_000, 400_000)}`;
    const client = await connect(host, host.port);
    const connectionClosed = closed(client);
    let printed!: (pid: number) => void;
    const pidPrinted = new Promise<number>((resolve) => (printed = resolve));
    const finished = exec(client, `${sleep} & echo $!; wait`, (out) => {
      if (out.endsWith("\n")) printed(Number(out.trim()));
    });
    const pid = await pidPrinted;
    try {
      expect(pgrep(`^${sleep}$`)).toBe(String(pid));

      expect(host.killSessions()).toBeGreaterThanOrEqual(1);
      await connectionClosed;
      await finished; // the channel closes with its connection

      expect(() => process.kill(pid, 0)).not.toThrow(); // kill -0: the sleep is still there…
      expect(pgrep(`^${sleep}$`)).toBe(String(pid)); // …and running (pgrep -f skips zombies)

      const again = await connect(host, host.port); // the listener lives on
      try {
        expect(await exec(again, "echo still-listening")).toBe("still-listening\n");
      } finally {
        again.end();
      }
    } finally {
      signal(pid, "SIGKILL");
    }
    await expect.poll(() => pgrep(`^${sleep}$`), { timeout: 10_000 }).toBe("");
  });
});
