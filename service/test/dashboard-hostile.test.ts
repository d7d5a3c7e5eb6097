// The dashboard (spec §11) against hostile input, over real HTTP and a real PostgreSQL, one service
// for the file: odd ids, query strings and form bodies never answer a 500; refused writes (a role
// without the permission, a forged or cross-site post, another organisation's id) store nothing;
// names holding markup are shown escaped on every page that shows them; sign-in's `next` never
// leads off the dashboard; and the accessibility details a page test can see (the quiet live log,
// copy buttons that say what they copy, errors that name their fields).
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceContext } from "../src/context";
import {
  applications,
  automationKeys,
  integrationKeys,
  registryCredentials,
  servers,
  users,
} from "../src/db/schema";
import { SecretBox } from "../src/secrets/secret-box";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { dashboardSession, type DashboardPage, type DashboardSession } from "./fixtures/dashboard";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { seedOrg, seedServer } from "./fixtures/entities";

const SCRIPT = "<script>alert(1)</script>";
const IMG = `"><img src=x onerror=alert(1)>`;
const XSS = `${SCRIPT}${IMG}`;
/** What a payload must never be in a page: markup the browser would parse. */
const unescaped = (page: string) =>
  page.includes("<script>alert") || page.includes("<img src=x") || page.includes(`"><img`);
/** How the payloads look escaped (hono/html: & < > " '). */
const ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;";
const ESCAPED_IMG = "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;";

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

describe("the dashboard against hostile input", () => {
  let db: TestDatabase;
  let ctx: ServiceContext;
  let t: TestApp;
  let served: ServedApp;
  let origin: string;
  let owner: DashboardSession;
  let viewer: DashboardSession;
  let developer: DashboardSession;
  let serverId: string;
  let foreignServerId: string;

  /** Rows of every table a dashboard write can change, to compare before and after. */
  const snapshot = async () => {
    const [s, a, c, k, i, u] = await Promise.all([
      ctx.db.select().from(servers),
      ctx.db.select().from(applications),
      ctx.db.select().from(registryCredentials),
      ctx.db.select().from(automationKeys),
      ctx.db.select().from(integrationKeys),
      ctx.db.select().from(users),
    ]);
    return JSON.stringify({ s, a, c, k, i, u });
  };

  beforeAll(async () => {
    const secrets = new SecretBox(randomBytes(32));
    db = await createTestDatabase("postgres");
    ctx = testContext(db, secrets);
    t = createTestApp(db, { secrets });
    served = await serveTestApp(t);
    origin = new URL(served.base).origin;
    // The service function the servers.add verb calls, without a host to log in to.
    serverId = (await seedServer(ctx, undefined, `srv${XSS}`)).id;
    foreignServerId = (await seedServer(ctx, (await seedOrg(ctx)).name)).id;
    [owner, viewer, developer] = await Promise.all([
      dashboardSession(t, origin, "owner"),
      dashboardSession(t, origin, "viewer"),
      dashboardSession(t, origin, "developer"),
    ]);
  });
  afterAll(async () => {
    await served?.close();
    await t?.close();
    await db?.close();
  });

  const never500 = (p: DashboardPage, what: string) => {
    expect(p.status, `${what}: ${p.html.slice(0, 300)}`).toBeLessThan(500);
    if (p.status !== 303) expect(p.headers.get("content-type"), what).toMatch(/^text\/html/);
  };

  const ODD_IDS = [
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    "%00",
    "%E0%A4%A",
    "'%22%3E%3Cscript%3E",
    "x".repeat(3000),
  ];

  it("answers odd ids and query strings with a page, never a 500", async () => {
    const paths: string[] = [];
    for (const id of ODD_IDS)
      for (const prefix of ["servers", "keys/automation", "credentials", "applications", "operations"])
        paths.push(`/${prefix}/${id}`);
    for (const id of ODD_IDS) paths.push(`/applications/${id}/edit`);
    const queries = [
      "cursor=abc",
      "cursor=%00",
      "cursor=eyJ4IjoxfQ",
      `cursor=${"x".repeat(3000)}`,
      "limit=abc",
      "limit=-1",
      "limit=1e400",
      "limit=1.5",
      "since=abc",
      "since=2025-13-45",
      "status=zzz",
      "outcome=zzz",
      "server=abc",
      "key=abc",
      "user=abc",
      "actor=%00",
      "application=abc",
      "status=running&status=zzz",
      `run_id=${"x".repeat(3000)}`,
    ];
    for (const q of queries) paths.push(`/operations?${q}`, `/audit?${q}`);
    paths.push(
      `/applications/${serverId}?cursor=abc`,
      "/servers/new?port=abc&name=%00",
      "/keys?tab[]=x",
      "/users?done=__proto__",
      "/servers?done=constructor",
      "/sign-in?next=%0D%0A",
      `/servers/x/${encodeURIComponent(XSS)}`,
    );
    for (const who of [owner, viewer])
      for (const path of paths) never500(await who.get(path), `GET ${path} as ${who.person.role}`);
  });

  it("answers odd form bodies with a page, never a 500, and stores nothing it refused", async () => {
    const before = await snapshot();
    const posts: string[] = [
      "/servers/new/scan",
      "/servers",
      "/keys/automation",
      "/keys/integration",
      "/credentials",
      "/applications",
      "/users",
      "/account/password",
    ];
    for (const id of ODD_IDS)
      posts.push(
        `/servers/${id}`,
        `/servers/${id}/test`,
        `/servers/${id}/host-key/scan`,
        `/servers/${id}/host-key`,
        `/servers/${id}/remove`,
        `/keys/automation/${id}`,
        `/keys/automation/${id}/revoke`,
        `/keys/integration/${id}/revoke`,
        `/credentials/${id}`,
        `/credentials/${id}/remove`,
        `/applications/${id}/edit`,
        `/applications/${id}/remove`,
        `/applications/${id}/deploy`,
        `/applications/${id}/env`,
        `/applications/${id}/env/remove`,
        `/operations/${id}/cancel`,
        `/users/${id}/role`,
        `/users/${id}/remove`,
      );
    const bodies: Record<string, string | string[]>[] = [
      {},
      { name: ["a", "b"], host: ["a", "b"], port: ["1", "2"], email: ["a@b.example", "c@d.example"] },
      { name: "x", host: "h", user: "u", port: "abc", role: "god", fingerprint_confirmed: "yes" },
      { port: "1e400", rate_limit_per_minute: "abc", rate_limit_per_hour: "-5", expires: "zzz" },
      { name: "x".repeat(20_000) },
      // Own fields with these names (a literal's `__proto__:` would set its prototype instead).
      { ["__proto__"]: ["a", "b"], constructor: "x", toString: "y", hasOwnProperty: "z" },
    ];
    for (const path of posts)
      for (const body of bodies)
        never500(await owner.post(path, body), `POST ${path} ${JSON.stringify(body)}`);
    expect(await snapshot()).toBe(before);
  });

  it("refuses custom permissions named after Object's own properties (once a 500)", async () => {
    const before = await snapshot();
    for (const permissions of [["constructor:read"], ["__proto__:read"], ["toString:read", "servers:read"]]) {
      const p = await owner.post("/keys/integration", {
        label: "odd",
        preset: "custom",
        permissions,
        expires: "30d",
      });
      never500(p, `permissions ${permissions.join(",")}`);
      expect(p.status).toBe(422);
      expect(p.html).toContain('id="form-error"');
    }
    expect(await snapshot()).toBe(before);
  });

  it("changes nothing for a viewer's post, a forged post or a cross-site post", async () => {
    const before = await snapshot();
    const writes: [string, Record<string, string | string[]>][] = [
      [
        "/credentials",
        { name: "c", type: "generic", registry_url: "r.example", username: "u", password: "pw" },
      ],
      [
        "/applications",
        { name: "a", server_id: serverId, working_directory: "/srv/a", deploy_script: "true", env: "" },
      ],
      ["/keys/automation", { name: "k", operations: ["exec"], all_servers: "1" }],
      ["/keys/integration", { label: "i", preset: "read_only", expires: "30d" }],
      ["/users", { email: `new-${randomBytes(3).toString("hex")}@example.com`, role: "owner" }],
      [`/servers/${serverId}`, { name: "renamed" }],
      [`/servers/${serverId}/remove`, {}],
      [`/users/${owner.person.id}/role`, { role: "viewer" }],
    ];
    for (const [path, fields] of writes) {
      const asViewer = await viewer.post(path, fields);
      never500(asViewer, `viewer POST ${path}`);
      expect(asViewer.status, `viewer POST ${path}`).toBe(403);
      const forged = await owner.post(path, fields, { csrf: "forged" });
      expect(forged.status, `forged POST ${path}`).toBe(403);
      const noToken = await owner.post(path, fields, { csrf: null });
      expect(noToken.status, `tokenless POST ${path}`).toBe(403);
      const crossSite = await owner.post(path, fields, { origin: "https://evil.example" });
      expect(crossSite.status, `cross-site POST ${path}`).toBe(403);
    }
    // A developer may read servers but not change them.
    expect((await developer.post(`/servers/${serverId}/remove`, {})).status).toBe(403);
    expect(await snapshot()).toBe(before);
  });

  it("never reaches another organisation's server through an id in the URL", async () => {
    const before = await snapshot();
    expect((await owner.get(`/servers/${foreignServerId}`)).status).toBe(404);
    for (const path of [`/servers/${foreignServerId}`, `/servers/${foreignServerId}/remove`]) {
      const p = await owner.post(path, { name: "taken" });
      expect(p.status, path).toBe(404);
    }
    const listed = await owner.get("/servers");
    expect(listed.html).not.toContain(foreignServerId);
    expect(await snapshot()).toBe(before);
  });

  it("shows names holding markup escaped on every page that shows them", async () => {
    const cred = await owner.post("/credentials", {
      name: `cred${XSS}`,
      type: "generic",
      registry_url: "registry.example",
      username: `user${XSS}`,
      password: "registry-password",
    });
    expect(cred.status).toBe(303);
    const added = await owner.post("/applications", {
      name: `app${XSS}`,
      server_id: serverId,
      working_directory: `/srv/${XSS}`,
      deploy_script: `echo ${XSS}`,
      restart_script: `echo ${XSS}`,
      env: "",
    });
    expect(added.status).toBe(303);
    const appId = UUID.exec(added.location ?? "")?.[0];
    expect(appId).toBeDefined();
    const key = await owner.post("/keys/automation", {
      name: `key${XSS}`,
      operations: ["exec"],
      server_ids: [serverId],
    });
    expect(key.status).toBe(201);
    expect(unescaped(key.html)).toBe(false);
    expect(key.html).toContain(ESCAPED_SCRIPT);
    const ik = await owner.post("/keys/integration", {
      label: `label${XSS}`,
      preset: "read_only",
      expires: "30d",
    });
    expect(ik.status).toBe(201);
    expect(unescaped(ik.html)).toBe(false);
    // A deploy: the operation's page names the application and the server.
    const deployed = await owner.post(`/applications/${appId}/deploy`, { commit_ref: "main" });
    expect(deployed.status).toBe(303);
    const opPath = deployed.location!;

    const keyId = /href="\/keys\/automation\/([0-9a-f-]{36})"/.exec((await owner.get("/keys")).html)![1]!;
    const credId = /href="\/credentials\/([0-9a-f-]{36})"/.exec((await owner.get("/credentials")).html)![1]!;
    const pages = [
      "/servers",
      `/servers/${serverId}`,
      "/keys",
      "/keys?tab=integration",
      `/keys/automation/${keyId}`,
      "/keys/automation/new",
      "/credentials",
      `/credentials/${credId}`,
      "/applications",
      "/applications/new",
      `/applications/${appId}`,
      `/applications/${appId}/edit`,
      "/operations",
      opPath,
      "/audit",
      `/servers/new?name=${encodeURIComponent(XSS)}&host=${encodeURIComponent(XSS)}`,
    ];
    for (const who of [owner, viewer])
      for (const path of pages) {
        const p = await who.get(path);
        // The viewer is refused the create forms (403), with the page around the refusal.
        expect(p.status, `${who.person.role} ${path}`).toBeLessThan(who === owner ? 400 : 500);
        expect(unescaped(p.html), `${who.person.role} ${path}`).toBe(false);
      }
    // Each page shows the names (escaped), so the checks above did look at them.
    for (const path of ["/servers", "/credentials", "/applications", `/applications/${appId}`, opPath]) {
      const p = await owner.get(path);
      expect(p.html, path).toContain(ESCAPED_SCRIPT);
      expect(p.html, path).toContain(ESCAPED_IMG);
    }
    // The remove confirmations carry the names in attributes, quoted and escaped.
    expect((await owner.get(`/applications/${appId}`)).html).toContain(
      `data-confirm="Remove the application app${ESCAPED_SCRIPT}${ESCAPED_IMG}?`,
    );
  });

  describe("sign-in", () => {
    const signIn = (fields: Record<string, string>, sentOrigin: string | null = origin) =>
      fetch(`${origin}/sign-in`, {
        method: "POST",
        body: new URLSearchParams({ email: owner.person.email, password: owner.person.password, ...fields }),
        redirect: "manual",
        headers: {
          "Content-Type": "application/x-www-form-urlencoded",
          ...(sentOrigin === null ? {} : { Origin: sentOrigin }),
        },
      });

    it("goes back only to a path of the dashboard, whatever `next` holds", async () => {
      const cases: [string, string][] = [
        ["/servers?tab=1", "/servers?tab=1"],
        ["//evil.example", "/"],
        ["/\\evil.example", "/"],
        // A browser drops tabs and line breaks from a URL: this was `//evil.example` (an open redirect).
        ["/\t/evil.example", "/"],
        ["/\n/evil.example", "/"],
        ["/.//evil.example", "/"],
        ["https://evil.example/", "/"],
        ["javascript:alert(1)", "/"],
        // Control characters in a Location header were a 500.
        ["/\r\nX-Evil: 1", "/X-Evil:%201"],
        ["/\u0000x", "/%00x"],
        ["/café", "/caf%C3%A9"],
      ];
      for (const [next, location] of cases) {
        const res = await signIn({ next });
        expect(res.status, JSON.stringify(next)).toBe(303);
        expect(res.headers.get("location"), JSON.stringify(next)).toBe(location);
      }
    });

    it("refuses a sign-in posted from another site with a page and no session", async () => {
      for (const sentOrigin of ["https://evil.example", "null"]) {
        const res = await signIn({ next: "/" }, sentOrigin);
        expect(res.status).toBe(403);
        expect(res.headers.get("content-type")).toMatch(/^text\/html/);
        expect(res.headers.getSetCookie().some((c) => c.startsWith("reoclo_session="))).toBe(false);
        expect(await res.text()).toContain('role="alert"');
      }
    });
  });

  describe("accessibility details", () => {
    it("keeps the live log quiet: only the end is announced", async () => {
      const ops = await owner.get("/operations");
      const opId = /href="\/operations\/([0-9a-f-]{36})"/.exec(ops.html)?.[1];
      expect(opId).toBeDefined();
      const p = await owner.get(`/operations/${opId}`);
      expect(p.html).toMatch(/<pre[^>]*role="log"[^>]*aria-live="off"/s);
    });

    it("names what a copy button copies", async () => {
      const p = await owner.get(`/servers/${serverId}`);
      expect(p.html).toMatch(
        /data-copy="server-id" hidden>\s*Copy<span class="visually-hidden"> the server's id<\/span>/,
      );
      const key = await owner.post("/keys/integration", {
        label: "copy me",
        preset: "read_only",
        expires: "30d",
      });
      expect(key.html).toMatch(/Copy<span class="visually-hidden"> the new integration key<\/span>/);
    });

    it("names the fields of a refused form so the page's script can mark them", async () => {
      const p = await owner.post(`/servers/${serverId}`, { port: "abc" });
      expect(p.status).toBe(422);
      expect(p.html).toMatch(/<li data-field="port">/);
      expect(p.html).toContain('name="port"');
    });
  });
});
