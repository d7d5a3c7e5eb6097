import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import type { Server } from "node:http";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PRESET_ACLS, type Acl } from "@reoclo/protocol";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { listenOnLoopback } from "@reoclo/testbed/net";
import packageJson from "../package.json" with { type: "json" };
import { runAdmin, type AdminOptions } from "../src/admin/cli";
import { createHttpServer } from "../src/http/server";
import { generateAutomationKey, generateIntegrationKey } from "../src/keys/key-format";
import { resolveOrg } from "../src/orgs/orgs";
import { addApplication } from "../src/applications/applications";
import { credentialSecretContext } from "../src/credentials/credentials";
import { registryCredentials } from "../src/db/schema";
import { SecretBox } from "../src/secrets/secret-box";
import { createTestApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, type TestDatabase } from "./fixtures/db";
import { seedServer } from "./fixtures/entities";
import { seedIntegrationKey } from "./fixtures/principals";
import { runAdminCli } from "./fixtures/processes";

// reoclo-admin as a command line (issue 16): commander's conventions, one JSON value with --json,
// servers named by id or name, and the remote mode with an integration key. Most of it runs the
// command line in this process (runAdmin, the bundle's entry, from the current sources); one test
// runs the production bundle built fresh, as a user's shell would.

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function admin(
  args: string[],
  env: Record<string, string> = {},
  opts: AdminOptions & { stdin?: string } = {},
): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const code = await runAdmin(
    args,
    {
      env,
      stdout: (t) => void (stdout += t),
      stderr: (t) => void (stderr += t),
      readStdin: () => Promise.resolve(opts.stdin ?? ""),
    },
    opts,
  );
  return { code, stdout, stderr };
}

const json = <T>(text: string): T => JSON.parse(text) as T;

describe("reoclo-admin follows command-line conventions", () => {
  it("prints its version with --version, from the production bundle built from these sources", async () => {
    const r = await runAdminCli(["--version"], {});
    expect(r).toEqual({ code: 0, stdout: `${packageJson.version}\n`, stderr: "" });
    expect(await admin(["-V"])).toEqual({ code: 0, stdout: `${packageJson.version}\n`, stderr: "" });
  });

  it("has help for each command, with its options and the global ones, on stdout", async () => {
    const r = await admin(["servers", "pin", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("Usage: reoclo-admin servers pin [options] <server>");
    expect(r.stdout).toContain("the server, by id or by its name");
    for (const flag of [
      "--host-key-fingerprint <fingerprint>",
      "--trust-on-first-use",
      "--org <org>",
      "--json",
    ])
      expect(r.stdout).toContain(flag);
  });

  it("without a command, prints the commands on stderr and exits 2", async () => {
    const r = await admin([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    for (const group of ["servers", "keys", "users", "integration-keys", "operations", "audit"])
      expect(r.stderr).toContain(`  ${group}`);
  });

  it.each([
    ["a mistyped group", ["servres", "list"], "unknown command 'servres'\n(Did you mean servers?)"],
    ["a mistyped command", ["servers", "lsit"], "unknown command 'lsit'\n(Did you mean list?)"],
    [
      "a mistyped option",
      ["keys", "create", "--name", "ci", "--operations", "exec", "--al-servers"],
      "unknown option '--al-servers'\n(Did you mean --all-servers?)",
    ],
    ["an unknown option", ["keys", "list", "--bogus"], "unknown option '--bogus'"],
    [
      "a missing required option",
      ["users", "add", "--email", "a@example.com"],
      "required option '--role <role>' not specified",
    ],
    [
      "a value that is not a number",
      ["servers", "list", "--limit", "ten"],
      "option '--limit <n>' argument 'ten' is invalid. It must be a whole number.",
    ],
    [
      "a value outside its choices",
      ["users", "add", "--email", "a@example.com", "--role", "admin"],
      "option '--role <role>' argument 'admin' is invalid. Allowed choices are viewer, developer, manager, owner.",
    ],
    ["a missing argument", ["servers", "show"], "missing required argument 'server'"],
  ])("names %s in its error, says how the command is called, and exits 2", async (_what, args, message) => {
    const r = await admin(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`reoclo-admin: ${message}`);
    expect(r.stderr).toMatch(/\nusage: reoclo-admin .*\n\(reoclo-admin.* --help says more\)\n$/);
  });

  it("names an unknown option before a missing required one", async () => {
    const r = await admin(["servers", "add", "--nme", "web"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--nme'\n(Did you mean --name?)");
    expect(r.stderr).not.toContain("required option");
  });

  it("lets only one option read standard input", async () => {
    const r = await admin(
      [
        "credentials",
        "update",
        "00000000-0000-4000-8000-000000000000",
        "--password-stdin",
        "--api-key-stdin",
      ],
      { REOCLO_URL: "http://127.0.0.1:9" },
      { stdin: "secret\n" },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "reoclo-admin: --api-key-stdin and --password-stdin both read standard input: give only one\n",
    );
  });
});

describe("reoclo-admin in process on PostgreSQL", () => {
  let db: TestDatabase;
  let t: TestApp;
  let env: Record<string, string>;
  let server: { id: string; name: string };
  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    t = createTestApp(db);
    env = { DATABASE_URL: db.url!, REOCLO_MASTER_KEY: randomBytes(32).toString("hex") };
    server = await seedServer(t.service.svc.ctx);
  });
  afterAll(async () => {
    await t?.close();
    await db?.close();
  });

  it.each([
    ["orgs", "list"],
    ["servers", "list"],
    ["keys", "list"],
    ["credentials", "list"],
    ["apps", "list"],
    ["audit", "list"],
  ])("with --json, %s %s prints one JSON array and nothing else", async (...command) => {
    const r = await admin([...command, "--json"], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(Array.isArray(JSON.parse(r.stdout))).toBe(true);
  });

  it("takes a server by its name wherever it takes its id", async () => {
    const shown = await admin(["servers", "show", server.name, "--json"], env);
    expect(shown.code).toBe(0);
    expect(json<{ id: string }>(shown.stdout).id).toBe(server.id);
    const key = await admin(
      ["keys", "create", "--name", "by-name", "--operations", "exec", "--servers", server.name, "--json"],
      env,
    );
    expect(key.stderr).toBe("");
    expect(json<{ servers: string[] }>(key.stdout).servers).toEqual([server.id]);
  });

  it("says when no server has the name given, and changes nothing", async () => {
    const r = await admin(
      ["keys", "create", "--name", "nope", "--operations", "exec", "--servers", "nope"],
      env,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'reoclo-admin: not_found: No server is named "nope": give its id or its name ("reoclo-admin servers list" shows both).\n',
    );
    const keys = json<{ name: string }[]>((await admin(["keys", "list", "--json"], env)).stdout);
    expect(keys.map((k) => k.name)).not.toContain("nope");
  });

  it("changes servers, keys, credentials and applications in place, keeping their ids and what was not named", async () => {
    const ok = async (args: string[], stdin?: string) => {
      const r = await admin([...args, "--json"], env, stdin === undefined ? {} : { stdin });
      expect(r.stderr, args.join(" ")).toBe("");
      expect(r.code, args.join(" ")).toBe(0);
      return json<Record<string, unknown>>(r.stdout);
    };
    const before = await ok(["servers", "show", server.id]);
    const renamed = await ok(["servers", "update", server.name, "--name", `${server.name}-b`]);
    expect(renamed).toMatchObject({
      id: server.id,
      name: `${server.name}-b`,
      port: before.port,
      user: before.user,
    });
    const repinned = await ok([
      "servers",
      "pin",
      server.id,
      "--host-key-fingerprint",
      "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
      "--skip-host-key-check",
    ]);
    expect(repinned).toMatchObject({
      id: server.id,
      host_key_fingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
    });

    const key = await ok([
      "keys",
      "create",
      "--name",
      "ci",
      "--operations",
      "exec",
      "--servers",
      server.id,
      "--rate-limit-per-minute",
      "7",
    ]);
    const updated = await ok([
      "keys",
      "update",
      String(key.id),
      "--name",
      "ci-2",
      "--operations",
      "exec,deploy",
    ]);
    expect(updated).toMatchObject({
      id: key.id,
      name: "ci-2",
      operations: ["exec", "deploy"],
      rate_limit_per_minute: 7,
    });
    expect(updated.key).toBeUndefined();

    const cred = await ok(
      [
        "credentials",
        "add",
        "--name",
        "ghcr",
        "--type",
        "ghcr",
        "--registry-url",
        "ghcr.io",
        "--username",
        "bot",
        "--password-stdin",
      ],
      "first-password\n",
    );
    const credUpdated = await ok(
      ["credentials", "update", String(cred.id), "--username", "bot-2", "--password-stdin"],
      "second-password\n",
    );
    expect(credUpdated).toMatchObject({ id: cred.id, username: "bot-2", registry_url: "ghcr.io" });
    expect(JSON.stringify(credUpdated)).not.toContain("second-password");
    // What was stored, not only what was printed: the new password, sealed under the master key.
    const [stored] = await t.service.svc.ctx.db
      .select()
      .from(registryCredentials)
      .where(eq(registryCredentials.id, String(cred.id)));
    const box = new SecretBox(Buffer.from(env.REOCLO_MASTER_KEY!, "hex"));
    expect(box.decrypt(stored!.passwordEnc, credentialSecretContext(String(cred.id)))).toBe(
      "second-password",
    );
    expect(await ok(["servers", "show", server.id])).toMatchObject({
      name: `${server.name}-b`,
      host_key_fingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
    });
    expect((await ok(["keys", "show", String(key.id)])).operations).toEqual(["exec", "deploy"]);

    const script = path.join(mkdtempSync(path.join(tmpdir(), "reoclo-admin-")), "deploy.sh");
    writeFileSync(script, "echo deploy\n");
    const app = await ok([
      "apps",
      "add",
      "--name",
      "shop",
      "--server",
      server.id,
      "--working-directory",
      "/srv/shop",
      "--deploy-script-file",
      script,
    ]);
    const movedApp = await ok(["apps", "update", String(app.id), "--working-directory", "/srv/shop-2"]);
    expect(movedApp).toMatchObject({ id: app.id, name: "shop", working_directory: "/srv/shop-2" });
    expect(await ok(["apps", "show", String(app.id)])).toMatchObject({ working_directory: "/srv/shop-2" });
    rmSync(path.dirname(script), { recursive: true, force: true });
  });

  it("users add --json prints {id, email, role, password}, and the person can sign in with it", async () => {
    const r = await admin(["users", "add", "--email", "Owner@Example.com", "--role", "owner", "--json"], env);
    expect(r.stderr).toBe("");
    const added = json<{ id: string; email: string; role: string; password: string }>(r.stdout);
    expect(added).toMatchObject({ email: "owner@example.com", role: "owner" });
    expect(added.password.length).toBeGreaterThanOrEqual(12);
    const res = await t.app.request("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: "owner@example.com", password: added.password }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { user: { id: string } }).user.id).toBe(added.id);
    const key = await admin(
      ["integration-keys", "create", "--label", "ops", "--preset", "read_only", "--json"],
      env,
    );
    expect(key.stderr).toBe("");
    expect(json<{ id: string; key: string; prefix: string }>(key.stdout).key).toMatch(
      /^rk_t_[0-9A-Za-z]{36}$/,
    );
  });

  it("with --json, an error is one JSON object on stderr and exit 1", async () => {
    const r = await admin(["servers", "show", "00000000-0000-4000-8000-000000000000", "--json"], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(json<{ error: string }>(r.stderr)).toMatchObject({ error: "not_found" });
  });
});

describe.each(DRIVERS)("reoclo-admin on a remote service with an integration key, on %s", (driver) => {
  let db: TestDatabase;
  let t: TestApp;
  let http: Server;
  let url: string;
  let requests = 0;
  let orgId: string;
  let servers: { id: string; name: string }[];
  let appId: string;
  const remote = (args: string[], env: Record<string, string>, stdin?: string) =>
    admin(args, { REOCLO_URL: url, ...env }, { stdin });
  const integrationKey = async (acl: Acl) =>
    (await seedIntegrationKey(t.service.svc.ctx.db, { orgId, acl })).key;

  beforeAll(async () => {
    db = await createTestDatabase(driver);
    t = createTestApp(db);
    const ctx = t.service.svc.ctx;
    orgId = (await resolveOrg(ctx, undefined)).id;
    servers = [await seedServer(ctx, undefined, "web-1"), await seedServer(ctx, undefined, "web-2")];
    appId = (
      await addApplication(ctx, {
        name: "shop",
        server_id: servers[0]!.id,
        working_directory: "/srv/shop",
        deploy_script: "true",
      })
    ).id;
    // The real service, behind a counter of the requests that reach it.
    const app = new Hono();
    app.use(async (_c, next) => {
      requests++;
      await next();
    });
    app.all("*", (c) => t.app.fetch(c.req.raw, c.env));
    http = createHttpServer(app.fetch);
    url = `http://127.0.0.1:${await listenOnLoopback(http)}`;
  });
  afterAll(async () => {
    http?.closeAllConnections();
    await new Promise((resolve) => http?.close(resolve));
    await t?.close();
    await db?.close();
  });

  it("lists the key's organisation's servers with --json, and says how to get a list's next page", async () => {
    const key = await integrationKey(PRESET_ACLS.read_only);
    const r = await remote(["servers", "list", "--json"], { REOCLO_API_KEY: key });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(
      json<{ id: string }[]>(r.stdout)
        .map((s) => s.id)
        .sort(),
    ).toEqual(servers.map((s) => s.id).sort());
    const page = await remote(["audit", "list", "--limit", "1", "--json"], { REOCLO_API_KEY: key });
    expect(page.code).toBe(0);
    expect(json<unknown[]>(page.stdout)).toHaveLength(1);
    const cursor = /add --cursor (\S+)/.exec(page.stderr)?.[1];
    expect(cursor, page.stderr).toBeDefined();
    const next = await remote(["audit", "list", "--limit", "1", "--cursor", cursor!, "--json"], {
      REOCLO_API_KEY: key,
    });
    expect(next.code).toBe(0);
    expect(json<{ id: number }[]>(next.stdout)[0]!.id).toBeLessThan(
      json<{ id: number }[]>(page.stdout)[0]!.id,
    );
  });

  it("takes the key from standard input with --api-key-stdin, and a server by its name", async () => {
    const key = await integrationKey(PRESET_ACLS.read_only);
    const r = await remote(["servers", "show", "web-2", "--api-key-stdin", "--json"], {}, `${key}\n`);
    expect(r.stderr).toBe("");
    expect(json<{ id: string; name: string }>(r.stdout)).toMatchObject({ id: servers[1]!.id, name: "web-2" });
  });

  it("fills the organisation's id into a tenant route from GET /api/auth/me", async () => {
    const key = await integrationKey(PRESET_ACLS.read_only);
    const r = await remote(["apps", "deployments", appId, "--json"], { REOCLO_API_KEY: key });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(json(r.stdout)).toEqual([]);
  });

  it("prints the service's refusal as a local one: the same stderr and exit code", async () => {
    const key = await integrationKey({ applications: ["read"] });
    const r = await remote(["servers", "list"], { REOCLO_API_KEY: key });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /^reoclo-admin: forbidden: This integration key cannot [^\n]+: it lacks the servers:read permission\.\n$/,
    );
    const missing = await remote(["servers", "show", "00000000-0000-4000-8000-000000000000", "--json"], {
      REOCLO_API_KEY: await integrationKey(PRESET_ACLS.read_only),
    });
    expect(missing.code).toBe(1);
    expect(json<{ error: string }>(missing.stderr)).toMatchObject({ error: "not_found" });
    const unknown = await remote(["servers", "list"], { REOCLO_API_KEY: generateIntegrationKey().key });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^reoclo-admin: unauthorized: /);
  });

  it.each([
    [
      "an automation key",
      { REOCLO_API_KEY: generateAutomationKey().key },
      ["servers", "list"],
      "the API key is an automation key (rca_…), which works only on the automation API",
    ],
    ["no key", {}, ["servers", "list"], "a remote service (--url or REOCLO_URL) needs an integration key"],
    [
      "--org",
      { REOCLO_API_KEY: generateIntegrationKey().key },
      ["servers", "list", "--org", "default"],
      "--org: a remote service's integration key acts in its own organisation",
    ],
    [
      "a command with no route",
      { REOCLO_API_KEY: generateIntegrationKey().key },
      ["orgs", "list"],
      '"orgs list" is not on the management API: run it with reoclo-admin on the service\'s machine',
    ],
  ])("refuses %s before sending anything (exit 2)", async (_what, env, args, message) => {
    const before = requests;
    const r = await remote(args, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`reoclo-admin: ${message}`);
    expect(requests).toBe(before);
  });
});
