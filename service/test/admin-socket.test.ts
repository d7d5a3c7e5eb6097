import { describe, expect, it } from "vitest";
import { itemsOf } from "../src/admin/executor";
import { createTestApp } from "./fixtures/app";
import { createTestDatabase } from "./fixtures/db";

describe("the admin socket API", () => {
  it("runs only its own commands, never properties inherited from Object", async () => {
    const db = await createTestDatabase("pglite");
    const t = createTestApp(db);
    try {
      const app = t.service.adminApp;
      for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
        const res = await app.request(`/rpc/${name}`, { method: "POST", body: "{}" });
        expect(res.status, name).toBe(404);
      }
      const ok = await app.request("/rpc/orgs.list", { method: "POST", body: "{}" });
      expect(ok.status).toBe(200);
      const { result } = (await ok.json()) as { result: unknown };
      expect((itemsOf(result) as { name: string }[]).map((o) => o.name)).toContain("default");
    } finally {
      await t.close();
      await db.close();
    }
  });
});
