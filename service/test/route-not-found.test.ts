// A request to a path the service has no route for gets its own code, route_not_found, apart from
// not_found (an unknown id): a wrong api_url is then not mistaken for a wrong server_id (issue 14).
import { count } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { operations } from "../src/db/schema";
import { createTestApp, fromPeer, type TestApp } from "./fixtures/app";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { seedKey } from "./fixtures/entities";

describe("requests to a route the service does not have", () => {
  let database: TestDatabase;
  let t: TestApp;
  let key: string;

  beforeAll(async () => {
    database = await createTestDatabase("pglite");
    t = createTestApp(database);
    key = (await seedKey(testContext(database))).key;
  });
  afterAll(async () => {
    await t?.close();
    await database?.close();
  });

  const post = (path: string) =>
    t.app.request(
      path,
      {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ server_id: "6f1c2d3e-0000-4000-8000-000000000001", command: "true" }),
      },
      fromPeer("127.0.0.1"),
    );
  const storedOperations = async () => (await database.db.select({ n: count() }).from(operations))[0]?.n;

  it("answers route_not_found naming the path asked and where the automation API lives", async () => {
    const res = await post("/reoclo/api/automation/v1/exec");
    expect(res.status).toBe(404);
    const requestId = res.headers.get("x-request-id");
    expect(await res.json()).toEqual({
      error: "route_not_found",
      detail:
        "No route for POST /reoclo/api/automation/v1/exec: the automation API lives under /api/automation/v1 (e.g. POST /api/automation/v1/exec).",
      request_id: requestId,
    });
    expect(await storedOperations()).toBe(0);
  });

  it("points a wrong path under /api to the management API's list of routes", async () => {
    const res = await post("/api/server");
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({
      error: "route_not_found",
      detail:
        "No route for POST /api/server: the management API's routes are listed at /api/docs, and the automation API lives under /api/automation/v1 (e.g. POST /api/automation/v1/exec).",
    });
  });

  it("keeps not_found for an unknown id on a route that exists", async () => {
    const res = await post("/api/automation/v1/exec");
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: "not_found" });
    expect(await storedOperations()).toBe(0);
  });
});
