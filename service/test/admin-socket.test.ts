import { describe, expect, it } from "vitest";
import { createAdminSocketApp } from "../src/admin/socket-api";
import { silentLogger } from "../src/logger";
import { createTestDatabase, testContext } from "./fixtures/db";

describe("the admin socket API", () => {
  it("runs only its own commands, never properties inherited from Object", async () => {
    const db = await createTestDatabase("pglite");
    try {
      const app = createAdminSocketApp(testContext(db), silentLogger);
      for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
        const res = await app.request(`/rpc/${name}`, { method: "POST", body: "{}" });
        expect(res.status, name).toBe(404);
      }
      const ok = await app.request("/rpc/orgs.list", { method: "POST", body: "{}" });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { result: { name: string }[] }).result.map((o) => o.name)).toContain(
        "default",
      );
    } finally {
      await db.close();
    }
  });
});
