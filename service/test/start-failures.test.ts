// `npm start` that cannot start says why in one line naming the setting to change, exits 1 and
// creates nothing (issue 14): the real entry point, run as a separate process.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TEST_POSTGRES_URL } from "@reoclo/testbed/postgres-database";
import { runServiceToExit, startService } from "./fixtures/processes";
import { freePort } from "@reoclo/testbed/net";

const MASTER_KEY = "ab".repeat(32);
const PASSWORD = "hunter2-not-for-logs";

let dir: string;
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "reoclo-start-fail-"));
  // Another user (the privileged-port case) could create the data directory here too.
  await chmod(dir, 0o777);
});
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const dataDir = () => path.join(dir, `data-${randomBytes(4).toString("hex")}`);

/** A loopback TCP server; `onConnection` decides what it says (nothing, by default). */
async function tcpServer(onConnection: (s: net.Socket) => void = () => undefined): Promise<number> {
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    onConnection(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as net.AddressInfo).port;
}

/** One PostgreSQL backend message: type byte, int32 length (itself included), body. */
function pgMessage(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** Asks for a cleartext password, then refuses it with 28P01, as a server with md5/scram auth would. */
function refusesPassword(socket: net.Socket) {
  let asked = false;
  socket.on("data", () => {
    if (!asked) {
      asked = true;
      const cleartext = Buffer.alloc(4);
      cleartext.writeInt32BE(3);
      return void socket.write(pgMessage("R", cleartext));
    }
    if (socket.writableEnded) return;
    const fields = ["SFATAL", "VFATAL", "C28P01", 'Mpassword authentication failed for user "app"'];
    socket.end(
      pgMessage("E", Buffer.concat([...fields.map((f) => Buffer.from(`${f}\0`)), Buffer.from("\0")])),
    );
  });
}

/** The one line a failed start prints: the whole output, nothing else (no stack trace, no log). */
function oneLine(output: string): string {
  const lines = output.split("\n").filter(Boolean);
  expect(lines, output).toHaveLength(1);
  expect(output).not.toMatch(/^\s+at /m);
  expect(output).not.toContain(PASSWORD);
  return lines[0] ?? "";
}

describe("npm start on an HTTP address it cannot use", () => {
  it("names PORT when the port is in use, exits 1 and creates no data directory", async () => {
    const port = await tcpServer();
    const data = dataDir();
    const { code, output } = await runServiceToExit({ PORT: String(port), REOCLO_DATA_DIR: data });
    expect(code).toBe(1);
    expect(oneLine(output)).toBe(
      `reoclo: 127.0.0.1:${port} is already in use; set PORT to another port (or stop what listens there)`,
    );
    expect(existsSync(data)).toBe(false);
  });

  it("names HOST when it is not an address of this machine", async () => {
    const data = dataDir();
    const { code, output } = await runServiceToExit({ HOST: "192.0.2.1", REOCLO_DATA_DIR: data });
    expect(code).toBe(1);
    expect(oneLine(output)).toMatch(
      /^reoclo: cannot listen on 192\.0\.2\.1:0: HOST 192\.0\.2\.1 is not an address of this machine; set HOST/,
    );
    expect(existsSync(data)).toBe(false);
  });

  const root = process.getuid?.() === 0;
  const unprivilegedStart = Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8"));
  it.skipIf(unprivilegedStart <= 80)("names PORT when a port below 1024 needs privileges", async () => {
    const data = dataDir();
    // As an ordinary user: root may bind any port.
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: { PATH: process.env.PATH ?? "", PORT: "80", REOCLO_DATA_DIR: data },
      stdio: ["ignore", "pipe", "pipe"],
      ...(root ? { uid: 65534, gid: 65534 } : {}),
    });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(1);
    expect(oneLine(output)).toBe(
      "reoclo: cannot listen on 127.0.0.1:80: ports below 1024 need privileges; set PORT to 1024 or above (the default is 8080), or give node the CAP_NET_BIND_SERVICE capability",
    );
    expect(existsSync(data)).toBe(false);
  });

  it("keeps the data directory's lock: a second service says which one holds it, on either port", async () => {
    const data = dataDir();
    const first = await startService({ REOCLO_DATA_DIR: data });
    let stopped: number | null | undefined;
    try {
      const port = new URL(first.url).port;
      const samePort = await runServiceToExit({ PORT: port, REOCLO_DATA_DIR: data });
      expect(samePort.code).toBe(1);
      expect(oneLine(samePort.output)).toBe(
        `reoclo: 127.0.0.1:${port} is already in use; set PORT to another port (or stop what listens there); a reoclo service already runs on the data directory ${data}: stop it first`,
      );
      const otherPort = await runServiceToExit({ REOCLO_DATA_DIR: data });
      expect(otherPort.code).toBe(1);
      expect(oneLine(otherPort.output)).toMatch(/in use by reoclo service \(pid \d+\)/);
      expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    } finally {
      // Stopped whatever happened; its exit code is checked after, so a failure above stays the one shown.
      stopped = await first.stop();
    }
    expect(stopped).toBe(0);
  });
});

describe("npm start with a DATABASE_URL it cannot use", () => {
  const start = (databaseUrl: string, extra: Record<string, string> = {}) =>
    runServiceToExit({ DATABASE_URL: databaseUrl, REOCLO_MASTER_KEY: MASTER_KEY, ...extra });

  it("says the connection was refused, with the URL's password masked, and creates nothing", async () => {
    const port = await freePort();
    const data = dataDir();
    const { code, output } = await start(`postgres://app:${PASSWORD}@127.0.0.1:${port}/reoclo`, {
      REOCLO_DATA_DIR: data,
    });
    expect(code).toBe(1);
    expect(oneLine(output)).toBe(
      `reoclo: cannot connect to the database at DATABASE_URL (postgres://app:***@127.0.0.1:${port}/reoclo): connection refused; check that PostgreSQL runs there, or unset DATABASE_URL to use the embedded database`,
    );
    expect(existsSync(data)).toBe(false);
  });

  it("says the password was refused, never printing it", async () => {
    const port = await tcpServer(refusesPassword);
    const { code, output } = await start(`postgres://app:${PASSWORD}@127.0.0.1:${port}/reoclo`);
    expect(code).toBe(1);
    expect(oneLine(output)).toBe(
      `reoclo: the database at DATABASE_URL (postgres://app:***@127.0.0.1:${port}/reoclo) refused the password of user "app" (authentication failed); check the user name and password in DATABASE_URL`,
    );
  });

  it("says the database does not exist on the real PostgreSQL server", async () => {
    const url = new URL(TEST_POSTGRES_URL);
    url.password = PASSWORD; // trust authentication ignores it; the message must not show it
    url.pathname = `/reoclo_missing_${randomBytes(4).toString("hex")}`;
    const name = url.pathname.slice(1);
    const { code, output } = await start(url.toString());
    expect(code).toBe(1);
    expect(oneLine(output)).toMatch(
      new RegExp(
        `^reoclo: the database "${name}" does not exist on the PostgreSQL server at DATABASE_URL \\(postgres://[^:@/]+:\\*\\*\\*@127\\.0\\.0\\.1:5432/${name}\\); create it \\(createdb ${name}\\)`,
      ),
    );
  });

  it("answers 503 in the error envelope while it waits for the database, then says it did not answer in time", async () => {
    const silent = await tcpServer();
    const port = await freePort();
    const exited = start(`postgres://app:${PASSWORD}@127.0.0.1:${silent}/reoclo`, { PORT: String(port) });
    // The HTTP port is bound before storage opens, so callers learn the service is starting.
    const status = async () =>
      (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status;
    await expect.poll(status, { timeout: 8_000, interval: 100 }).toBe(503);
    const res = await fetch(`http://127.0.0.1:${port}/api/automation/v1/key`);
    expect(res.status).toBe(503);
    const requestId = res.headers.get("x-request-id");
    expect(await res.json()).toEqual({
      error: "service_unavailable",
      detail: "The service is starting: its storage is not open yet.",
      request_id: requestId,
    });
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const { code, output } = await exited;
    expect(code).toBe(1);
    expect(oneLine(output)).toBe(
      `reoclo: cannot connect to the database at DATABASE_URL (postgres://app:***@127.0.0.1:${silent}/reoclo): no answer within the connect timeout; check the host and port, and that no firewall drops the connection, or unset DATABASE_URL to use the embedded database`,
    );
  });
});
