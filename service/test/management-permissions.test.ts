import { randomUUID } from "node:crypto";
import { PRESET_ACLS, type Acl, type Role } from "@reoclo/protocol";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANAGEMENT_ROUTES } from "../src/api/management";
import type { ManagementRoute } from "../src/api/management/router";
import { allows, type Principal } from "../src/access/principal";
import { VERBS } from "../src/control";
import { invoke } from "../src/control/verb";
import { createTestApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { seedKey, seedOrg } from "./fixtures/entities";
import { seedPerson, verbServices } from "./fixtures/people";
import { seedIntegrationKey } from "./fixtures/principals";

// Every route of the management API, called by every role and every integration key preset: it
// answers 403 exactly when the route's verb needs more than the caller holds, and never 401/403
// otherwise. The table is the route table itself, so a route added without a permission check
// (or with a wrong one) fails here (issue 16: "a new route cannot ship unguarded").

/** The verbs any signed-in caller may use about itself; every other verb names a permission. */
const SELF_SERVICE = new Set(["auth.login", "auth.logout", "auth.me", "auth.change_password"]);

interface Who {
  readonly name: string;
  readonly principal: Principal;
  readonly headers: Record<string, string>;
}

describe.each(DRIVERS)("management API permissions, route × role × preset, on %s", (driver) => {
  let db: TestDatabase;
  let t: TestApp;
  const callers: Who[] = [];
  let automationKey: string;

  beforeAll(async () => {
    db = await createTestDatabase(driver);
    t = createTestApp(db);
    const org = await seedOrg(testContext(db));
    automationKey = (await seedKey(testContext(db), { org: org.id })).key;
    const roles: Role[] = ["viewer", "developer", "manager", "owner"];
    for (const role of roles) {
      const user = await seedPerson(db.db, { orgId: org.id, role });
      callers.push({
        name: `${role} (session)`,
        principal: {
          kind: "user",
          orgId: org.id,
          userId: user.id,
          email: user.email,
          role,
          sessionId: user.sessionId,
        },
        headers: { Cookie: user.cookie },
      });
    }
    const owner = callers.find((c) => c.principal.kind === "user" && c.principal.role === "owner")!;
    const developer = callers.find((c) => c.principal.kind === "user" && c.principal.role === "developer")!;
    const keyOf = async (name: string, acl: Acl, creator: Who) => {
      const creatorRole = creator.principal.kind === "user" ? creator.principal.role : "owner";
      const creatorId = creator.principal.kind === "user" ? creator.principal.userId : undefined;
      const k = await seedIntegrationKey(db.db, { orgId: org.id, acl, createdBy: creatorId ?? null });
      callers.push({
        name,
        principal: {
          kind: "integration_key",
          orgId: org.id,
          keyId: k.id,
          label: name,
          prefix: k.prefix,
          acl,
          creator: creatorId ? { userId: creatorId, role: creatorRole } : null,
        },
        headers: { Authorization: `Bearer ${k.key}` },
      });
    };
    await keyOf("Full Access key (owner's)", PRESET_ACLS.full_access, owner);
    await keyOf("Deploy Only key (owner's)", PRESET_ACLS.deploy_only, owner);
    await keyOf("Read Only key (owner's)", PRESET_ACLS.read_only, owner);
    // Stored as made before the creator's role capped it: the request-time check still caps it.
    await keyOf("Full Access key (developer's)", PRESET_ACLS.full_access, developer);
    await keyOf("custom key, servers:read only (owner's)", { servers: ["read"] }, owner);
  });
  afterAll(async () => {
    await t?.close();
    await db?.close();
  });

  it("has a route for every verb but the operator's own, and every verb names a permission", async () => {
    const routed = new Set(MANAGEMENT_ROUTES.map((r) => r.verb.name));
    for (const verb of VERBS) {
      if (SELF_SERVICE.has(verb.name) || verb.adminOnly) expect(verb.need, verb.name).toBeNull();
      else expect(verb.need, `${verb.name} names the permission it needs`).not.toBeNull();
      if (verb.adminOnly) {
        // The operator's verbs (organisations, the master key) have no route and no one else runs them.
        expect(routed.has(verb.name), verb.name).toBe(false);
        for (const who of callers)
          await expect(
            invoke(verb, verbServices(t), who.principal, {}),
            `${who.name}: ${verb.name}`,
          ).rejects.toMatchObject({
            code: "forbidden",
          });
      }
    }
    expect(VERBS.filter((v) => v.adminOnly).map((v) => v.name)).toEqual([
      "orgs.create",
      "orgs.list",
      "secrets.rotate",
    ]);
    expect(MANAGEMENT_ROUTES.length).toBeGreaterThan(30);
    for (const r of MANAGEMENT_ROUTES) expect(VERBS, `${r.method} ${r.path}`).toContain(r.verb);
    expect(routed.size).toBeGreaterThan(25);
  });

  const guarded = () => MANAGEMENT_ROUTES.filter((r) => !SELF_SERVICE.has(r.verb.name));

  it("answers 403 exactly when the caller lacks the route's permission", async () => {
    const mismatches: string[] = [];
    let denied = 0;
    let allowed = 0;
    for (const route of guarded()) {
      for (const who of callers) {
        const res = await call(route, who);
        const expected = allows(who.principal, route.verb.need!);
        const status = res.status;
        const text = await res.text();
        const body = text.slice(0, 200);
        // Allowed means the verb ran past its check: a 404 for the made-up id, a 422 for the empty
        // body, or success; never a refusal, and never a 500.
        if (expected && (status === 401 || status === 403 || status >= 500))
          mismatches.push(
            `${who.name}: ${route.method.toUpperCase()} ${route.path} → ${status} ${body}, expected allowed`,
          );
        if (!expected && status !== 403)
          mismatches.push(
            `${who.name}: ${route.method.toUpperCase()} ${route.path} → ${status} ${body}, expected 403`,
          );
        if (!expected && status === 403)
          expect((JSON.parse(text) as { error: string }).error).toBe("forbidden");
        if (expected) allowed++;
        else denied++;
      }
    }
    expect(mismatches).toEqual([]);
    // The table is not trivially one-sided.
    expect(denied).toBeGreaterThan(50);
    expect(allowed).toBeGreaterThan(50);
  });

  it("answers 401 to every guarded route without a key or session, and to an automation key", async () => {
    for (const route of guarded()) {
      const none = await call(route, { name: "nobody", principal: { kind: "anonymous" }, headers: {} });
      expect(none.status, `${route.method} ${route.path}`).toBe(401);
      const ways: Record<string, string>[] = [
        { Authorization: `Bearer ${automationKey}` },
        { "X-API-Key": automationKey },
      ];
      for (const headers of ways) {
        const ci = await call(route, {
          name: "an automation key",
          principal: { kind: "anonymous" },
          headers,
        });
        expect(ci.status, `${route.method} ${route.path} with an automation key`).toBe(401);
      }
    }
  });

  /** The route with made-up ids (the organisation's own id for `tenant_id`) and an empty body. */
  function call(route: ManagementRoute, who: Who) {
    const orgId =
      who.principal.kind === "user" || who.principal.kind === "integration_key"
        ? who.principal.orgId
        : randomUUID();
    const path = route.path.replace(/\{(\w+)\}/g, (_m, name: string) =>
      name === "tenant_id" ? orgId : randomUUID(),
    );
    const method = route.method.toUpperCase();
    const hasBody = method === "POST" || method === "PATCH";
    return t.app.request(`/api${path}`, {
      method,
      headers: { ...who.headers, ...(hasBody ? { "Content-Type": "application/json" } : {}) },
      ...(hasBody ? { body: "{}" } : {}),
    });
  }
});
