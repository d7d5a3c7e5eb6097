import { API_BASE_PATH, execRequestSchema } from "@reoclo/protocol";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { automationAccess } from "../src/access/pipeline";
import { addApplication } from "../src/applications/applications";
import { listAudit } from "../src/audit/audit";
import type { ServiceContext } from "../src/context";
import { automationKeys } from "../src/db/schema";
import { generateAutomationKey } from "../src/keys/key-format";
import { revokeKey } from "../src/keys/keys";
import { createAccessDeps, createTestApp, fromPeer, type TestApp } from "./fixtures/app";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { seedCredential, seedKey, seedOrg, seedServer } from "./fixtures/entities";

const KEY_URL = `${API_BASE_PATH}/key`;
const EXEC_URL = `${API_BASE_PATH}/test-exec`;
const LOGIN_URL = `${API_BASE_PATH}/test-login`;
const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

describe.each(DRIVERS)("access pipeline on %s", (driver) => {
  let db: TestDatabase;
  let ctx: ServiceContext;
  let t: TestApp;
  let queries = 0;
  const statements: string[] = [];
  let handled = 0;

  const request = (path: string, init: RequestInit = {}, peer = "203.0.113.5") =>
    t.app.request(path, init, fromPeer(peer));
  const post = (path: string, key: string, body: unknown, peer?: string) =>
    request(
      path,
      {
        method: "POST",
        headers: { ...bearer(key), "Content-Type": "application/json" },
        body: JSON.stringify(body),
      },
      peer,
    );

  beforeAll(async () => {
    db = await createTestDatabase(driver, {
      onQuery: (q) => {
        queries++;
        statements.push(q);
      },
    });
    ctx = testContext(db);
    t = createTestApp(db, { env: { REOCLO_TRUSTED_PROXIES: "192.0.2.0/24,198.51.100.7" } });
    const access = createAccessDeps(t.deps);
    // Stand-ins for the operation routes, so every step of the pipeline is exercised through HTTP.
    t.app.post(EXEC_URL, automationAccess(access, { operation: "exec", body: execRequestSchema }), (c) => {
      handled++;
      return c.json({ ok: true, command: c.get("input").command });
    });
    t.app.post(
      LOGIN_URL,
      automationAccess(access, {
        operation: "registry_login",
        body: execRequestSchema.pick({ server_id: true }),
      }),
      (c) => {
        handled++;
        return c.json({ ok: true });
      },
    );
  });
  afterAll(async () => {
    await t?.close();
    await db?.close();
  });

  describe("authentication", () => {
    const bodies: unknown[] = [];
    const expectUnauthorized = async (res: Response) => {
      expect(res.status).toBe(401);
      const body = (await res.json()) as { request_id: string };
      expect(body.request_id).toBeTruthy();
      bodies.push({ ...body, request_id: undefined });
    };

    it("answers missing, malformed, bad-checksum, unknown, revoked and expired keys with one identical 401", async () => {
      const { key: good } = generateAutomationKey();
      const badChecksum = good.slice(0, -1) + (good.endsWith("A") ? "B" : "A");
      await expectUnauthorized(await request(KEY_URL));
      await expectUnauthorized(await request(KEY_URL, { headers: { Authorization: "Bearer nope" } }));
      await expectUnauthorized(await request(KEY_URL, { headers: { Authorization: `Basic ${good}` } }));
      await expectUnauthorized(await request(KEY_URL, { headers: bearer(badChecksum) }));
      await expectUnauthorized(await request(KEY_URL, { headers: bearer(good) })); // well-formed, unknown
      const revoked = await seedKey(ctx);
      expect((await request(KEY_URL, { headers: bearer(revoked.key) })).status).toBe(200);
      await revokeKey(ctx, revoked.id);
      await expectUnauthorized(await request(KEY_URL, { headers: bearer(revoked.key) }));
      const expiring = await seedKey(ctx, { expires: "30d" });
      const later = createTestApp(db, { now: () => new Date(Date.now() + 31 * 86_400_000) });
      await expectUnauthorized(
        await later.app.request(KEY_URL, { headers: bearer(expiring.key) }, fromPeer("203.0.113.5")),
      );
      await later.close();
      expect(bodies).toHaveLength(7);
      for (const b of bodies) expect(b).toEqual(bodies[0]);
      expect(bodies[0]).toMatchObject({ error: "unauthorized" });
    });

    it("refuses a bad checksum without any database query", async () => {
      const { key } = generateAutomationKey();
      const before = queries;
      const res = await request(KEY_URL, { headers: bearer(key.slice(0, -2) + "zz") }, "203.0.113.77");
      expect(res.status).toBe(401);
      expect(queries).toBe(before);
    });

    it("throttles failed lookups of well-formed keys per client address, before the database", async () => {
      const peer = "203.0.113.200";
      const unknown = () => bearer(generateAutomationKey().key);
      for (let i = 0; i < 60; i++)
        expect((await request(KEY_URL, { headers: unknown() }, peer)).status).toBe(401);
      const before = queries;
      const limited = await request(KEY_URL, { headers: unknown() }, peer);
      expect(limited.status).toBe(429);
      expect(queries).toBe(before);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      // Another address is not affected.
      expect((await request(KEY_URL, { headers: unknown() }, "203.0.113.201")).status).toBe(401);
    });

    it("does not budget malformed keys, so they cannot lock a shared address out", async () => {
      const peer = "203.0.113.210";
      for (let i = 0; i < 100; i++) await request(KEY_URL, { headers: { Authorization: "Bearer x" } }, peer);
      const good = await seedKey(ctx);
      expect((await request(KEY_URL, { headers: bearer(good.key) }, peer)).status).toBe(200);
    });

    it("records key use without a write per request", async () => {
      const k = await seedKey(ctx);
      const updates = () => statements.filter((q) => /^update "automation_keys"/i.test(q)).length;
      const first = updates();
      await request(KEY_URL, { headers: bearer(k.key) }, "203.0.113.9");
      expect(updates()).toBe(first + 1);
      const [row] = await db.db.select().from(automationKeys).where(eq(automationKeys.id, k.id));
      expect(row?.lastUsedIp).toBe("203.0.113.9");
      expect(row?.lastUsedAt).toBeInstanceOf(Date);
      await request(KEY_URL, { headers: bearer(k.key) }, "203.0.113.9");
      await request(KEY_URL, { headers: bearer(k.key) }, "203.0.113.9");
      expect(updates()).toBe(first + 1);
      // A new address is recorded at once.
      await request(KEY_URL, { headers: bearer(k.key) }, "203.0.113.10");
      expect(updates()).toBe(first + 2);
    });

    it("never refuses valid keys because many requests come from one address at once", async () => {
      const peer = "203.0.113.221";
      const good = await seedKey(ctx, { rate_limit_per_minute: 1000 });
      const statuses = await Promise.all(
        Array.from(
          { length: 150 },
          async () => (await request(KEY_URL, { headers: bearer(good.key) }, peer)).status,
        ),
      );
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
    });

    it("counts failures of a burst, then refuses the address before the database", async () => {
      const peer = "203.0.113.220";
      const statuses = await Promise.all(
        Array.from(
          { length: 150 },
          async () => (await request(KEY_URL, { headers: bearer(generateAutomationKey().key) }, peer)).status,
        ),
      );
      expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
      const before = statements.length;
      expect((await request(KEY_URL, { headers: bearer(generateAutomationKey().key) }, peer)).status).toBe(
        429,
      );
      expect(statements.length).toBe(before);
    });

    it("budgets IPv6 clients by their /64", async () => {
      for (let i = 0; i < 60; i++) {
        await request(
          KEY_URL,
          { headers: bearer(generateAutomationKey().key) },
          `2001:db8:77:1::${i.toString(16)}`,
        );
      }
      const res = await request(
        KEY_URL,
        { headers: bearer(generateAutomationKey().key) },
        "2001:db8:77:1::ffff",
      );
      expect(res.status).toBe(429);
      const elsewhere = await request(
        KEY_URL,
        { headers: bearer(generateAutomationKey().key) },
        "2001:db8:77:2::1",
      );
      expect(elsewhere.status).toBe(401);
    });
  });

  describe("client IP and allowlists", () => {
    let key: string;
    beforeAll(async () => {
      key = (await seedKey(ctx, { allowed_ips: ["10.1.0.0/16", "2001:db8::/32"] })).key;
    });
    const status = async (peer: string, xff?: string) =>
      (
        await request(
          KEY_URL,
          { headers: { ...bearer(key), ...(xff ? { "X-Forwarded-For": xff } : {}) } },
          peer,
        )
      ).status;

    it("matches IPv4, IPv6 and IPv4-mapped IPv6 peers", async () => {
      expect(await status("10.1.2.3")).toBe(200);
      expect(await status("::ffff:10.1.2.3")).toBe(200);
      expect(await status("2001:db8::5")).toBe(200);
      expect(await status("10.2.0.1")).toBe(403);
      expect(await status("2001:db9::1")).toBe(403);
      expect(await status("::ffff:10.2.0.1")).toBe(403);
    });

    it("answers 403 ip_not_allowed naming the address", async () => {
      const res = await request(KEY_URL, { headers: bearer(key) }, "10.9.9.9");
      expect(await res.json()).toMatchObject({
        error: "ip_not_allowed",
        detail: expect.stringContaining("10.9.9.9") as string,
      });
    });

    it("ignores X-Forwarded-For from an untrusted peer", async () => {
      expect(await status("203.0.113.5", "10.1.2.3")).toBe(403);
    });

    it("believes a trusted proxy chain up to the right-most untrusted hop", async () => {
      expect(await status("192.0.2.10", "10.1.2.3")).toBe(200);
      expect(await status("192.0.2.10", "10.1.2.3, 198.51.100.7")).toBe(200);
      // A client may prepend anything; only the hop the trusted proxy saw counts.
      expect(await status("192.0.2.10", "10.1.2.3, 203.0.113.9")).toBe(403);
      expect(await status("192.0.2.10", "203.0.113.9, 10.1.2.3")).toBe(200);
    });

    it("never fails with a 500 on garbage addresses", async () => {
      for (const xff of ["not-an-ip", "10.1.2.3, ::ffff:zz", "[::1]:80", "%%%", "1.2.3.4.5", ",,,"]) {
        expect([200, 403]).toContain(await status("192.0.2.10", xff));
      }
      expect(await status("garbage")).toBe(403);
    });
  });

  describe("operation, server and credential scope", () => {
    let serverA: string;
    let serverB: string;
    let otherOrgServer: string;
    let credA: string;
    let credB: string;
    beforeAll(async () => {
      serverA = (await seedServer(ctx)).id;
      serverB = (await seedServer(ctx)).id;
      credA = (await seedCredential(ctx)).id;
      credB = (await seedCredential(ctx)).id;
      const other = await seedOrg(ctx);
      otherOrgServer = (await seedServer(ctx, other.name)).id;
    });

    it("refuses an operation the key does not have, before looking at the body", async () => {
      const k = await seedKey(ctx, { operations: ["deploy"], all_servers: false, server_ids: [serverA] });
      const before = handled;
      const res = await post(EXEC_URL, k.key, { server_id: serverA, command: "true" });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: "operation_not_allowed" });
      expect(handled).toBe(before);
    });

    it("refuses a server outside the key's scope with 403, and unknown or foreign ids with the same 404", async () => {
      const k = await seedKey(ctx, { all_servers: false, server_ids: [serverA] });
      expect((await post(EXEC_URL, k.key, { server_id: serverA, command: "true" })).status).toBe(200);
      const out = await post(EXEC_URL, k.key, { server_id: serverB, command: "true" });
      expect(out.status).toBe(403);
      expect(await out.json()).toMatchObject({ error: "server_not_in_scope" });
      const unknown = await post(EXEC_URL, k.key, {
        server_id: "00000000-0000-4000-8000-000000000000",
        command: "true",
      });
      const foreign = await post(EXEC_URL, k.key, { server_id: otherOrgServer, command: "true" });
      expect(unknown.status).toBe(404);
      expect(foreign.status).toBe(404);
      const strip = (b: unknown) => ({ ...(b as object), request_id: undefined });
      expect(strip(await foreign.json())).toEqual(strip(await unknown.json()));
    });

    it("refuses an all-servers key another organisation's server with 404", async () => {
      const k = await seedKey(ctx, { all_servers: true });
      expect((await post(EXEC_URL, k.key, { server_id: otherOrgServer, command: "true" })).status).toBe(404);
    });

    it("allows nothing with an empty server list", async () => {
      const k = await seedKey(ctx, { all_servers: false, server_ids: [serverA] });
      await db.db.update(automationKeys).set({ serverIds: [] }).where(eq(automationKeys.id, k.id));
      expect((await post(EXEC_URL, k.key, { server_id: serverA, command: "true" })).status).toBe(403);
    });

    it("checks the registry credential scope", async () => {
      const k = await seedKey(ctx, { operations: ["registry_login"], credential_ids: [credA] });
      expect((await post(LOGIN_URL, k.key, { server_id: serverA, credential_id: credA })).status).toBe(200);
      const res = await post(LOGIN_URL, k.key, { server_id: serverA, credential_id: credB });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: "credential_not_in_scope" });
      const none = await seedKey(ctx, { operations: ["registry_login"] });
      expect((await post(LOGIN_URL, none.key, { server_id: serverA, credential_id: credA })).status).toBe(
        403,
      );
    });

    it("checks an application through its server, and hides other organisations' applications and credentials", async () => {
      const appA = await addApplication(ctx, {
        name: `app-${serverA.slice(0, 6)}`,
        server_id: serverA,
        working_directory: "/srv/a",
        deploy_script: "true",
      });
      const other = await seedOrg(ctx);
      const foreignServer = await seedServer(ctx, other.name);
      const foreignApp = await addApplication(ctx, {
        org: other.name,
        name: "x",
        server_id: foreignServer.id,
        working_directory: "/srv/x",
        deploy_script: "true",
      });
      const foreignCred = await seedCredential(ctx, other.name);
      const k = await seedKey(ctx, {
        operations: ["exec", "registry_login"],
        all_servers: false,
        server_ids: [serverB],
        all_credentials: true,
      });
      const own = await post(EXEC_URL, k.key, {
        application_id: appA.id,
        server_id: serverB,
        command: "true",
      });
      expect(own.status).toBe(403);
      expect(await own.json()).toMatchObject({ error: "application_not_in_scope" });
      expect(
        (await post(EXEC_URL, k.key, { application_id: foreignApp.id, server_id: serverB, command: "true" }))
          .status,
      ).toBe(404);
      expect(
        (await post(LOGIN_URL, k.key, { server_id: serverB, credential_id: foreignCred.id })).status,
      ).toBe(404);
    });

    it("validates the body last, with field errors, ignoring unknown fields", async () => {
      const k = await seedKey(ctx);
      const bad = await post(EXEC_URL, k.key, {
        server_id: serverA,
        command: "",
        timeout_seconds: 0,
        extra: 1,
      });
      expect(bad.status).toBe(422);
      const body = (await bad.json()) as { error: string; fields: Record<string, string[]> };
      expect(body.error).toBe("validation");
      expect(Object.keys(body.fields)).toEqual(expect.arrayContaining(["command", "timeout_seconds"]));
      const ok = await post(EXEC_URL, k.key, { server_id: serverA, command: "echo hi", surprise: { a: 1 } });
      expect(await ok.json()).toEqual({ ok: true, command: "echo hi" });
    });

    it("answers malformed JSON with 400 in the envelope", async () => {
      const k = await seedKey(ctx);
      const res = await request(EXEC_URL, { method: "POST", headers: bearer(k.key), body: '{"server_id": ' });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: "malformed_json" });
    });
  });

  describe("audit", () => {
    it("writes allowed and denied decisions with reason, key, addresses, user agent and claimed run context", async () => {
      const server = await seedServer(ctx);
      const k = await seedKey(ctx, { all_servers: false, server_ids: [server.id], operations: ["exec"] });
      const runContext = { provider: "github_actions", repository: "acme/web", actor: "octocat" };
      await request(
        EXEC_URL,
        {
          method: "POST",
          headers: { ...bearer(k.key), "User-Agent": "reoclo-github-action" },
          body: JSON.stringify({
            server_id: server.id,
            command: "true",
            run_id: "42",
            run_context: runContext,
          }),
        },
        "203.0.113.61",
      );
      const other = await seedServer(ctx);
      await post(EXEC_URL, k.key, { server_id: other.id, command: "true", run_id: "42" }, "203.0.113.61");
      const rows = await listAudit(ctx, { key: k.id });
      expect(rows.map((r) => [r.outcome, r.reason, r.actor])).toEqual([
        ["denied", "server_not_in_scope", null],
        ["allowed", "allowed", null],
        ["allowed", "key.create", "admin-cli"],
      ]);
      expect(rows[1]).toMatchObject({
        key_id: k.id,
        operation: "exec",
        server_id: server.id,
        client_ip: "203.0.113.61",
        peer_ip: "203.0.113.61",
        user_agent: "reoclo-github-action",
        run_id: "42",
        run_context_claimed: runContext,
      });
      expect(JSON.stringify(rows)).not.toContain(k.key);
    });

    it("folds unauthenticated denials and writes them on flush", async () => {
      for (let i = 0; i < 3; i++)
        await request(KEY_URL, { headers: { Authorization: "Bearer junk" } }, "203.0.113.88");
      await t.deps.audit.flush();
      const rows = await db.db.execute(
        sql`select reason, repeat_count from audit_events where peer_ip = '203.0.113.88'`,
      );
      const list = (Array.isArray(rows) ? rows : (rows as { rows: unknown[] }).rows) as {
        reason: string;
        repeat_count: number;
      }[];
      expect(list).toEqual([{ reason: "malformed_key", repeat_count: 3 }]);
    });

    it("shows unauthenticated denials in the operator's audit list", async () => {
      await request(KEY_URL, { headers: { Authorization: "Bearer nonsense" } }, "203.0.113.89");
      await t.deps.audit.flush();
      const rows = await listAudit(ctx, { outcome: "denied", limit: 1000 });
      expect(rows.find((r) => r.client_ip === "203.0.113.89")).toMatchObject({
        reason: "malformed_key",
        repeat_count: 1,
      });
    });

    it("writes thousands of folded denials in one flush, whatever user agents they send", async () => {
      for (let i = 0; i < 3000; i++) {
        const ip = `198.18.${Math.floor(i / 250)}.${i % 250}`;
        await request(KEY_URL, { headers: { Authorization: "Bearer x", "User-Agent": `ua-${i}` } }, ip);
        await request(KEY_URL, { headers: { Authorization: "Bearer x", "User-Agent": `other-${i}` } }, ip);
      }
      await t.deps.audit.flush();
      const rows = await db.db.execute(
        sql`select count(*)::int as n, sum(repeat_count)::int as total from audit_events where client_ip like '198.18.%'`,
      );
      const [r] = (Array.isArray(rows) ? rows : (rows as { rows: unknown[] }).rows) as {
        n: number;
        total: number;
      }[];
      expect(r).toEqual({ n: 3000, total: 6000 });
    });

    it("runs nothing and answers 503 when the audit log cannot be written", async () => {
      const k = await seedKey(ctx);
      const server = await seedServer(ctx);
      await db.db.execute(sql`alter table audit_events rename to audit_events_away`);
      try {
        const before = handled;
        const res = await post(EXEC_URL, k.key, { server_id: server.id, command: "true" });
        expect(res.status).toBe(503);
        expect(await res.json()).toMatchObject({ error: "audit_unavailable" });
        expect(handled).toBe(before);
      } finally {
        await db.db.execute(sql`alter table audit_events_away rename to audit_events`);
      }
    });
  });

  describe("request hygiene", () => {
    it("refuses an oversized body with 413", async () => {
      const k = await seedKey(ctx);
      const res = await post(EXEC_URL, k.key, { command: "x".repeat(300 * 1024) });
      expect(res.status).toBe(413);
      expect(await res.json()).toMatchObject({ error: "payload_too_large" });
    });

    it("refuses an oversized chunked body with 413", async () => {
      const k = await seedKey(ctx);
      const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 8) controller.enqueue(chunk);
          else controller.close();
        },
      });
      const res = await request(EXEC_URL, {
        method: "POST",
        headers: bearer(k.key),
        body,
        duplex: "half",
      });
      expect(res.status).toBe(413);
    });
  });
});
