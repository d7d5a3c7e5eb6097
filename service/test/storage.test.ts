import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { createTestDatabase, dumpAllTables, testContext, type TestDatabase } from "./fixtures/db";
import type { ServiceContext } from "../src/context";
import { addServer, listServers, testServer } from "../src/servers/servers";
import { createKey, listKeys, revokeKey } from "../src/keys/keys";
import { listOrgs, createOrg } from "../src/orgs/orgs";
import { addApplication, listApplications } from "../src/applications/applications";
import { addCredential } from "../src/credentials/credentials";
import { rotateSecrets } from "../src/secrets/rotate";
import { SecretBox } from "../src/secrets/secret-box";
import { generateAutomationKey, hashAutomationKey } from "../src/keys/key-format";
import { findKeyByHash } from "../src/keys/lookup";
import { automationKeys } from "../src/db/schema";
import { eq } from "drizzle-orm";
import { ServiceError } from "../src/errors";

/** Every row of every table in the public schema, as text, for grepping. */
describe.each(DRIVERS)("storage on %s", (driver) => {
  let db: TestDatabase;
  let ctx: ServiceContext;
  let host: TestHost;
  const masterKey = randomBytes(32);

  beforeAll(async () => {
    [db, host] = await Promise.all([createTestDatabase(driver), startTestHost()]);
    ctx = testContext(db, new SecretBox(masterKey));
  });
  afterAll(async () => {
    await Promise.all([db?.close(), host?.close()]);
  });

  it("applies the migrations and creates the default organisation", async () => {
    const orgs = await listOrgs(ctx);
    expect(orgs.map((o) => o.name)).toContain("default");
    await db.migrate(); // idempotent
    expect((await listOrgs(ctx)).filter((o) => o.name === "default")).toHaveLength(1);
  });

  it("stores no plaintext key, SSH private key, passphrase or registry password in any table", async () => {
    const server = await addServer(ctx, {
      name: "web-1",
      host: host.host,
      port: host.port,
      user: host.username,
      private_key: host.privateKey,
      trust_on_first_use: true,
    });
    expect(server.host_key_fingerprint).toBe(host.hostKeyFingerprint);
    const password = `registry-pw-${randomBytes(8).toString("hex")}`;
    await addCredential(ctx, {
      name: "hub",
      type: "docker_hub",
      registry_url: "docker.io",
      username: "deployer",
      password,
    });
    const key = await createKey(ctx, { name: "ci", operations: ["exec"], server_ids: [server.id] });
    expect(key.key).toMatch(/^rca_/);

    const { tables, text: dump } = await dumpAllTables(db);
    expect(tables).toBeGreaterThanOrEqual(10);
    expect(dump).toContain("web-1"); // the dump does see the data
    expect(dump).not.toContain(key.key);
    expect(dump).not.toContain(key.key.slice(10)); // nor the secret part of it
    expect(dump).not.toContain(password);
    for (const line of host.privateKey.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"))) {
      expect(dump).not.toContain(line);
    }
    // Only the hash identifies the key.
    const [stored] = await db.db.select().from(automationKeys).where(eq(automationKeys.id, key.id));
    expect(stored?.keyHash.equals(hashAutomationKey(key.key))).toBe(true);
  });

  it("lists keys with status and prefix but never the key", async () => {
    const [server] = await listServers(ctx);
    const created = await createKey(ctx, {
      name: "to-revoke",
      operations: ["exec", "deploy"],
      server_ids: [server!.id],
    });
    const revoked = await revokeKey(ctx, created.id);
    expect(revoked.status).toBe("revoked");
    const keys = await listKeys(ctx);
    const listed = keys.find((k) => k.id === created.id);
    expect(listed).toMatchObject({
      status: "revoked",
      prefix: created.prefix,
      operations: ["exec", "deploy"],
    });
    expect(JSON.stringify(keys)).not.toContain(created.key);
  });

  it("refuses a key scoped to a server of another organisation", async () => {
    const other = await createOrg(ctx, `other-${randomBytes(3).toString("hex")}`);
    const [server] = await listServers(ctx);
    await expect(
      createKey(ctx, { org: other.name, name: "x", operations: ["exec"], server_ids: [server!.id] }),
    ).rejects.toMatchObject({ code: "not_found" });
  });

  it("tests a server over SSH with the pinned host key", async () => {
    const [server] = await listServers(ctx);
    const result = await testServer(ctx, server!.id);
    expect(result).toMatchObject({
      ok: true,
      remote_user: host.username,
      host_key_fingerprint: host.hostKeyFingerprint,
    });
  });

  it("keeps working without a master key, but refuses to store secrets", async () => {
    const noKey = { ...ctx, secrets: new SecretBox(undefined) };
    const [server] = await listServers(noKey);
    await expect(
      createKey(noKey, { name: "k", operations: ["exec"], server_ids: [server!.id] }),
    ).resolves.toBeTruthy();
    await expect(
      addApplication(noKey, {
        name: "app",
        server_id: server!.id,
        working_directory: "/srv/app",
        deploy_script: "true",
      }),
    ).resolves.toBeTruthy();
    expect((await listApplications(noKey)).map((a) => a.name)).toContain("app");
    const err = await addServer(noKey, {
      name: "web-2",
      host: host.host,
      port: host.port,
      user: host.username,
      private_key: host.privateKey,
      host_key_fingerprint: host.hostKeyFingerprint,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe("secrets_unavailable");
    expect((await listServers(ctx)).map((s) => s.name)).not.toContain("web-2");
  });

  it("rotates every secret to a new master key", async () => {
    const oldKey = randomBytes(32);
    const oldCtx = { ...ctx, secrets: new SecretBox(oldKey) };
    const name = `rot-${randomBytes(3).toString("hex")}`;
    const rotOrg = await createOrg(ctx, name);
    await addServer(oldCtx, {
      org: rotOrg.name,
      name: "rot",
      host: host.host,
      port: host.port,
      user: host.username,
      private_key: host.privateKey,
      host_key_fingerprint: host.hostKeyFingerprint,
    });
    const newKey = randomBytes(32);
    // The suite's own key must remain readable too: it is a previous key now.
    const rotated = { ...ctx, secrets: new SecretBox(newKey, [oldKey, masterKey]) };
    const report = await rotateSecrets(rotated);
    expect(report.reencrypted).toBeGreaterThanOrEqual(2);
    const again = await rotateSecrets(rotated);
    expect(again.reencrypted).toBe(0);
    // Only the new key is needed now: the server still connects.
    const onlyNew = { ...ctx, secrets: new SecretBox(newKey) };
    const rotServer = (await listServers(onlyNew, rotOrg.name))[0]!;
    await expect(testServer(onlyNew, rotServer.id, rotOrg.name)).resolves.toMatchObject({ ok: true });
  });
});

describe.each(DRIVERS)("key lookup on %s", (driver) => {
  let db: TestDatabase;
  let ctx: ServiceContext;
  beforeAll(async () => {
    db = await createTestDatabase(driver);
    ctx = testContext(db);
  });
  afterAll(async () => {
    await db?.close();
  });

  it("finds a key by the hash of its plaintext, and nothing for another key", async () => {
    const created = await createKey(ctx, { name: "lookup", operations: ["exec"], all_servers: true });
    const row = await findKeyByHash(ctx.db, hashAutomationKey(created.key));
    expect(row).toMatchObject({ id: created.id, name: "lookup", allServers: true, operations: ["exec"] });
    // The prepared statement is reused across calls.
    expect(await findKeyByHash(ctx.db, hashAutomationKey(generateAutomationKey().key))).toBeUndefined();
    expect((await findKeyByHash(ctx.db, hashAutomationKey(created.key)))?.id).toBe(created.id);
  });
});
