// The dashboard's Registry credentials and Applications pages (spec §11), through the real service
// over HTTP as a browser posts its forms: a manager adds a credential and an application and sets a
// variable, and no page ever holds the password or the value; a developer deploys (the page goes
// to the deploy's operation, the history links it) but sees no add, edit or remove control; a
// viewer reads the lists with no write form, and a forged post is refused and changes nothing.
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applicationEnv } from "../src/applications/env";
import type { ServiceContext } from "../src/context";
import { applications, registryCredentials } from "../src/db/schema";
import { SecretBox } from "../src/secrets/secret-box";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { dashboardSession, type DashboardSession } from "./fixtures/dashboard";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { seedServer } from "./fixtures/entities";

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
/** Write forms of a page, the sign-out form of the header aside. */
const writeForms = (page: string) =>
  [...page.matchAll(/<form[^>]*method="post"[^>]*action="([^"]+)"/g)]
    .map((m) => m[1])
    .filter((action) => action !== "/sign-out");

describe("the dashboard's registry credentials and applications pages", () => {
  let db: TestDatabase;
  let ctx: ServiceContext;
  let t: TestApp;
  let served: ServedApp;
  let manager: DashboardSession;
  let developer: DashboardSession;
  let viewer: DashboardSession;
  let serverName: string;
  let serverId: string;
  let appId: string;

  const password = `registry-pw-${randomBytes(8).toString("hex")}`;
  const firstValue = `first-value-${randomBytes(8).toString("hex")}`;
  const envValue = `env-value-${randomBytes(8).toString("hex")}`;

  const credentialRows = () => ctx.db.select().from(registryCredentials);
  const appRow = async (id: string) =>
    (await ctx.db.select().from(applications).where(eq(applications.id, id)))[0];

  beforeAll(async () => {
    const secrets = new SecretBox(randomBytes(32));
    db = await createTestDatabase("postgres");
    ctx = testContext(db, secrets);
    t = createTestApp(db, { secrets });
    served = await serveTestApp(t);
    const origin = new URL(served.base).origin;
    const server = await seedServer(ctx);
    [serverId, serverName] = [server.id, server.name];
    [manager, developer, viewer] = await Promise.all([
      dashboardSession(t, origin, "manager"),
      dashboardSession(t, origin, "developer"),
      dashboardSession(t, origin, "viewer"),
    ]);
  });
  afterAll(async () => {
    await served?.close();
    await t?.close();
    await db?.close();
  });

  it("lets a manager add a credential through the form; the list shows it and no page holds the password", async () => {
    const empty = await manager.get("/credentials");
    expect(empty.status).toBe(200);
    expect(empty.html).toContain("No registry credentials yet");
    expect(empty.html).toContain("docker-auth");
    expect(empty.html).toContain(">Add credential</button>");

    const added = await manager.post("/credentials", {
      name: "ghcr-bot",
      type: "ghcr",
      registry_url: "ghcr.io",
      username: "octo-bot",
      password,
    });
    expect(added.status).toBe(303);
    expect(added.location).toBe("/credentials?done=added");

    const list = await manager.get(added.location!);
    expect(list.html).toContain("Credential added.");
    expect(list.html).toContain("ghcr-bot");
    expect(list.html).toContain("ghcr.io");
    expect(list.html).toContain("octo-bot");
    expect(list.html).toContain('data-confirm="Remove the credential ghcr-bot?');
    const [row] = await credentialRows();
    expect(row!.name).toBe("ghcr-bot");

    // A refused add (the name is taken) shows the form again with what was typed, but no password.
    const taken = await manager.post("/credentials", {
      name: "ghcr-bot",
      type: "ghcr",
      registry_url: "ghcr.io",
      username: "someone-else",
      password,
    });
    expect(taken.status).toBe(409);
    expect(taken.html).toContain('role="alert"');
    expect(taken.html).toContain('value="someone-else"');

    // Editing with the password left empty keeps the sealed one; the edit page never holds it.
    const edit = await manager.get(`/credentials/${row!.id}`);
    expect(edit.html).toContain("Leave empty to keep the current one.");
    const saved = await manager.post(`/credentials/${row!.id}`, {
      name: "ghcr-bot",
      registry_url: "ghcr.io/acme",
      username: "octo-bot",
      password: "",
    });
    expect(saved.status).toBe(303);
    const [after] = await credentialRows();
    expect(after!.registryUrl).toBe("ghcr.io/acme");
    expect(after!.passwordEnc).toEqual(row!.passwordEnc);

    for (const page of [empty, added, list, taken, edit, saved, await manager.get("/credentials")])
      expect(page.html).not.toContain(password);
  });

  it("lets a manager add an application and set a variable; the pages show its name, never a value", async () => {
    const form = await manager.get("/applications/new");
    expect(form.html).toMatch(/<label for="app-server">Server<\/label>\s*<select id="app-server"/);
    expect(form.html).toContain(`<option value="${serverId}"`);

    const added = await manager.post("/applications", {
      name: "web",
      server_id: serverId,
      working_directory: "/srv/web",
      deploy_script: "echo deploying $REOCLO_COMMIT_REF",
      restart_script: "",
      env: `FIRST=${firstValue}`,
    });
    expect(added.status).toBe(303);
    expect(added.location).toMatch(new RegExp(`^/applications/(${UUID})\\?done=added$`));
    appId = /\/applications\/([^?]+)/.exec(added.location!)![1]!;

    const setVar = await manager.post(`/applications/${appId}/env`, { name: "API_TOKEN", value: envValue });
    expect(setVar.status).toBe(303);
    // A refused name comes back; its value does not.
    const refused = await manager.post(`/applications/${appId}/env`, { name: "1BAD", value: envValue });
    expect(refused.status).toBe(422);
    expect(refused.html).toContain('value="1BAD"');

    const shown = await manager.get(`/applications/${appId}`);
    expect(shown.html).toContain("web");
    expect(shown.html).toContain(serverName);
    expect(shown.html).toContain("<code>API_TOKEN</code>");
    expect(shown.html).toContain("<code>FIRST</code>");
    expect(shown.html).toContain(">Save variable</button>");
    expect(shown.html).toContain(">Edit application</a>");
    expect(shown.html).toContain(">Remove application</button>");
    for (const page of [added, setVar, refused, shown, await manager.get("/applications")]) {
      expect(page.html).not.toContain(envValue);
      expect(page.html).not.toContain(firstValue);
    }
    // Stored, encrypted, for the scripts.
    expect(applicationEnv(ctx, (await appRow(appId))!)).toEqual({ FIRST: firstValue, API_TOKEN: envValue });

    const list = await manager.get("/applications");
    expect(list.html).toContain(`<a href="/applications/${appId}">web</a>`);
    expect(list.html).toContain("never deployed");

    const edited = await manager.post(`/applications/${appId}/edit`, {
      name: "web",
      server_id: serverId,
      working_directory: "/srv/web-2",
      deploy_script: "echo deploying $REOCLO_COMMIT_REF",
      restart_script: "",
    });
    expect(edited.status).toBe(303);
    expect((await appRow(appId))!.workingDirectory).toBe("/srv/web-2");
  });

  it("lets a developer deploy, going to the deploy's operation, with no add, edit or remove control", async () => {
    const shown = await developer.get(`/applications/${appId}`);
    expect(shown.status).toBe(200);
    expect(shown.html).toContain(">Deploy</button>");
    expect(shown.html).toContain("<code>API_TOKEN</code>");
    expect(writeForms(shown.html)).toEqual([`/applications/${appId}/deploy`]);
    expect(shown.html).not.toContain("Edit application");

    const deployed = await developer.post(`/applications/${appId}/deploy`, { commit_ref: "main" });
    expect(deployed.status).toBe(303);
    const opId = new RegExp(`^/operations/(${UUID})$`).exec(deployed.location ?? "")?.[1];
    expect(opId).toBeDefined();

    const history = await developer.get(`/applications/${appId}`);
    expect(history.html).toContain(`href="/operations/${opId}"`);
    expect(history.html).toContain("<code>main</code>");
    expect(history.html).toContain(developer.person.email);

    for (const path of ["/applications", "/credentials"]) {
      const list = await developer.get(path);
      expect(list.status).toBe(200);
      expect(writeForms(list.html)).toEqual([]);
      expect(list.html).not.toContain("Add an application");
    }
  });

  it("shows a viewer the lists with no write form, and refuses their forged posts with nothing changed", async () => {
    const creds = await viewer.get("/credentials");
    expect(creds.html).toContain("ghcr-bot");
    const apps = await viewer.get("/applications");
    expect(apps.html).toContain(`<a href="/applications/${appId}">web</a>`);
    const shown = await viewer.get(`/applications/${appId}`);
    expect(shown.html).toContain("<code>API_TOKEN</code>");
    expect(shown.html).toContain("Deployment history");
    for (const page of [creds, apps, shown]) expect(writeForms(page.html)).toEqual([]);
    expect((await viewer.get("/applications/new")).status).toBe(403);

    const before = { creds: await credentialRows(), app: await appRow(appId) };
    const forged = [
      await viewer.post("/credentials", {
        name: "viewer-cred",
        type: "generic",
        registry_url: "registry.example.com",
        username: "v",
        password: "v-password",
      }),
      await viewer.post(`/credentials/${before.creds[0]!.id}/remove`, {}),
      await viewer.post(`/applications/${appId}/env`, { name: "API_TOKEN", value: "overwritten" }),
      await viewer.post(`/applications/${appId}/remove`, {}),
      await viewer.post(`/applications/${appId}/deploy`, {}),
      // From another site: refused before any verb runs.
      await manager.post(`/applications/${appId}/remove`, {}, { origin: "http://evil.example" }),
    ];
    for (const page of forged) expect(page.status).toBe(403);
    expect(await credentialRows()).toEqual(before.creds);
    expect(await appRow(appId)).toEqual(before.app);
  });
});
