import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { HEADERS, MANAGEMENT_BASE_PATH, PRESET_ACLS } from "@reoclo/protocol";
import { and, eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import type { ServiceContext } from "../src/context";
import { credentialSecretContext } from "../src/credentials/credentials";
import { auditEvents, registryCredentials } from "../src/db/schema";
import { createOrg, resolveOrg, type OrgView } from "../src/orgs/orgs";
import { SecretBox } from "../src/secrets/secret-box";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { addTestHost, seedKey, seedServer } from "./fixtures/entities";
import { seedIntegrationKey, type SeededIntegrationKey } from "./fixtures/principals";

// Applications and registry credentials on the management API (spec §11), through real HTTP with
// integration keys of each preset, against a real sshd host: deploy answers 202 at once and the
// deploy then runs on the host; the history says who deployed what; env values and passwords are
// write-only; in-place edits keep ids; another organisation sees none of it.

interface Answer {
  status: number;
  body: Record<string, unknown>;
  text: string;
  headers: Headers;
}

const files: string[] = [];
const tmpFile = (name: string) => {
  const f = `/tmp/reoclo-mgmt-apps-${name}-${randomBytes(4).toString("hex")}`;
  files.push(f);
  return f;
};
afterEach(() => {
  for (const f of files.splice(0)) rmSync(f, { force: true });
});

describe.each(DRIVERS)("applications and credentials on the management API, on %s", (driver) => {
  let db: TestDatabase;
  let host: TestHost;
  let ctx: ServiceContext;
  let secrets: SecretBox;
  let t: TestApp;
  let served: ServedApp;
  let api: string;
  let org: OrgView;
  let other: OrgView;
  let serverId: string;
  let full: SeededIntegrationKey;
  let deployOnly: SeededIntegrationKey;
  let readOnly: SeededIntegrationKey;
  let otherFull: SeededIntegrationKey;

  const call = async (
    key: SeededIntegrationKey,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Answer> => {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${key.key}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return {
      status: res.status,
      body: JSON.parse(text) as Record<string, unknown>,
      text,
      headers: res.headers,
    };
  };
  const tenantApp = (appId: string, tenantId = org.id) => `/tenants/${tenantId}/applications/${appId}`;

  /** The deployment of the history once it ended (polled through the API, as a dashboard does). */
  async function settledDeployment(key: SeededIntegrationKey, appId: string, operationId: string) {
    const find = async () => {
      const page = await call(key, "GET", `${tenantApp(appId)}/deployments?limit=200`);
      expect(page.status).toBe(200);
      return (page.body.items as Record<string, unknown>[]).find((d) => d.operation_id === operationId);
    };
    // Polled with a deadline that names what did not happen, rather than vitest's bare timeout.
    await expect
      .poll(async () => String((await find())?.status), {
        timeout: 20_000,
        message: `deploy ${operationId} ended`,
      })
      .not.toMatch(/^running$|^undefined$/);
    return (await find())!;
  }

  const changeRows = (action: string, applicationId?: string) =>
    db.db
      .select()
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.action, action),
          applicationId ? eq(auditEvents.applicationId, applicationId) : undefined,
        ),
      );

  /** Adds an application with the full-access key, through the API. */
  async function addApp(opts: { deploy_script: string; env?: Record<string, string> }) {
    const res = await call(full, "POST", "/applications", {
      name: `app-${randomBytes(3).toString("hex")}`,
      server_id: serverId,
      working_directory: "/tmp",
      ...opts,
    });
    expect(res.status, res.text).toBe(201);
    return res.body as { id: string; name: string };
  }

  beforeAll(async () => {
    secrets = new SecretBox(randomBytes(32));
    [db, host] = await Promise.all([createTestDatabase(driver), startTestHost()]);
    ctx = testContext(db, secrets);
    t = createTestApp(db, { secrets, env: { REOCLO_SYNC_WAIT_SECONDS: "20" } });
    served = await serveTestApp(t);
    api = `${new URL(served.base).origin}${MANAGEMENT_BASE_PATH}`;
    org = await resolveOrg(ctx, undefined);
    other = await createOrg(ctx, `other-${randomBytes(3).toString("hex")}`);
    serverId = (await addTestHost(ctx, host)).id;
    await seedServer(ctx, other.name);
    full = await seedIntegrationKey(db.db, { orgId: org.id, acl: PRESET_ACLS.full_access });
    deployOnly = await seedIntegrationKey(db.db, { orgId: org.id, acl: PRESET_ACLS.deploy_only });
    readOnly = await seedIntegrationKey(db.db, { orgId: org.id, acl: PRESET_ACLS.read_only });
    otherFull = await seedIntegrationKey(db.db, { orgId: other.id, acl: PRESET_ACLS.full_access });
  });
  afterAll(async () => {
    await served?.close();
    await t?.close();
    await Promise.all([db?.close(), host?.close()]);
  });

  it("lets a Deploy Only key deploy (202 at once; the deploy then runs on the host) and read who deployed what", async () => {
    const out = tmpFile("out");
    const release = tmpFile("release");
    const app = await addApp({
      // Holds until the test releases it: the 202 must come while the deploy still runs.
      deploy_script: `printf '%s' "$REOCLO_COMMIT_REF" > "$OUT"; while [ ! -e "$RELEASE" ]; do sleep 0.05; done; echo done >> "$OUT"`,
      env: { OUT: out, RELEASE: release },
    });

    const started = await call(deployOnly, "POST", `${tenantApp(app.id)}/deploy`, { commit_ref: "v1.2.3" });
    expect(started.status, started.text).toBe(202);
    expect(started.body).toMatchObject({ status: "running" });
    const operationId = started.body.operation_id as string;
    expect(started.headers.get(HEADERS.operationId)).toBe(operationId);
    const running = await call(deployOnly, "GET", `${tenantApp(app.id)}/deployments`);
    expect(running.body.items).toEqual([
      expect.objectContaining({ operation_id: operationId, status: "running", completed_at: null }),
    ]);

    writeFileSync(release, "");
    const done = await settledDeployment(deployOnly, app.id, operationId);
    expect(readFileSync(out, "utf8")).toBe("v1.2.3done\n");
    expect(done).toMatchObject({
      status: "completed",
      outcome: "completed",
      exit_code: 0,
      commit_ref: "v1.2.3",
      server_id: serverId,
      started_by: {
        type: "integration_key",
        id: deployOnly.id,
        label: deployOnly.label,
        prefix: deployOnly.prefix,
      },
    });
    expect(done.duration_ms).toEqual(expect.any(Number));
    expect(Date.parse(done.completed_at as string)).toBeGreaterThanOrEqual(
      Date.parse(done.created_at as string),
    );

    // The change row says who started it, and links to the operation.
    const [audit, ...more] = await changeRows("operation.start", app.id);
    expect(more).toEqual([]);
    expect(audit).toMatchObject({
      actor: `integration_key:${deployOnly.id}`,
      operationId,
      orgId: org.id,
      serverId,
      details: { type: "deploy", application: app.name, commit_ref: "v1.2.3" },
    });
  });

  it("lists deployments newest first in cursor pages, naming the automation key or integration key that started each", async () => {
    const out = tmpFile("out");
    const app = await addApp({ deploy_script: `echo "$REOCLO_COMMIT_REF" >> "$OUT"`, env: { OUT: out } });
    const ci = await seedKey(ctx, { name: "ci", operations: ["deploy"], all_servers: true });
    const byCi = await fetch(`${served.base}/deploy`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ci.key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ application_id: app.id, commit_ref: "aaaa1111" }),
    });
    expect(byCi.status).toBe(200);
    expect(((await byCi.json()) as { status: string }).status).toBe("completed");
    const byKey = await call(full, "POST", `${tenantApp(app.id)}/deploy`, { commit_ref: "refs/tags/v2" });
    expect(byKey.status).toBe(202);
    await settledDeployment(full, app.id, byKey.body.operation_id as string);

    const first = await call(deployOnly, "GET", `${tenantApp(app.id)}/deployments?limit=1`);
    expect(first.body.items).toEqual([
      expect.objectContaining({
        operation_id: byKey.body.operation_id,
        commit_ref: "refs/tags/v2",
        started_by: { type: "integration_key", id: full.id, label: full.label, prefix: full.prefix },
      }),
    ]);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const second = await call(
      deployOnly,
      "GET",
      `${tenantApp(app.id)}/deployments?limit=1&cursor=${first.body.next_cursor as string}`,
    );
    expect(second.body).toEqual({
      items: [
        expect.objectContaining({
          commit_ref: "aaaa1111",
          status: "completed",
          started_by: { type: "automation_key", id: ci.id, name: "ci", prefix: ci.prefix },
        }),
      ],
      next_cursor: null,
    });
    expect(readFileSync(out, "utf8")).toBe("aaaa1111\nrefs/tags/v2\n");
  });

  it.each([
    ["a ref that could be an option", { commit_ref: "-rf" }],
    ["a ref with shell syntax", { commit_ref: "main;reboot" }],
  ])("refuses to deploy %s (422)", async (_rule, body) => {
    const app = await addApp({ deploy_script: "true" });
    const res = await call(deployOnly, "POST", `${tenantApp(app.id)}/deploy`, body);
    expect(res.status, res.text).toBe(422);
    expect(res.body.fields).toHaveProperty("commit_ref");
  });

  it("refuses a Deploy Only key what it was not given: keys, servers, changing applications, credentials, the env", async () => {
    const app = await addApp({ deploy_script: "true" });
    const refusals = await Promise.all([
      call(deployOnly, "PATCH", `/applications/${app.id}`, { name: "renamed" }),
      call(deployOnly, "POST", "/registry-credentials", {
        name: "ghcr",
        type: "ghcr",
        registry_url: "ghcr.io",
        username: "bot",
        password: "pw-secret-123",
      }),
      call(deployOnly, "GET", `${tenantApp(app.id)}/env`),
      call(deployOnly, "POST", `${tenantApp(app.id)}/env`, { env: { X: "1" } }),
      call(deployOnly, "DELETE", `/applications/${app.id}`),
      call(deployOnly, "GET", "/automation-keys"),
      call(deployOnly, "GET", "/integration-keys"),
      call(deployOnly, "PATCH", `/servers/${serverId}`, { name: "renamed" }),
      call(deployOnly, "POST", `/servers/${serverId}/host-key`, { trust_on_first_use: true }),
    ]);
    expect(refusals.map((r) => [r.status, r.body.error])).toEqual(Array(9).fill([403, "forbidden"]));
    expect(refusals[0].body.detail).toMatch(/lacks the applications:write permission/);
    const unchanged = await call(deployOnly, "GET", `/applications/${app.id}`);
    expect(unchanged.body.name).toBe(app.name);
  });

  it("never shows a Read Only key an env value or a password, and refuses it every write", async () => {
    const envSecret = `env-${randomBytes(12).toString("hex")}`;
    const password = `pw-${randomBytes(12).toString("hex")}`;
    const app = await addApp({ deploy_script: "true", env: { API_TOKEN: envSecret } });
    const added = await call(full, "POST", "/registry-credentials", {
      name: `ghcr-${randomBytes(3).toString("hex")}`,
      type: "ghcr",
      registry_url: "ghcr.io/acme",
      username: "bot",
      password,
    });
    expect(added.status, added.text).toBe(201);
    const set = await call(full, "POST", `${tenantApp(app.id)}/env`, { env: { DB_PASSWORD: envSecret } });
    expect(set.status, set.text).toBe(200);

    const reads = await Promise.all([
      call(readOnly, "GET", "/applications"),
      call(readOnly, "GET", `/applications/${app.id}`),
      call(readOnly, "GET", `${tenantApp(app.id)}/env`),
      call(readOnly, "GET", `${tenantApp(app.id)}/deployments`),
      call(readOnly, "GET", "/registry-credentials"),
    ]);
    expect(reads.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    for (const r of [...reads, added, set]) {
      expect(r.text).not.toContain(envSecret);
      expect(r.text).not.toContain(password);
    }
    const names = reads[2].body.items as { name: string; updated_at: string }[];
    expect(names.map((v) => v.name)).toEqual(["API_TOKEN", "DB_PASSWORD"]);
    expect(names.every((v) => Number.isFinite(Date.parse(v.updated_at)))).toBe(true);
    expect(Object.keys(reads[2].body)).toEqual(["items", "next_cursor"]);
    expect(reads[4].body.items).toContainEqual(
      expect.objectContaining({ id: added.body.id, username: "bot", registry_url: "ghcr.io/acme" }),
    );
    const writes = await Promise.all([
      call(readOnly, "POST", `${tenantApp(app.id)}/env`, { env: { X: "1" } }),
      call(readOnly, "POST", `${tenantApp(app.id)}/deploy`, {}),
      call(readOnly, "PATCH", `/registry-credentials/${added.body.id as string}`, { username: "x" }),
      call(readOnly, "POST", "/applications", {}),
    ]);
    expect(writes.map((r) => r.status)).toEqual([403, 403, 403, 403]);
    // Nor does any audit row hold them.
    const audit = JSON.stringify(await db.db.select().from(auditEvents));
    expect(audit).not.toContain(envSecret);
    expect(audit).not.toContain(password);
  });

  it("gives the next deploy the variables as set: added, replaced and removed by name", async () => {
    const out = tmpFile("out");
    const app = await addApp({
      deploy_script: `printf '%s %s %s' "\${REOCLO_COMMIT_REF:-none}" "$GREETING" "\${OLD:-unset}" > "$OUT"`,
      env: { OUT: out, GREETING: "hello-1", OLD: "old-value" },
    });
    const before = await call(full, "GET", `${tenantApp(app.id)}/env`);
    const times = Object.fromEntries(
      (before.body.items as { name: string; updated_at: string }[]).map((v) => [v.name, v.updated_at]),
    );

    const set = await call(full, "POST", `${tenantApp(app.id)}/env`, {
      env: { GREETING: "hello-2", NEW_ONE: "fresh" },
      remove: ["OLD", "NEVER_SET"],
    });
    expect(set.status, set.text).toBe(200);
    expect(set.body).toMatchObject({
      application_id: app.id,
      set: ["GREETING", "NEW_ONE"],
      removed: ["OLD"],
    });
    const after = (await call(full, "GET", `${tenantApp(app.id)}/env`)).body.items as {
      name: string;
      updated_at: string;
    }[];
    expect(after.map((v) => v.name)).toEqual(["GREETING", "NEW_ONE", "OUT"]);
    expect(after.find((v) => v.name === "OUT")!.updated_at).toBe(times.OUT);
    expect(Date.parse(after.find((v) => v.name === "GREETING")!.updated_at)).toBeGreaterThanOrEqual(
      Date.parse(times.GREETING!),
    );

    const started = await call(full, "POST", `${tenantApp(app.id)}/deploy`, {});
    expect(started.status).toBe(202);
    const done = await settledDeployment(full, app.id, started.body.operation_id as string);
    expect(done).toMatchObject({ status: "completed", commit_ref: null });
    expect(readFileSync(out, "utf8")).toBe("none hello-2 unset");

    const [audit] = await changeRows("application.env.set", app.id);
    expect(audit).toMatchObject({
      actor: `integration_key:${full.id}`,
      details: { name: app.name, set: ["GREETING", "NEW_ONE"], removed: ["OLD"] },
    });
    expect(JSON.stringify(audit)).not.toContain("hello-2");
  });

  it.each([
    ["a name that is not a variable name", { env: { "1BAD": "x" } }, "env.1BAD"],
    ["a value with NUL", { env: { GOOD: "a\u0000b" } }, "env.GOOD"],
    ["a name both set and removed", { env: { A: "1" }, remove: ["A"] }, "remove"],
    ["nothing to do", {}, "env"],
  ])("refuses an env change with %s (422)", async (_rule, body, field) => {
    const app = await addApp({ deploy_script: "true" });
    const res = await call(full, "POST", `${tenantApp(app.id)}/env`, body);
    expect(res.status, res.text).toBe(422);
    expect(res.body.fields).toHaveProperty([field]);
  });

  it("changes an application in place with PATCH: the id stays, null clears the restart script, and the audit names the fields", async () => {
    const app = await addApp({ deploy_script: "echo one" });
    const newName = `renamed-${randomBytes(3).toString("hex")}`;
    const patched = await call(full, "PATCH", `/applications/${app.id}`, {
      name: newName,
      deploy_script: "echo two",
      restart_script: "echo restart",
      working_directory: "/var/tmp",
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({
      id: app.id,
      name: newName,
      working_directory: "/var/tmp",
      deploy_script: "echo two",
      restart_script: "echo restart",
      has_restart_script: true,
    });
    const cleared = await call(full, "PATCH", `/applications/${app.id}`, { restart_script: null });
    expect(cleared.body).toMatchObject({ id: app.id, restart_script: null, has_restart_script: false });
    const shown = await call(readOnly, "GET", `/applications/${app.id}`);
    expect(shown.body).toMatchObject({ id: app.id, name: newName, deploy_script: "echo two" });

    const rows = await changeRows("application.update", app.id);
    expect(rows.map((r) => [r.actor, (r.details as { fields: string[] }).fields])).toEqual([
      [`integration_key:${full.id}`, ["name", "working_directory", "deploy_script", "restart_script"]],
      [`integration_key:${full.id}`, ["restart_script"]],
    ]);

    const taken = await addApp({ deploy_script: "true" });
    const clash = await call(full, "PATCH", `/applications/${app.id}`, { name: taken.name });
    expect([clash.status, clash.body.error]).toEqual([409, "conflict"]);
    const foreignServer = await call(full, "PATCH", `/applications/${app.id}`, {
      server_id: (await seedServer(ctx, other.name)).id,
    });
    expect(foreignServer.status).toBe(404);
    const empty = await call(full, "PATCH", `/applications/${app.id}`, {});
    expect(empty.status).toBe(422);
  });

  it("changes a credential in place with PATCH: the id stays, the password is re-sealed and never audited", async () => {
    const name = `reg-${randomBytes(3).toString("hex")}`;
    const added = await call(full, "POST", "/registry-credentials", {
      name,
      type: "docker_hub",
      registry_url: "docker.io",
      username: "bot",
      password: "first-password",
    });
    const id = added.body.id as string;
    const patched = await call(full, "PATCH", `/registry-credentials/${id}`, {
      username: "robot",
      password: "second-password",
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({ id, name, username: "robot", registry_url: "docker.io" });
    expect(patched.text).not.toContain("second-password");
    const [row] = await db.db.select().from(registryCredentials).where(eq(registryCredentials.id, id));
    expect(secrets.decrypt(row!.passwordEnc, credentialSecretContext(id))).toBe("second-password");

    const [audit, ...more] = await db.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "credential.update"), eq(auditEvents.credentialId, id)));
    expect(more).toEqual([]);
    expect(audit).toMatchObject({
      actor: `integration_key:${full.id}`,
      details: { name, fields: ["username", "password"], previous_username: "bot", username: "robot" },
    });
    expect(JSON.stringify(audit)).not.toMatch(/first-password|second-password/);

    const removed = await call(full, "DELETE", `/registry-credentials/${id}`);
    expect(removed.status).toBe(200);
    const list = await call(full, "GET", "/registry-credentials");
    expect((list.body.items as { id: string }[]).map((c) => c.id)).not.toContain(id);
  });

  it("answers another organisation's key 404 for this organisation's ids and tenant id", async () => {
    const out = tmpFile("out");
    const app = await addApp({ deploy_script: `echo ran > "$OUT"`, env: { OUT: out } });
    const cred = await call(full, "POST", "/registry-credentials", {
      name: `c-${randomBytes(3).toString("hex")}`,
      type: "ghcr",
      registry_url: "ghcr.io",
      username: "bot",
      password: "pw-123456",
    });
    const credId = cred.body.id as string;
    const answers = await Promise.all([
      call(otherFull, "GET", `/applications/${app.id}`),
      call(otherFull, "PATCH", `/applications/${app.id}`, { name: "mine-now" }),
      call(otherFull, "DELETE", `/applications/${app.id}`),
      // Its own tenant id with this organisation's application…
      call(otherFull, "POST", `${tenantApp(app.id, other.id)}/deploy`, {}),
      call(otherFull, "GET", `${tenantApp(app.id, other.id)}/deployments`),
      call(otherFull, "GET", `${tenantApp(app.id, other.id)}/env`),
      call(otherFull, "POST", `${tenantApp(app.id, other.id)}/env`, { env: { X: "1" } }),
      // …and this organisation's tenant id.
      call(otherFull, "POST", `${tenantApp(app.id)}/deploy`, {}),
      call(otherFull, "GET", `${tenantApp(app.id)}/deployments`),
      call(otherFull, "GET", `${tenantApp(app.id)}/env`),
      call(otherFull, "PATCH", `/registry-credentials/${credId}`, { username: "x" }),
      call(otherFull, "DELETE", `/registry-credentials/${credId}`),
      // A tenant id that is no id at all is as unknown.
      call(full, "GET", `${tenantApp(app.id, "default")}/env`),
    ]);
    expect(answers.map((a) => [a.status, a.body.error])).toEqual(
      Array(answers.length).fill([404, "not_found"]),
    );
    for (const a of answers) expect(a.text).not.toContain(app.name);
    const theirs = await call(otherFull, "GET", "/applications");
    expect(theirs.body).toEqual({ items: [], next_cursor: null });
    const theirCreds = await call(otherFull, "GET", "/registry-credentials");
    expect(theirCreds.body).toEqual({ items: [], next_cursor: null });
    // Nothing ran, nothing changed.
    expect(existsSync(out)).toBe(false);
    const mine = await call(full, "GET", `/applications/${app.id}`);
    expect(mine.body.name).toBe(app.name);
  });

  it("removes an application with DELETE; its id is then unknown", async () => {
    const app = await addApp({ deploy_script: "true" });
    const removed = await call(full, "DELETE", `/applications/${app.id}`);
    expect(removed.status).toBe(200);
    const after = await Promise.all([
      call(full, "GET", `/applications/${app.id}`),
      call(full, "POST", `${tenantApp(app.id)}/deploy`, {}),
    ]);
    expect(after.map((a) => a.status)).toEqual([404, 404]);
    expect(await changeRows("application.remove", app.id)).toEqual([
      expect.objectContaining({ actor: `integration_key:${full.id}` }),
    ]);
  });
});
