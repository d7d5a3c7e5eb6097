import { API_BASE_PATH } from "@reoclo/protocol";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPrivatePostgres, type PrivatePostgres } from "@reoclo/testbed/private-postgres";
import type { AuditEvent } from "../src/access/audit-writer";
import { openDatabase, type DatabaseHandle } from "../src/db/database";
import { createTestApp, fromPeer, type TestApp } from "./fixtures/app";
import { rowsOf } from "./fixtures/db";

// Refusals are folded in memory and written every few seconds (issue 13, item 8): a flush that
// meets a stopped database keeps them for the next one, and one row the database refuses does not
// take the others of its batch down.

describe("the audit log's folded refusals, against a PostgreSQL that stops and starts", () => {
  let pg: PrivatePostgres;
  let database: DatabaseHandle;
  let t: TestApp;
  const logged: string[] = [];

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    database = await openDatabase({ databaseUrl: pg.url, maxConnections: 4 });
    await database.migrate();
    const record = (level: string) => (msg: string) => logged.push(`${level} ${msg}`);
    t = createTestApp(database, {
      logger: { info: record("info"), warn: record("warn"), error: record("error") },
    });
  });
  afterAll(async () => {
    await t?.close().catch(() => undefined);
    await database?.close();
    await pg?.close();
  });

  const refuse = (peer: string, path = "/key") =>
    t.app.request(`${API_BASE_PATH}${path}`, { headers: { Authorization: "Bearer junk" } }, fromPeer(peer));
  const folded = async (peerPrefix: string) =>
    rowsOf<{ client_ip: string; path: string; repeat_count: number }>(
      await database.db.execute(
        sql`select client_ip, path, repeat_count from audit_events where client_ip like ${`${peerPrefix}%`} order by client_ip`,
      ),
    );

  it("keeps the refusals of a flush that met a stopped database, and writes them once it is back", async () => {
    for (const peer of ["198.51.100.1", "198.51.100.2", "198.51.100.2", "198.51.100.3"]) {
      expect((await refuse(peer)).status).toBe(401);
    }
    expect((await refuse("198.51.100.4", "/operations/%00")).status).toBe(401);
    await pg.stop("fast");
    await t.deps.audit.flush(); // fails: nothing is written, nothing is lost
    expect(logged.some((l) => l.startsWith("warn audit flush failed; rows kept"))).toBe(true);
    expect((await refuse("198.51.100.3")).status).toBe(401); // folded meanwhile, with no database
    await pg.start();
    await t.deps.audit.flush();
    expect(await folded("198.51.100.")).toEqual([
      { client_ip: "198.51.100.1", path: `${API_BASE_PATH}/key`, repeat_count: 1 },
      { client_ip: "198.51.100.2", path: `${API_BASE_PATH}/key`, repeat_count: 2 },
      { client_ip: "198.51.100.3", path: `${API_BASE_PATH}/key`, repeat_count: 1 },
      { client_ip: "198.51.100.3", path: `${API_BASE_PATH}/key`, repeat_count: 1 },
      { client_ip: "198.51.100.4", path: `${API_BASE_PATH}/operations/%00`, repeat_count: 1 },
    ]);
  });

  it("writes the rest of a batch when the database refuses one of its rows", async () => {
    const event = (ip: string): AuditEvent => ({
      outcome: "denied",
      reason: "malformed_key",
      method: "GET",
      path: `${API_BASE_PATH}/key`,
      peerIp: ip,
      clientIp: ip,
    });
    t.deps.audit.recordDeferred(event("203.0.113.201"));
    // A row no sanitising can save (a malformed uuid): stands in for any row the database refuses.
    t.deps.audit.recordDeferred({ ...event("203.0.113.202"), orgId: "not-a-uuid" });
    t.deps.audit.recordDeferred(event("203.0.113.203"));
    await t.deps.audit.flush();
    expect((await folded("203.0.113.20")).map((r) => r.client_ip)).toEqual([
      "203.0.113.201",
      "203.0.113.203",
    ]);
    expect(logged.some((l) => l.startsWith("error audit row refused by the database and dropped"))).toBe(
      true,
    );
  });
});
