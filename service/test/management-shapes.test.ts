import { generateKeyPair } from "@reoclo/testbed/keys";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, type TestDatabase } from "./fixtures/db";
import { addPerson, managementBase, signInCookie } from "./fixtures/people";

// Spec §11 "Shapes that other tools rely on", exactly as a script would send and read them over
// HTTP: sign-in, a person with a one-time password, both kinds of keys (the key shown once), a
// server (never its key), lists, the seed's `curl … /api/servers` with Bearer and X-API-Key, and a
// cookie-authenticated write from another site refused.

const INTEGRATION_KEY = /^rk_t_[0-9A-Za-z]{36}$/;
const AUTOMATION_KEY = /^rca_[0-9A-Za-z]{36}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe.each(DRIVERS)("the management API's pinned shapes, on %s", (driver) => {
  let db: TestDatabase;
  let t: TestApp;
  let served: ServedApp;
  let api: string;
  let cookie: string;
  const { private: privateKey } = generateKeyPair();

  beforeAll(async () => {
    db = await createTestDatabase(driver);
    t = createTestApp(db);
    served = await serveTestApp(t);
    api = managementBase(served.base);
  });
  afterAll(async () => {
    await served?.close();
    await t?.close();
    await db?.close();
  });

  /** A write as the dashboard's pages make it: the session cookie, from the service's own origin. */
  const asOwner = (path: string, body: unknown, method = "POST") =>
    fetch(`${api}${path}`, {
      method,
      headers: { Cookie: cookie, "Content-Type": "application/json", Origin: new URL(api).origin },
      body: JSON.stringify(body),
    });

  it("POST /api/auth/login answers {user: {id, email, role}} and the session cookie", async () => {
    const owner = await addPerson(t, "owner");
    const res = await fetch(`${api}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: owner.email, password: owner.password }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { user: Record<string, unknown> };
    expect(body.user).toMatchObject({ id: owner.id, email: owner.email, role: "owner" });
    const setCookie = res.headers.getSetCookie().join("\n");
    expect(setCookie).toMatch(/reoclo_session=[^;]+;/);
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Strict/i);
    cookie = await signInCookie(api, owner);
  });

  it("POST /api/users answers 201 {id, email, role, password}, the password shown once", async () => {
    const res = await asOwner("/users", { email: "Dev.One@Example.com", role: "developer" });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ email: "dev.one@example.com", role: "developer" });
    expect(body.id).toMatch(UUID);
    expect(typeof body.password).toBe("string");
    expect((body.password as string).length).toBeGreaterThanOrEqual(12);
    const res2 = await fetch(`${api}/users`, { headers: { Cookie: cookie } });
    expect(res2.status).toBe(200);
    const list = (await res2.json()) as { items: Record<string, unknown>[] };
    expect(list.items.map((u) => u.id)).toContain(body.id);
    expect(JSON.stringify(list)).not.toContain(body.password as string);
  });

  it("POST /api/integration-keys answers 201 {id, key, prefix}; the seed's curl works with Bearer and X-API-Key", async () => {
    const res = await asOwner("/integration-keys", { label: "MCP", preset: "read_only", expires: "30d" });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: string; key: string; prefix: string };
    expect(created.id).toMatch(UUID);
    expect(created.key).toMatch(INTEGRATION_KEY);
    expect(created.key.startsWith(created.prefix)).toBe(true);

    const custom = await asOwner("/integration-keys", {
      label: "servers only",
      preset: "custom",
      permissions: { servers: ["read"] },
      expires: "never",
    });
    expect(custom.status).toBe(201);

    const server = await asOwner("/servers", {
      name: "web-1",
      host: "192.0.2.10",
      port: 22,
      user: "deploy",
      private_key: privateKey,
      host_key_fingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
      skip_host_key_check: true,
    });
    expect(server.status).toBe(201);
    const serverText = await server.text();
    expect(serverText).not.toContain("PRIVATE KEY");
    const serverBody = JSON.parse(serverText) as { id: string; name: string };
    expect(serverBody).toMatchObject({ name: "web-1", host: "192.0.2.10", port: 22, user: "deploy" });

    const ways: Record<string, string>[] = [
      { Authorization: `Bearer ${created.key}` },
      { "X-API-Key": created.key },
    ];
    for (const headers of ways) {
      const list = await fetch(`${api}/servers`, { headers });
      expect(list.status).toBe(200);
      const body = (await list.json()) as { items: { id: string; name: string }[]; next_cursor: unknown };
      expect(body.next_cursor).toBeNull();
      expect(body.items.map((s) => s.id)).toEqual([serverBody.id]);
      expect(JSON.stringify(body)).not.toContain("PRIVATE KEY");
    }
  });

  it("POST /api/automation-keys takes reoclo-admin's fields in snake_case and answers 201 {id, key, prefix}", async () => {
    const servers = (await (await fetch(`${api}/servers`, { headers: { Cookie: cookie } })).json()) as {
      items: { id: string }[];
    };
    const res = await asOwner("/automation-keys", {
      name: "github-prod-deploy",
      operations: ["exec", "deploy"],
      server_ids: [servers.items[0]!.id],
      all_credentials: true,
      allowed_ips: ["203.0.113.0/24"],
      rate_limit_per_minute: 10,
      rate_limit_per_hour: 100,
      expires: "90d",
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.id).toMatch(UUID);
    expect(body.key).toMatch(AUTOMATION_KEY);
    expect((body.key as string).startsWith(body.prefix as string)).toBe(true);
    // Shown once: the list never holds it again.
    const list = await (await fetch(`${api}/automation-keys`, { headers: { Cookie: cookie } })).text();
    expect(list).not.toContain(body.key as string);
    expect(JSON.parse(list)).toMatchObject({ next_cursor: null });
  });

  it("answers every list as {items, next_cursor}", async () => {
    for (const path of [
      "/servers",
      "/applications",
      "/automation-keys",
      "/integration-keys",
      "/registry-credentials",
      "/operations",
      "/audit",
      "/users",
    ]) {
      const res = await fetch(`${api}${path}`, { headers: { Cookie: cookie } });
      expect(res.status, path).toBe(200);
      const body = (await res.json()) as { items: unknown; next_cursor: unknown };
      expect(Array.isArray(body.items), path).toBe(true);
      expect(body.next_cursor === null || typeof body.next_cursor === "string", path).toBe(true);
    }
  });

  it("refuses a cookie-authenticated write whose Origin is another site with 403", async () => {
    const res = await fetch(`${api}/users`, {
      method: "POST",
      headers: { Cookie: cookie, "Content-Type": "application/json", Origin: "https://evil.example" },
      body: JSON.stringify({ email: "x@example.com", role: "owner" }),
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe("forbidden");
  });
});
