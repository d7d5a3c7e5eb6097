import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { runAdminVerb } from "../src/admin/run-verb";
import { listAudit, type AuditView } from "../src/audit/audit";
import type { ServiceContext } from "../src/context";
import { createTestApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, dumpAllTables, type TestDatabase } from "./fixtures/db";

// Every change an operator makes is an audit row next to the API's decisions: actor `admin-cli`,
// the target, what changed, and never a secret (issue 13, item 13; spec §11 "Audit"). The verbs run
// as reoclo-admin runs them, in process or for it over the admin socket (runAdminVerb).

describe.each(DRIVERS)("changes made with reoclo-admin are audited, on %s", (driver) => {
  let db: TestDatabase;
  let t: TestApp;
  let ctx: ServiceContext;
  let host: TestHost;
  beforeAll(async () => {
    [db, host] = await Promise.all([createTestDatabase(driver), startTestHost()]);
    t = createTestApp(db);
    ctx = t.service.svc.ctx;
  });
  afterAll(async () => {
    await t?.close();
    await Promise.all([db?.close(), host?.close()]);
  });
  const run = (verb: string, input: Record<string, unknown>) =>
    runAdminVerb(t.service.svc, verb, input) as Promise<Record<string, unknown>>;

  const changes = async () =>
    (await listAudit(ctx, { limit: 1000 })).filter((r) => r.action !== null).reverse();
  const only = (rows: AuditView[], action: string) => {
    const found = rows.filter((r) => r.action === action);
    expect(found, action).toHaveLength(1);
    return found[0]!;
  };

  it("writes one row per change, with actor, target and a secret-free summary", async () => {
    const password = `registry-${randomBytes(12).toString("hex")}`;
    const envSecret = `env-${randomBytes(12).toString("hex")}`;
    const server = await run("servers.add", {
      name: "web",
      host: host.host,
      port: host.port,
      user: host.username,
      private_key: host.privateKey,
      trust_on_first_use: true,
    });
    const key = await run("keys.create", {
      name: "deploy",
      operations: ["exec", "deploy"],
      server_ids: [server.id],
      allowed_ips: ["192.0.2.0/24"],
    });
    const credential = await run("credentials.add", {
      name: "ghcr",
      type: "ghcr",
      registry_url: "ghcr.io",
      username: "bot",
      password,
    });
    const app = await run("apps.add", {
      name: "site",
      server_id: server.id,
      working_directory: "/srv/site",
      deploy_script: "./deploy.sh",
      env: { DATABASE_PASSWORD: envSecret },
    });
    await run("keys.revoke", { id: key.id });
    await run("keys.revoke", { id: key.id }); // a no-op: nothing changed, nothing written
    await run("apps.remove", { id: app.id });
    await run("credentials.remove", { id: credential.id });
    await run("servers.remove", { id: server.id });

    const rows = await changes();
    expect(rows.map((r) => r.action)).toEqual([
      "server.add",
      "server.host_key.pin",
      "key.create",
      "credential.add",
      "application.add",
      "key.revoke",
      "application.remove",
      "credential.remove",
      "server.remove",
    ]);
    for (const r of rows) expect(r).toMatchObject({ actor: "admin-cli", outcome: "allowed" });
    expect(only(rows, "server.add")).toMatchObject({
      server_id: server.id,
      details: { name: "web", host: host.host, port: host.port, user: host.username },
    });
    expect(only(rows, "server.host_key.pin")).toMatchObject({
      server_id: server.id,
      details: { host_key_fingerprint: host.hostKeyFingerprint, method: "trust_on_first_use" },
    });
    expect(only(rows, "key.create")).toMatchObject({
      key_id: key.id,
      details: {
        name: "deploy",
        prefix: key.prefix,
        operations: ["exec", "deploy"],
        allowed_ips: ["192.0.2.0/24"],
      },
    });
    expect(only(rows, "key.revoke")).toMatchObject({ key_id: key.id, details: { name: "deploy" } });
    expect(only(rows, "credential.add")).toMatchObject({
      credential_id: credential.id,
      details: { name: "ghcr", registry_url: "ghcr.io" },
    });
    expect(only(rows, "application.add")).toMatchObject({
      application_id: app.id,
      server_id: server.id,
      details: { name: "site", env_names: ["DATABASE_PASSWORD"] },
    });
    expect(only(rows, "server.remove")).toMatchObject({ server_id: server.id, details: { name: "web" } });

    // No secret in any row of any table: the key, the password, the env value, the SSH key.
    const { text } = await dumpAllTables(db);
    for (const secret of [key.key as string, password, envSecret, host.privateKey.split("\n")[1]!])
      expect(text).not.toContain(secret);
  });

  it("records a pin of a given fingerprint as given, not trusted on first use", async () => {
    const server = await run("servers.add", {
      name: "pinned",
      host: host.host,
      port: host.port,
      user: host.username,
      private_key: host.privateKey,
      host_key_fingerprint: host.hostKeyFingerprint,
    });
    const pin = (await changes()).find(
      (r) => r.action === "server.host_key.pin" && r.server_id === server.id,
    );
    expect(pin?.details).toMatchObject({
      host_key_fingerprint: host.hostKeyFingerprint,
      method: "fingerprint_given",
    });
  });

  it("writes nothing for a change that was refused", async () => {
    const before = (await changes()).length;
    await expect(
      run("keys.create", { name: "x", operations: ["exec"], server_ids: [], all_servers: false }),
    ).rejects.toMatchObject({ code: "validation" });
    await expect(run("apps.remove", { id: "00000000-0000-4000-8000-000000000000" })).rejects.toMatchObject({
      code: "not_found",
    });
    expect((await changes()).length).toBe(before);
  });
});
