import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { createTestApp, type TestApp } from "./fixtures/app";
import { SecretBox } from "../src/secrets/secret-box";
import { createTestDatabase, type TestDatabase } from "./fixtures/db";

describe.each(DRIVERS)("service app on %s", (driver) => {
  let database: TestDatabase;
  let app: TestApp["app"];
  let testApp: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase(driver);
    testApp = createTestApp(database);
    app = testApp.app;
  });
  afterAll(async () => {
    await testApp?.close().catch(() => undefined);
    await database?.close();
  });

  it("answers /healthz without a key, with a request id", async () => {
    const res = await app.request("/healthz");
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/.+/);
  });

  it("answers /readyz 200 while the database answers", async () => {
    const res = await app.request("/readyz");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ready", database: driver });
  });

  it("answers /readyz 503 saying only that it is not ready while no master key is set", async () => {
    const keyless = createTestApp(database, { secrets: new SecretBox(undefined) });
    try {
      const res = await keyless.app.request("/readyz");
      expect(res.status).toBe(503);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ error: "service_unavailable", detail: "not ready" });
      expect(JSON.stringify(body)).not.toMatch(/master|key|secret/i);
      expect((await keyless.app.request("/healthz")).status).toBe(200);
    } finally {
      await keyless.close();
    }
  });

  it("answers unknown routes with the one error envelope", async () => {
    const res = await app.request("/api/automation/v1/nope", { headers: { "X-Request-Id": "forged" } });
    const id = res.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: "route_not_found",
      detail:
        "No route for GET /api/automation/v1/nope: the automation API lives under /api/automation/v1 (e.g. POST /api/automation/v1/exec).",
      request_id: id,
    });
  });

  it("answers /readyz 503 database_unavailable once the database is gone, and /healthz still 200", async () => {
    await database.close();
    const res = await app.request("/readyz");
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: string; detail: string };
    expect(body.error).toBe("database_unavailable");
    expect(body.detail).not.toMatch(/postgres:\/\/|select/i);
    expect((await app.request("/healthz")).status).toBe(200);
  });
});
