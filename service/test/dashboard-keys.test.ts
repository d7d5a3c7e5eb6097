// The dashboard's API Keys and Users pages (spec §11) over real HTTP on PostgreSQL: a key made
// through the form is shown once and works on the automation API, revoking it through the form
// stops it, the buttons follow the verbs' permissions and a forged write changes nothing, and an
// owner's new person gets a one-time password shown once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listIntegrationKeys } from "../src/keys/integration-keys";
import { listKeys } from "../src/keys/keys";
import { listUsers } from "../src/people/users";
import type { ServiceContext } from "../src/context";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { dashboardSession, type DashboardSession } from "./fixtures/dashboard";
import { createTestDatabase, type TestDatabase } from "./fixtures/db";
import { seedKey, seedServer } from "./fixtures/entities";
import { managementBase, signInCookie, verbServices } from "./fixtures/people";
import { ADMIN } from "../src/access/principal";
import { trustPoliciesList } from "../src/control/trust-policies";
import { invoke } from "../src/control/verb";

/** The one-time value of the read-only field `id` of a page. */
const shownValue = (html: string, id: string) =>
  new RegExp(`<input[^>]*id="${id}"[^>]*value="([^"]+)"`).exec(html)?.[1] ??
  new RegExp(`<input[^>]*value="([^"]+)"[^>]*id="${id}"`).exec(html)?.[1];

describe("dashboard: API keys and users (postgres)", () => {
  let db: TestDatabase;
  let t: TestApp;
  let served: ServedApp;
  let ctx: ServiceContext;
  let origin: string;
  let server: { id: string; name: string };
  let manager: DashboardSession;
  let viewer: DashboardSession;
  let developer: DashboardSession;
  let owner: DashboardSession;

  const automationKey = (key: string) =>
    fetch(`${served.base}/key`, { headers: { Authorization: `Bearer ${key}` } });

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    t = createTestApp(db);
    served = await serveTestApp(t);
    origin = new URL(served.base).origin;
    ctx = verbServices(t).ctx;
    server = await seedServer(ctx, undefined, "web-1");
    await seedServer(ctx, undefined, "db-1");
    // An active key, so a page that offers revoking would show a Revoke button.
    await seedKey(ctx, { name: "nightly-backup" });
    manager = await dashboardSession(t, origin, "manager");
    viewer = await dashboardSession(t, origin, "viewer");
    developer = await dashboardSession(t, origin, "developer");
    owner = await dashboardSession(t, origin, "owner");
  });

  afterAll(async () => {
    await served?.close();
    await t?.close();
    await db?.close();
  });

  it("a manager creates an automation key for one server and exec: shown once, it works, then revoked through the form it is refused", async () => {
    const form = await manager.get("/keys/automation/new");
    expect(form.status).toBe(200);
    expect(form.html).toContain(`value="${server.id}"`);
    expect(form.html).toContain("web-1");
    expect(form.html).toContain('value="exec"');
    expect(form.html).toContain("<summary>Advanced</summary>");

    const created = await manager.post("/keys/automation", {
      name: "ci-deploy",
      server_ids: [server.id],
      operations: ["exec"],
      expires: "90d",
      allowed_ips: "",
      rate_limit_per_minute: "",
      rate_limit_per_hour: "",
    });
    expect(created.status).toBe(201);
    const key = shownValue(created.html, "new-key");
    expect(key).toMatch(/^rca_[0-9A-Za-z]+$/);
    expect(created.html).toContain('data-copy="new-key"');
    expect(created.html).toContain("uses: reoclo/run@");
    expect(created.html).toContain(`server_id: ${server.id}`);
    expect(created.html).toContain(`api_url: ${origin}`);
    expect(created.html).toContain("REOCLO_API_KEY");

    const answer = await automationKey(key!);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({
      name: "ci-deploy",
      operations: ["exec"],
      servers: [server.id],
    });

    const list = await manager.get("/keys");
    expect(list.status).toBe(200);
    expect(list.html).toContain("ci-deploy");
    expect(list.html).toContain(`${key!.slice(0, 8)}`); // the prefix
    expect(list.html).not.toContain(key!);
    expect(list.html).toContain("web-1"); // the scope names the server
    const stored = (await listKeys(ctx)).find((k) => k.name === "ci-deploy")!;
    expect(stored.expires_at).not.toBeNull();
    expect(list.html).toContain(`action="/keys/automation/${stored.id}/revoke"`);

    const revoked = await manager.post(`/keys/automation/${stored.id}/revoke`, {});
    expect(revoked.status).toBe(303);
    const after = await manager.get(revoked.location!);
    expect(after.html).toContain("The key is revoked");
    expect(after.html).toContain('<span class="status status-revoked">revoked</span>');
    expect(after.html).not.toContain(`action="/keys/automation/${stored.id}/revoke"`);
    expect((await automationKey(key!)).status).toBe(401);
  });

  it("a refused key form comes back with the error and what was typed", async () => {
    const before = (await listKeys(ctx)).length;
    const refused = await manager.post("/keys/automation", {
      name: "no-operations",
      server_ids: [server.id],
      allowed_ips: "10.0.0.0/8, 192.0.2.1",
    });
    expect(refused.status).toBe(422);
    expect(refused.html).toContain('role="alert"');
    expect(refused.html).toContain('value="no-operations"');
    expect(refused.html).toContain("10.0.0.0/8, 192.0.2.1");
    expect((await listKeys(ctx)).length).toBe(before);
  });

  it("a manager changes a key on its page; a viewer sees the same page without the form", async () => {
    const key = await seedKey(ctx, { name: "to-rename", all_servers: false, server_ids: [server.id] });
    const edit = await manager.get(`/keys/automation/${key.id}`);
    expect(edit.status).toBe(200);
    expect(edit.html).toContain("Save changes");
    expect(edit.html).not.toContain(key.key);
    const saved = await manager.post(`/keys/automation/${key.id}`, {
      name: "renamed",
      server_ids: [server.id],
      operations: ["exec", "deploy"],
      expires: "",
      allowed_ips: "198.51.100.7",
      rate_limit_per_minute: "10",
      rate_limit_per_hour: "",
    });
    expect(saved.status).toBe(303);
    const changed = (await listKeys(ctx)).find((k) => k.id === key.id)!;
    expect(changed).toMatchObject({
      name: "renamed",
      operations: ["exec", "deploy"],
      allowed_ips: ["198.51.100.7/32"],
      rate_limit_per_minute: 10,
      expires_at: key.expires_at,
    });
    const view = await viewer.get(`/keys/automation/${key.id}`);
    expect(view.status).toBe(200);
    expect(view.html).toContain("198.51.100.7/32");
    expect(view.html).not.toContain("Save changes");
    expect((await manager.get("/keys/automation/00000000-0000-4000-8000-000000000000")).status).toBe(404);
  });

  it("a viewer sees both tabs but no Create link or Revoke button, and a forged create is refused", async () => {
    const page = await viewer.get("/keys");
    expect(page.status).toBe(200);
    expect(page.html).toContain('<ul class="tabs">');
    expect(page.html).toMatch(/aria-current="page"\s*>Automation Keys</);
    expect(page.html).toContain("Integration Keys");
    expect(page.html).toContain("nightly-backup");
    expect(page.html).not.toContain("Create an automation key");
    expect(page.html).not.toContain(">Revoke<");
    const managerPage = await manager.get("/keys");
    expect(managerPage.html).toContain("Create an automation key");
    expect(managerPage.html).toContain(">Revoke<");

    const before = (await listKeys(ctx)).length;
    const forged = await viewer.post("/keys/automation", {
      name: "sneaky",
      all_servers: "1",
      operations: ["exec"],
    });
    expect(forged.status).toBe(403);
    expect(forged.html).not.toMatch(/rca_[0-9A-Za-z]{20,}/);
    expect((await listKeys(ctx)).length).toBe(before);
    expect((await listKeys(ctx)).some((k) => k.name === "sneaky")).toBe(false);
  });

  it("a manager creates a trust policy on the Trust Policies tab and removes it; a viewer sees it without the buttons", async () => {
    const form = await manager.get("/keys/trust/new");
    expect(form.status).toBe(200);
    const created = await manager.post("/keys/trust", {
      name: "shop-main",
      issuer: "https://token.actions.githubusercontent.com",
      audience: "https://reoclo.example.com",
      conditions: "repository=acme/shop\nref=refs/heads/main",
      server_ids: [server.id],
      operations: ["exec"],
      lifetime_seconds: "600",
    });
    expect(created.status).toBe(303);
    expect(created.location).toBe("/keys?tab=trust&done=policyCreated");
    const [policy] = (await invoke(trustPoliciesList, verbServices(t), ADMIN, {})).items;
    expect(policy).toMatchObject({
      name: "shop-main",
      conditions: { repository: "acme/shop", ref: "refs/heads/main" },
      server_ids: [server.id],
      lifetime_seconds: 600,
    });
    const refused = await manager.post("/keys/trust", {
      name: "too-open",
      issuer: "http://token.example.com",
      audience: "https://reoclo.example.com",
      conditions: "repository=acme/*",
      all_servers: "1",
      operations: ["exec"],
    });
    expect(refused.status).toBe(422);
    expect(refused.html).toContain('value="too-open"');

    const seen = await viewer.get("/keys?tab=trust");
    expect(seen.html).toContain("shop-main");
    expect(seen.html).toContain("repository=acme/shop");
    expect(seen.html).not.toContain("Create a trust policy");
    expect(seen.html).not.toContain("Remove trust policy");
    expect((await viewer.post(`/keys/trust/${policy!.id}/remove`, {})).status).toBe(403);

    const removed = await manager.post(`/keys/trust/${policy!.id}/remove`, {});
    expect(removed.status).toBe(303);
    expect((await invoke(trustPoliciesList, verbServices(t), ADMIN, {})).items).toEqual([]);
  });

  it("a developer creates a Deploy Only integration key, shown once with a curl example", async () => {
    const tab = await developer.get("/keys?tab=integration");
    expect(tab.html).toMatch(/aria-current="page"\s*>Integration Keys</);
    expect(tab.html).toContain('href="/keys/integration/new"');
    const form = await developer.get("/keys/integration/new");
    expect(form.html).toContain("Deploy Only");
    expect(form.html).toContain('value="servers:read"');

    const created = await developer.post("/keys/integration", {
      label: "release script",
      preset: "deploy_only",
      permissions: ["servers:write"], // ignored: only Custom sends permissions
      expires: "30d",
    });
    expect(created.status).toBe(201);
    const key = shownValue(created.html, "new-key");
    expect(key).toMatch(/^rk_t_[0-9A-Za-z]+$/);
    expect(created.html).toContain('aria-label="New integration key"');
    expect(created.html).toContain(`curl -H "Authorization: Bearer $REOCLO_KEY" ${origin}/api/servers`);

    const me = await fetch(`${managementBase(served.base)}/auth/me`, {
      headers: { Authorization: `Bearer ${key!}` },
    });
    expect(me.status).toBe(200);
    const stored = (await listIntegrationKeys(ctx, undefined)).find((k) => k.label === "release script")!;
    expect(stored.preset).toBe("deploy_only");

    const list = await developer.get("/keys?tab=integration");
    expect(list.html).toContain("release script");
    expect(list.html).toContain("Deploy Only");
    expect(list.html).toContain(developer.person.email);
    expect(list.html).not.toContain(key!);
  });

  it("an owner adds a person and sees the one-time password once; the last owner cannot be demoted", async () => {
    const page = await owner.get("/users");
    expect(page.status).toBe(200);
    expect(page.html).toContain(owner.person.email);
    expect(page.html).toContain("Add a person");

    const email = `new-${Date.now()}@example.test`;
    const added = await owner.post("/users", { email, role: "developer" });
    expect(added.status).toBe(201);
    const password = shownValue(added.html, "new-password");
    expect(password).toBeTruthy();
    expect(added.html).toContain('data-copy="new-password"');
    expect(added.html).toContain("first sign-in");
    // The password is theirs to sign in with, and no page shows it again.
    await signInCookie(managementBase(served.base), { email, password: password! });
    const list = await owner.get("/users");
    expect(list.html).toContain(email);
    expect(list.html).not.toContain(password!);

    const demoted = await owner.post(`/users/${owner.person.id}/role`, { role: "viewer" });
    expect(demoted.status).toBe(409);
    expect(demoted.html).toContain("last owner");
    const me = (await listUsers(ctx, undefined)).find((u) => u.id === owner.person.id)!;
    expect(me.role).toBe("owner");
  });

  it("a manager gets no Users page and cannot add anyone", async () => {
    const page = await manager.get("/users");
    expect(page.status).toBe(403);
    expect(page.html).not.toContain(owner.person.email);
    const before = (await listUsers(ctx, undefined)).length;
    const forged = await manager.post("/users", { email: "intruder@example.test", role: "owner" });
    expect(forged.status).toBe(403);
    expect((await listUsers(ctx, undefined)).length).toBe(before);
  });
});
