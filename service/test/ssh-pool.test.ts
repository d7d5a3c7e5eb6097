// What the pool does against a real OpenSSH host: reuse, caps under load, idling out, safe retries and shutdown.
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import type { ClientChannel } from "ssh2";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair } from "@reoclo/testbed/keys";
import { sshImplementation, startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { SshError } from "../src/ssh/connect.js";
import { channelExit, SshPool, type PoolTarget } from "../src/ssh/pool.js";
import { runRemote, type RemoteExecOutcome } from "../src/ssh/remote-exec.js";
import { freePort } from "@reoclo/testbed/net";

let host: TestHost;
const pools: SshPool[] = [];
const servers: net.Server[] = [];
/** Accepted sockets of the listeners above, destroyed after each test so their close() can finish. */
const accepted = new Set<net.Socket>();
const hosts: TestHost[] = [];
const files: string[] = [];
const openssh = sshImplementation() === "openssh";

function targetFor(h: TestHost, overrides: Partial<PoolTarget> = {}): PoolTarget {
  const { host: address, port, username, privateKey, hostKeyFingerprint } = h;
  return {
    serverId: randomUUID(),
    host: address,
    port,
    username,
    privateKey,
    hostKeyFingerprint,
    ...overrides,
  };
}

function newPool(...args: ConstructorParameters<typeof SshPool>): SshPool {
  const pool = new SshPool(...args);
  pools.push(pool);
  return pool;
}

/** Reads a channel to its end, as every user of the pool must (ssh2 emits "close" only after "end"). */
function collect(channel: ClientChannel): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    let stdout = "";
    channel.on("data", (d: Buffer) => (stdout += d.toString()));
    channel.stderr.resume();
    channel.once("close", () => resolve({ code: channelExit(channel)?.code ?? null, stdout }));
  });
}

async function run(pool: SshPool, target: PoolTarget, command: string) {
  return collect(await pool.exec(target, command));
}

/**
 * A TCP listener on loopback that counts connections: "forward" relays to a real host, "hang-up"
 * closes at once, "tarpit" holds the connection and never sends a byte (a host that does not answer).
 */
async function countingListener(
  mode: "forward" | "hang-up" | "tarpit",
  to: TestHost = host,
): Promise<{ port: number; count: () => number }> {
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    if (mode === "hang-up") return socket.destroy();
    accepted.add(socket);
    socket.once("close", () => accepted.delete(socket));
    socket.on("error", () => undefined);
    if (mode === "tarpit") return;
    const upstream = net.connect(to.port, to.host);
    socket.pipe(upstream).pipe(socket);
    socket.on("error", () => upstream.destroy());
    upstream.on("error", () => socket.destroy());
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as net.AddressInfo).port, count: () => count };
}

async function sshErrorOf(promise: Promise<unknown>): Promise<SshError> {
  const err: unknown = await promise.then(
    () => new Error("expected exec to fail"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SshError);
  return err as SshError;
}

beforeAll(async () => {
  host = await startTestHost();
});

/** Runs one command through the wrapper, as the operation runner does, and returns its one outcome. */
function runThroughWrapper(pool: SshPool, target: PoolTarget, command: string): Promise<RemoteExecOutcome> {
  const req = { command, env: {}, timeoutSeconds: 30, operationId: randomUUID() };
  return runRemote(pool, target, req, { onStdout: () => undefined, onStderr: () => undefined }).done;
}

function tempFile(): string {
  const file = `/tmp/reoclo-test-pool-${randomUUID()}`;
  files.push(file);
  return file;
}

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
  accepted.forEach((s) => s.destroy());
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  files.splice(0).forEach((f) => rmSync(f, { force: true }));
});

afterAll(async () => {
  await host?.close();
});

describe("SshPool", () => {
  it("reuses one connection for sequential execs (same client port seen by the host)", async () => {
    const pool = newPool();
    const target = targetFor(host);
    const first = await run(pool, target, 'echo "$SSH_CLIENT"');
    const second = await run(pool, target, 'echo "$SSH_CLIENT"');
    expect(first.code).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    expect(pool.stats()).toEqual({ connections: 1, channels: 0, waiting: 0 });
  });

  it("runs 30 concurrent execs with the default caps on at most 4 connections", async () => {
    const pool = newPool();
    const target = targetFor(host);
    let maxConnections = 0;
    let maxChannels = 0;
    const sampler = setInterval(() => {
      maxConnections = Math.max(maxConnections, pool.stats().connections);
      maxChannels = Math.max(maxChannels, pool.stats().channels);
    }, 5);
    try {
      const results = await Promise.all(Array.from({ length: 30 }, () => run(pool, target, "sleep 0.3")));
      expect(results.map((r) => r.code)).toEqual(Array.from({ length: 30 }, () => 0));
    } finally {
      clearInterval(sampler);
    }
    expect(maxConnections).toBeGreaterThan(1);
    expect(maxConnections).toBeLessThanOrEqual(4);
    expect(maxChannels).toBeLessThanOrEqual(32);
    expect(pool.stats()).toMatchObject({ channels: 0, waiting: 0 });
  });

  it("serves waiters in FIFO order when the host is at capacity", async () => {
    const pool = newPool({ maxChannelsPerConnection: 1, maxConnectionsPerHost: 1 });
    const target = targetFor(host);
    const order: number[] = [];
    const runs = [0, 1, 2, 3].map((i) =>
      pool.exec(target, `echo ${i}`).then((ch) => {
        order.push(i);
        return collect(ch);
      }),
    );
    await expect.poll(() => pool.stats().waiting).toBeGreaterThan(0);
    await Promise.all(runs);
    expect(order).toEqual([0, 1, 2, 3]);
  });

  it("retries channels the host refuses (sshd MaxSessions 10) until they open", async () => {
    const pool = newPool({ maxChannelsPerConnection: 12, maxConnectionsPerHost: 1 });
    const target = targetFor(host);
    const results = await Promise.all(Array.from({ length: 12 }, () => run(pool, target, "sleep 0.3")));
    expect(results.every((r) => r.code === 0)).toBe(true);
    expect(pool.stats().connections).toBe(1);
  });

  it("closes connections that stay idle for idleTimeoutMs", async () => {
    const pool = newPool({ idleTimeoutMs: 200 });
    await run(pool, targetFor(host), "true");
    expect(pool.stats().connections).toBe(1);
    await expect.poll(() => pool.stats().connections, { timeout: 5_000 }).toBe(0);
  });

  it("retries a refused connect twice and then fails cleanly with host_unreachable", async () => {
    const pool = newPool();
    const port = await freePort();
    const err = await sshErrorOf(pool.exec(targetFor(host, { port }), "true"));
    expect(err.code).toBe("host_unreachable");
    expect(err.message).toContain(`127.0.0.1:${port} refused the connection`);
    expect(pool.retries()).toEqual({ connect: 2, channelOpen: 0 });
    expect(pool.stats()).toEqual({ connections: 0, channels: 0, waiting: 0 });
  });

  it("tries a connect the host hangs up on before its banner (as past MaxStartups) three times in all", async () => {
    const listener = await countingListener("hang-up");
    const err = await sshErrorOf(newPool().exec(targetFor(host, { port: listener.port }), "true"));
    expect(err.code).toBe("ssh_error");
    expect(listener.count()).toBe(3);
  });

  it("gives up on a host that never answers after one connect timeout, and says so with its address", async () => {
    const tarpit = await countingListener("tarpit");
    const pool = newPool({ connectTimeoutMs: 500 });
    const outcome = await runThroughWrapper(pool, targetFor(host, { port: tarpit.port }), "true");
    expect(outcome).toMatchObject({ kind: "failed", code: "host_unreachable" });
    const reason = outcome.kind === "failed" ? outcome.reason : "";
    expect(reason).toContain(`The SSH server at 127.0.0.1:${tarpit.port} did not answer within 0.5 s`);
    expect(tarpit.count()).toBe(1);
    expect(pool.retries()).toEqual({ connect: 0, channelOpen: 0 });
  });

  it.runIf(openssh)(
    "waits out a host that refuses channels (MaxSessions 1) and then runs the command exactly once",
    async () => {
      const busy = await startTestHost({ sshdConfig: ["MaxSessions 1"] });
      hosts.push(busy);
      const pool = newPool({ maxChannelsPerConnection: 2, maxConnectionsPerHost: 1 });
      const target = targetFor(busy);
      const ranFile = tempFile();
      // Holds the host's only session until its stdin ends.
      const holder = await pool.exec(target, "cat >/dev/null");
      const held = collect(holder);
      const second = pool.exec(target, `echo ran >> ${ranFile}`).then(collect);
      // Three refusals is past what the pool used to allow (two retries within 0.5 s).
      await expect.poll(() => pool.retries().channelOpen, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
      expect(existsSync(ranFile)).toBe(false); // a refused channel ran nothing
      holder.end();
      expect((await held).code).toBe(0);
      expect((await second).code).toBe(0);
      expect(readFileSync(ranFile, "utf8")).toBe("ran\n");
      expect(pool.stats()).toEqual({ connections: 1, channels: 0, waiting: 0 });
    },
  );

  it.runIf(openssh)(
    "does not retry a host whose algorithms are too weak, and says what it offers",
    async () => {
      const weak = await startTestHost({ sshdConfig: ["Ciphers aes128-ctr", "MACs hmac-sha1"] });
      hosts.push(weak);
      const listener = await countingListener("forward", weak);
      const pool = newPool();
      const outcome = await runThroughWrapper(pool, targetFor(weak, { port: listener.port }), "true");
      expect(outcome).toMatchObject({ kind: "failed", code: "ssh_negotiation_failed" });
      expect(outcome.kind === "failed" ? outcome.reason : "").toContain("offers only MACs hmac-sha1");
      expect(listener.count()).toBe(1);
    },
  );

  it("does not retry a host key mismatch or an authentication failure", async () => {
    const listener = await countingListener("forward");
    const pool = newPool();
    const wrongKey = targetFor(host, {
      port: listener.port,
      hostKeyFingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    });
    expect((await sshErrorOf(pool.exec(wrongKey, "true"))).code).toBe("host_key_mismatch");
    expect(listener.count()).toBe(1);
    const otherKey = generateKeyPair().private; // a key the host does not know
    const wrongUser = targetFor(host, { port: listener.port, privateKey: otherKey });
    expect((await sshErrorOf(pool.exec(wrongUser, "true"))).code).toBe("auth_failed");
    expect(listener.count()).toBe(2);
  });

  it("uses a new connection when a server's settings change", async () => {
    const pool = newPool();
    const target = targetFor(host);
    await run(pool, target, "true");
    await run(pool, { ...target, serverId: randomUUID() }, "true");
    expect(pool.stats().connections).toBe(2);
  });

  it("closes a server's connections made with its old settings, at once when idle, else when their channel closes", async () => {
    const listener = await countingListener("forward");
    const pool = newPool();
    const before = targetFor(host);
    await run(pool, before, "true");
    const busy = await pool.exec(before, "cat");
    const busyDone = collect(busy);
    expect(pool.stats().connections).toBe(1);
    // The same server, now reached another way (an update of its address): never the old connection.
    const after = { ...before, port: listener.port };
    expect((await run(pool, after, "true")).code).toBe(0);
    expect(listener.count()).toBe(1);
    expect(pool.stats()).toEqual({ connections: 2, channels: 1, waiting: 0 });
    busy.end(); // cat ends with its input: the command that ran on the old connection finishes normally
    expect((await busyDone).code).toBe(0);
    await expect.poll(() => pool.stats().connections).toBe(1);
    await run(pool, after, "true");
    expect(listener.count()).toBe(1);
  });

  it("close() ends open channels, rejects waiters and refuses new execs", async () => {
    const pool = new SshPool({ maxChannelsPerConnection: 1, maxConnectionsPerHost: 1 });
    const target = targetFor(host);
    const running = collect(await pool.exec(target, "sleep 30"));
    const waiting = sshErrorOf(pool.exec(target, "true"));
    await expect.poll(() => pool.stats().waiting).toBe(1);
    const started = performance.now();
    await pool.close();
    expect((await waiting).code).toBe("ssh_error");
    await running; // its channel saw "close"
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(pool.stats()).toEqual({ connections: 0, channels: 0, waiting: 0 });
    await sshErrorOf(pool.exec(target, "true"));
  });
});
