import type { AddressInfo } from "node:net";
import net from "node:net";
import type { Server } from "node:http";
import { API_BASE_PATH } from "@reoclo/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import type { ServiceContext } from "../src/context";
import { openDatabase, type DatabaseHandle } from "../src/db/database";
import { createHttpServer } from "../src/http/server";
import { revokeKey } from "../src/keys/keys";
import { createTestApp, fromPeer, type TestApp } from "./fixtures/app";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { seedKey } from "./fixtures/entities";

const KEY_URL = `${API_BASE_PATH}/key`;
const get = (t: TestApp, key: string) =>
  t.app.request(KEY_URL, { headers: { Authorization: `Bearer ${key}` } }, fromPeer("203.0.113.5"));

describe.each(DRIVERS)("rate limits on %s", (driver) => {
  let db: TestDatabase;
  let ctx: ServiceContext;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase(driver);
    ctx = testContext(db);
    t = createTestApp(db);
  });
  afterAll(async () => {
    await t?.close();
    await db?.close();
  });

  it("counts down the per-minute limit in the headers, then answers 429 with Retry-After", async () => {
    const k = await seedKey(ctx, { rate_limit_per_minute: 3 });
    const remaining: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await get(t, k.key);
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit-limit")).toBe("3");
      remaining.push(res.headers.get("ratelimit-remaining"));
      const reset = Number(res.headers.get("ratelimit-reset"));
      expect(reset).toBeGreaterThan(0);
      expect(reset).toBeLessThanOrEqual(60);
    }
    expect(remaining).toEqual(["2", "1", "0"]);
    const limited = await get(t, k.key);
    expect(limited.status).toBe(429);
    expect(await limited.json()).toMatchObject({ error: "rate_limited" });
    const retry = Number(limited.headers.get("retry-after"));
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(60);
    expect(limited.headers.get("ratelimit-remaining")).toBe("0");
  });

  it("enforces the per-hour limit, reporting the hour window", async () => {
    const k = await seedKey(ctx, { rate_limit_per_minute: 100, rate_limit_per_hour: 2 });
    expect((await get(t, k.key)).status).toBe(200);
    const second = await get(t, k.key);
    expect(second.headers.get("ratelimit-limit")).toBe("2");
    expect(second.headers.get("ratelimit-remaining")).toBe("0");
    const limited = await get(t, k.key);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("ratelimit-limit")).toBe("2");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(60);
  });

  it("keeps one key's limit from touching another's", async () => {
    const a = await seedKey(ctx, { rate_limit_per_minute: 1 });
    const b = await seedKey(ctx, { rate_limit_per_minute: 1 });
    expect((await get(t, a.key)).status).toBe(200);
    expect((await get(t, a.key)).status).toBe(429);
    expect((await get(t, b.key)).status).toBe(200);
  });
});

describe.runIf(DRIVERS.includes("postgres"))("two service instances sharing one PostgreSQL", () => {
  let db: TestDatabase;
  let second: DatabaseHandle;
  let ctx: ServiceContext;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    second = await openDatabase({ databaseUrl: db.url, maxConnections: 4 }); // its own pool
    ctx = testContext(db);
    a = createTestApp(db);
    b = createTestApp(second);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await second?.close();
    await db?.close();
  });

  it("give a key its limit once, not once per instance", async () => {
    const k = await seedKey(ctx, { rate_limit_per_minute: 4 });
    const statuses = [];
    for (const instance of [a, b, a, b, a, b]) statuses.push((await get(instance, k.key)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
  });

  it("refuse a key on the next request once another instance revoked it", async () => {
    const k = await seedKey(ctx);
    expect((await get(b, k.key)).status).toBe(200);
    await revokeKey({ ...ctx, db: a.deps.database.db }, k.id);
    expect((await get(b, k.key)).status).toBe(401);
  });
});

describe("HTTP server hygiene", () => {
  let db: TestDatabase;
  let t: TestApp;
  let server: Server;
  let port: number;
  const logged: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const logger = {
    info: (msg: string, fields?: Record<string, unknown>) => logged.push({ level: "info", msg, fields }),
    warn: (msg: string, fields?: Record<string, unknown>) => logged.push({ level: "warn", msg, fields }),
    error: (msg: string, fields?: Record<string, unknown>) => logged.push({ level: "error", msg, fields }),
  };
  beforeAll(async () => {
    db = await createTestDatabase("pglite");
    t = createTestApp(db, { logger });
    server = createHttpServer(t.app.fetch, {
      headersTimeoutMs: 500,
      requestTimeoutMs: 1_000,
      checkIntervalMs: 100,
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await t?.close();
    await db?.close();
  });

  /** Writes raw bytes and resolves with everything the server sent before closing. */
  const raw = (payload: string | Buffer, keepOpen = false) =>
    new Promise<string>((resolve, reject) => {
      const sock = net.connect(port, "127.0.0.1");
      let got = "";
      sock.on("data", (d: Buffer) => (got += d.toString()));
      sock.on("close", () => resolve(got));
      sock.on("error", reject);
      sock.write(payload);
      if (!keepOpen) sock.end();
    });

  it("refuses a body that sends both Content-Length and Transfer-Encoding, in the envelope", async () => {
    const chunk = "x".repeat(64 * 1024);
    const body =
      Array.from({ length: 6 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join("") + "0\r\n\r\n";
    const res = await raw(
      `POST ${API_BASE_PATH}/key HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n${body}`,
    );
    // Ambiguous framing is how requests are smuggled: it is refused before the app reads anything.
    expect(res).toMatch(/^HTTP\/1\.1 400/);
    expect(res).toContain('"error":"bad_request"');
    expect(res).toContain("Content-Length and Transfer-Encoding");
  });

  it("answers a plain oversized body with 413 in the envelope", async () => {
    const body = "x".repeat(300 * 1024);
    const res = await raw(
      `POST ${API_BASE_PATH}/key HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    expect(res).toMatch(/^HTTP\/1\.1 413/);
    expect(res).toContain('"error":"payload_too_large"');
  });

  it("notes a client that hangs up mid-body in one line, not as an unhandled error with a stack", async () => {
    const k = await seedKey(testContext(db, t.deps.secrets), { operations: ["exec"], all_servers: true });
    const sock = net.connect(port, "127.0.0.1");
    await new Promise((resolve) => sock.once("connect", resolve));
    const received = new Promise((resolve) => server.once("request", resolve));
    sock.write(
      `POST ${API_BASE_PATH}/exec HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k.key}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"server_id":`,
    );
    await received; // the app has the request and will read its body
    sock.destroy();
    await expect
      .poll(() => logged.find((l) => l.msg === "client closed the connection mid-request"), {
        timeout: 5_000,
      })
      .toBeDefined();
    expect(logged.filter((l) => l.level === "error")).toEqual([]);
    expect(JSON.stringify(logged)).not.toMatch(/at .*\(node:|\n\s+at /);
  });

  it("closes a connection that never finishes its headers", async () => {
    const res = await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: `, true);
    expect(res).toMatch(/^HTTP\/1\.1 408/);
    expect(res).toContain('"error":"request_timeout"');
  });
});

describe.each(DRIVERS)("a database that goes away, on %s", (driver) => {
  it("answers 503 database_unavailable, never 500", async () => {
    const db = await createTestDatabase(driver);
    const ctx = testContext(db);
    const t = createTestApp(db);
    const k = await seedKey(ctx);
    expect((await get(t, k.key)).status).toBe(200);
    await db.close();
    const res = await get(t, k.key);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: string; detail: string };
    expect(body.error).toBe("database_unavailable");
    expect(body.detail).not.toMatch(/postgres:|select|insert|stack/i);
    await t.close();
  });
});
