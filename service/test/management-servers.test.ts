// Servers and automation keys on the management API (spec §10, §11), through real HTTP with
// integration keys: the seed's `GET /api/servers`, edits that keep ids, re-pinning a re-keyed host
// so the same automation key and server id work again, keys that change and stop on the next
// request, and commands run by an integration key.
import { randomBytes } from "node:crypto";
import { API_BASE_PATH, MANAGEMENT_BASE_PATH, PRESET_ACLS, type Acl } from "@reoclo/protocol";
import { generateKeyPair } from "@reoclo/testbed/keys";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceContext } from "../src/context";
import { openDatabase, type DatabaseHandle } from "../src/db/database";
import { auditEvents, operations } from "../src/db/schema";
import { resolveOrg } from "../src/orgs/orgs";
import { SecretBox } from "../src/secrets/secret-box";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, dumpAllTables, testContext, type TestDatabase } from "./fixtures/db";
import { seedOrg, seedServer } from "./fixtures/entities";
import { seedIntegrationKey } from "./fixtures/principals";
import { outputText, readEvents } from "./fixtures/exec-env";

type Json = Record<string, unknown>;
type ServerAnswer = { id: string; name: string; host: string; port: number; host_key_fingerprint: string };
type ExecAnswer = {
  operation_id: string;
  status: string;
  exit_code?: number;
  stdout?: string;
  stderr?: string;
};
type KeyAnswer = Json & { id: string; key?: string; prefix: string; status: string };

/** A management API client holding one integration key, sent as a bearer token or as X-API-Key. */
function client(root: string, key: string, how: "bearer" | "x-api-key" = "bearer") {
  const auth: Record<string, string> =
    how === "bearer" ? { Authorization: `Bearer ${key}` } : { "X-API-Key": key };
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${root}${path}`, {
      method,
      headers: { ...auth, ...(body === undefined ? {} : { "Content-Type": "application/json" }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return res;
  };
  return {
    get: (path: string) => call("GET", path),
    post: (path: string, body: unknown = {}, headers?: Record<string, string>) =>
      call("POST", path, body, headers),
    patch: (path: string, body: unknown) => call("PATCH", path, body),
    delete: (path: string) => call("DELETE", path),
  };
}

describe.each(DRIVERS)("servers and automation keys on the management API (%s)", (driver) => {
  let db: TestDatabase;
  let host: TestHost;
  let t: TestApp;
  let served: ServedApp;
  let ctx: ServiceContext;
  let root: string;
  let orgId: string;
  let otherOrg: { id: string; name: string };
  let full: { id: string; key: string };
  let readOnly: { id: string; key: string };
  let otherFull: { id: string; key: string };

  const automation = (key: string) => ({
    exec: async (serverId: string, command: string) => {
      const res = await fetch(`${served.base}/exec`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ server_id: serverId, command }),
      });
      return { status: res.status, body: (await res.json()) as ExecAnswer & Json };
    },
    key: () => fetch(`${served.base}/key`, { headers: { Authorization: `Bearer ${key}` } }),
  });

  const changes = async (action: string, where: { serverId?: string; keyId?: string } = {}) =>
    ctx.db
      .select()
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.action, action),
          where.serverId ? eq(auditEvents.serverId, where.serverId) : undefined,
          where.keyId ? eq(auditEvents.keyId, where.keyId) : undefined,
        ),
      )
      .orderBy(auditEvents.id);

  const ikey = (acl: Acl, org = orgId) => seedIntegrationKey(ctx.db, { orgId: org, acl });

  beforeAll(async () => {
    const secrets = new SecretBox(randomBytes(32));
    [db, host] = await Promise.all([createTestDatabase(driver), startTestHost()]);
    ctx = testContext(db, secrets);
    t = createTestApp(db, { secrets, env: { REOCLO_SYNC_WAIT_SECONDS: "10" } });
    served = await serveTestApp(t);
    root = served.base.replace(API_BASE_PATH, MANAGEMENT_BASE_PATH);
    orgId = (await resolveOrg(ctx, undefined)).id;
    otherOrg = await seedOrg(ctx);
    [full, readOnly, otherFull] = await Promise.all([
      ikey(PRESET_ACLS.full_access),
      ikey(PRESET_ACLS.read_only),
      ikey(PRESET_ACLS.full_access, otherOrg.id),
    ]);
  });
  afterAll(async () => {
    await served?.close();
    await t?.close();
    await Promise.all([db?.close(), host?.close()]);
  });

  it("answers GET /api/servers with the organisation's servers, for Bearer and X-API-Key alike, never another's", async () => {
    const mine = await seedServer(ctx);
    const theirs = await seedServer(ctx, otherOrg.name);
    const bearer = await client(root, full.key, "bearer").get("/servers");
    expect(bearer.status).toBe(200);
    const body = (await bearer.json()) as { items: ServerAnswer[]; next_cursor: string | null };
    expect(body.next_cursor).toBeNull();
    expect(body.items.map((s) => s.id)).toContain(mine.id);
    expect(body.items.map((s) => s.id)).not.toContain(theirs.id);
    expect(JSON.stringify(body)).not.toMatch(/PRIVATE KEY|private_key/);

    const apiKey = await client(root, full.key, "x-api-key").get("/servers");
    expect(apiKey.status).toBe(200);
    expect(await apiKey.json()).toEqual(body);

    const other = (await (await client(root, otherFull.key).get("/servers")).json()) as {
      items: ServerAnswer[];
    };
    expect(other.items.map((s) => s.id)).toEqual([theirs.id]);
    // Another organisation's server is not found, by id or by name, whatever is asked of it.
    const api = client(root, full.key);
    for (const res of [
      await api.get(`/servers/${theirs.id}`),
      await api.get(`/servers/${theirs.name}`),
      await api.patch(`/servers/${theirs.id}`, { name: "mine-now" }),
      await api.post(`/servers/${theirs.id}/exec`, { command: "true" }),
      await api.post(`/servers/${theirs.id}/host-key`, { trust_on_first_use: true }),
      await api.delete(`/servers/${theirs.id}`),
    ]) {
      expect(res.status).toBe(404);
      expect(((await res.json()) as Json).error).toBe("not_found");
    }
    // None of it touched their server.
    const after = await client(root, otherFull.key).get(`/servers/${theirs.id}`);
    expect(after.status).toBe(200);
    expect(await after.json()).toMatchObject({
      id: theirs.id,
      name: theirs.name,
      host_key_fingerprint: theirs.host_key_fingerprint,
    });
  });

  it("lets a Read Only key list and show servers and keys, and refuses every change with 403", async () => {
    const server = await seedServer(ctx);
    const api = client(root, readOnly.key);
    expect((await api.get("/servers")).status).toBe(200);
    expect((await api.get(`/servers/${server.name}`)).status).toBe(200);
    expect((await api.get("/automation-keys")).status).toBe(200);
    const refused = [
      await api.post("/servers", {
        name: "x",
        host: "127.0.0.1",
        user: "u",
        private_key: "k",
        trust_on_first_use: true,
      }),
      await api.patch(`/servers/${server.id}`, { name: "renamed-by-reader" }),
      await api.post(`/servers/${server.id}/host-key`, { trust_on_first_use: true }),
      await api.post(`/servers/${server.id}/exec`, { command: "true" }),
      await api.delete(`/servers/${server.id}`),
      await api.post("/automation-keys", { name: "x", operations: ["exec"], all_servers: true }),
    ];
    for (const res of refused) {
      expect(res.status).toBe(403);
      const envelope = (await res.json()) as Json;
      expect(envelope.error).toBe("forbidden");
      expect(envelope.detail).toMatch(
        /^This integration key cannot .+: it lacks the (servers:write|servers:execute|api_keys:write) permission\.$/,
      );
    }
    expect((await client(root, full.key).get(`/servers/${server.id}`)).status).toBe(200);
    expect(((await (await api.get(`/servers/${server.id}`)).json()) as ServerAnswer).name).toBe(server.name);
  });

  it("changes a server in place with PATCH: the same id, found by its new name, audited without the key; a taken name is 409", async () => {
    const server = await seedServer(ctx);
    const neighbour = await seedServer(ctx);
    const api = client(root, full.key);
    const newName = `renamed-${randomBytes(3).toString("hex")}`;
    const newKey = generateKeyPair().private;
    const res = await api.patch(`/servers/${server.id}`, { name: newName, port: 2222, private_key: newKey });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: server.id, name: newName, port: 2222, host: server.host });
    const byName = (await (await api.get(`/servers/${newName}`)).json()) as ServerAnswer;
    expect(byName).toMatchObject({
      id: server.id,
      port: 2222,
      host_key_fingerprint: server.host_key_fingerprint,
    });

    const [row] = await changes("server.update", { serverId: server.id });
    expect(row).toMatchObject({
      actor: `integration_key:${full.id}`,
      details: {
        name: newName,
        changed: ["name", "port", "private_key"],
        changes: {
          name: { from: server.name, to: newName },
          port: { from: 22, to: 2222 },
          private_key: "replaced",
        },
      },
    });
    const { text } = await dumpAllTables(db);
    expect(text).not.toContain(newKey.split("\n")[1]!);

    const taken = await api.patch(`/servers/${server.id}`, { name: neighbour.name });
    expect(taken.status).toBe(409);
    expect(await taken.json()).toMatchObject({ error: "conflict" });
    const badKey = await api.patch(`/servers/${server.id}`, { passphrase: "only-a-passphrase" });
    expect(badKey.status).toBe(422);
    expect(((await badKey.json()) as { fields: Json }).fields).toHaveProperty("passphrase");
    expect((await changes("server.update", { serverId: server.id })).length).toBe(1);
  });

  it("re-pins a re-keyed host in place, so the same automation key and server id run again", async () => {
    const api = client(root, full.key);
    const added = await api.post("/servers", {
      name: `host-${randomBytes(3).toString("hex")}`,
      host: host.host,
      port: host.port,
      user: host.username,
      private_key: host.privateKey,
      trust_on_first_use: true,
    });
    expect(added.status).toBe(201);
    const server = (await added.json()) as ServerAnswer;
    expect(server.host_key_fingerprint).toBe(host.hostKeyFingerprint);
    const created = await api.post("/automation-keys", {
      name: "ci",
      operations: ["exec"],
      server_ids: [server.id],
    });
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as KeyAnswer;
    const ci = automation(key!);
    const first = await ci.exec(server.id, "echo before");
    expect(first).toMatchObject({
      status: 200,
      body: { status: "completed", exit_code: 0, stdout: "before\n" },
    });

    const oldFingerprint = host.hostKeyFingerprint;
    const newFingerprint = await host.replaceHostKey();
    const refused = await ci.exec(server.id, "echo refused");
    expect(refused.body).toMatchObject({ status: "failed", exit_code: 255 });
    expect(refused.body.stderr).toContain("host_key_mismatch");

    const pinned = await api.post(`/servers/${server.id}/host-key`, { trust_on_first_use: true });
    expect(pinned.status).toBe(200);
    expect(await pinned.json()).toMatchObject({ id: server.id, host_key_fingerprint: newFingerprint });
    const pins = await changes("server.host_key.pin", { serverId: server.id });
    expect(pins.map((p) => p.details)).toEqual([
      expect.objectContaining({ previous_fingerprint: null, host_key_fingerprint: oldFingerprint }),
      expect.objectContaining({
        previous_fingerprint: oldFingerprint,
        host_key_fingerprint: newFingerprint,
        method: "trust_on_first_use",
      }),
    ]);
    expect(pins[1]!.actor).toBe(`integration_key:${full.id}`);

    const again = await ci.exec(server.id, "echo after");
    expect(again).toMatchObject({
      status: 200,
      body: { status: "completed", exit_code: 0, stdout: "after\n" },
    });

    // A fingerprint given for the re-pin is checked against the host: a wrong one changes nothing.
    const wrong = await api.post(`/servers/${server.id}/host-key`, { host_key_fingerprint: oldFingerprint });
    expect(wrong.status).toBe(502);
    expect(await wrong.json()).toMatchObject({ error: "host_key_mismatch" });
    expect(
      ((await (await api.get(`/servers/${server.id}`)).json()) as ServerAnswer).host_key_fingerprint,
    ).toBe(newFingerprint);
  });

  it("creates, changes and revokes automation keys, each change taking effect on the key's next request", async () => {
    const serverA = await seedServer(ctx);
    const api = client(root, full.key);
    const created = await api.post("/automation-keys", {
      name: "deploy-bot",
      operations: ["exec"],
      server_ids: [serverA.id],
      rate_limit_per_minute: 50,
      expires: "30d",
    });
    expect(created.status).toBe(201);
    const made = (await created.json()) as KeyAnswer;
    expect(made).toMatchObject({
      name: "deploy-bot",
      status: "active",
      server_ids: [serverA.id],
      all_servers: false,
    });
    expect(made.key).toMatch(/^rca_/);
    const bot = automation(made.key!);
    expect(await (await bot.key()).json()).toMatchObject({
      servers: [serverA.id],
      rate_limit_per_minute: 50,
    });

    const listed = (await (await client(root, readOnly.key).get("/automation-keys")).json()) as {
      items: KeyAnswer[];
      next_cursor: null;
    };
    const entry = listed.items.find((k) => k.id === made.id);
    expect(entry).toMatchObject({
      name: "deploy-bot",
      prefix: made.prefix,
      status: "active",
      scope: "exec on 1 server",
      created_at: made.created_at,
      expires_at: made.expires_at,
      last_used_ip: "127.0.0.1",
    });
    expect(Date.parse(String(entry?.last_used_at))).toBeGreaterThanOrEqual(
      Date.parse(String(made.created_at)),
    );
    expect(entry).not.toHaveProperty("key");
    expect(JSON.stringify(listed)).not.toContain(made.key);

    // Narrowed to an address the caller is not at: the very next request is refused.
    const narrowed = await api.patch(`/automation-keys/${made.id}`, {
      name: "deploy-bot-2",
      operations: ["exec", "deploy"],
      all_servers: true,
      allowed_ips: ["192.0.2.0/24"],
    });
    expect(narrowed.status).toBe(200);
    expect(await narrowed.json()).toMatchObject({
      id: made.id,
      name: "deploy-bot-2",
      all_servers: true,
      server_ids: [],
    });
    expect((await bot.key()).status).toBe(403);
    const widened = await api.patch(`/automation-keys/${made.id}`, { allowed_ips: [], expires: "never" });
    expect(await widened.json()).toMatchObject({ expires_at: null, allowed_ips: [] });
    expect(await (await bot.key()).json()).toMatchObject({
      name: "deploy-bot-2",
      servers: "all",
      operations: ["exec", "deploy"],
    });

    const updates = await changes("key.update", { keyId: made.id });
    expect(updates[0]).toMatchObject({
      actor: `integration_key:${full.id}`,
      details: {
        changed: ["name", "operations", "all_servers", "server_ids", "allowed_ips"],
        before: { name: "deploy-bot", all_servers: false, server_ids: [serverA.id], allowed_ips: [] },
        after: { name: "deploy-bot-2", all_servers: true, server_ids: [], allowed_ips: ["192.0.2.0/24"] },
      },
    });

    // Scope ids are checked in the caller's organisation.
    const foreign = await seedServer(ctx, otherOrg.name);
    const stray = await api.patch(`/automation-keys/${made.id}`, { server_ids: [foreign.id] });
    expect(stray.status).toBe(404);

    const revoked = await api.post(`/automation-keys/${made.id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ id: made.id, status: "revoked" });
    expect((await bot.key()).status).toBe(401);
    expect((await api.patch(`/automation-keys/${made.id}`, { name: "back" })).status).toBe(409);
    expect((await client(root, otherFull.key).get(`/automation-keys/${made.id}`)).status).toBe(404);
    expect(await changes("key.revoke", { keyId: made.id })).toHaveLength(1);
  });

  it("reaches a server with its new private key from the next command on, never over a connection made with the old one", async () => {
    const server = await seedTestHostServer();
    const api = client(root, full.key);
    const made = (await (
      await api.post("/automation-keys", { name: "ci", operations: ["exec"], server_ids: [server.id] })
    ).json()) as KeyAnswer;
    const ci = automation(made.key!);
    expect((await ci.exec(server.id, "true")).body).toMatchObject({ status: "completed", exit_code: 0 });
    expect(await (await api.post(`/servers/${server.id}/test`)).json()).toMatchObject({
      ok: true,
      remote_user: host.username,
    });

    // A key the host does not know: the pooled connection made with the old key must not serve it.
    const unknownKey = generateKeyPair().private;
    expect((await api.patch(`/servers/${server.id}`, { private_key: unknownKey })).status).toBe(200);
    const refused = await ci.exec(server.id, "true");
    expect(refused.body).toMatchObject({ status: "failed", exit_code: 255 });
    expect(refused.body.stderr).toContain("auth_failed");

    expect((await api.patch(`/servers/${server.id}`, { private_key: host.privateKey })).status).toBe(200);
    expect((await ci.exec(server.id, "echo back")).body).toMatchObject({
      status: "completed",
      stdout: "back\n",
    });
  });

  it("runs a command for an integration key like the automation /exec, the operation carrying the key as actor", async () => {
    const server = await seedTestHostServer();
    const api = client(root, full.key);
    const secret = `value-${randomBytes(6).toString("hex")}`;
    const command = 'echo "hello $WHO"; printf %s "$TOKEN" | wc -c';
    const res = await api.post(`/servers/${server.name}/exec`, {
      command,
      env: { WHO: "world", TOKEN: secret },
      run_id: "mgmt-1",
    });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as ExecAnswer;
    expect(answer).toMatchObject({ status: "completed", exit_code: 0 });
    expect(answer.stdout).toMatch(/^hello world\n\s*\d+\n$/);

    const [op] = await ctx.db.select().from(operations).where(eq(operations.id, answer.operation_id));
    expect(op).toMatchObject({
      actor: `integration_key:${full.id}`,
      keyId: null,
      serverId: server.id,
      orgId,
      runId: "mgmt-1",
    });
    const started = (await changes("operation.start", { serverId: server.id })).at(-1);
    expect(started).toMatchObject({
      actor: `integration_key:${full.id}`,
      operationId: answer.operation_id,
      details: { type: "exec", server: server.name, command_length: command.length, run_id: "mgmt-1" },
    });
    expect(JSON.stringify(started)).not.toContain(secret);

    // With Accept: text/event-stream it streams, as the automation API does.
    const stream = await api.post(
      `/servers/${server.id}/exec`,
      { command: "echo streamed" },
      { Accept: "text/event-stream" },
    );
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    const events = await readEvents(stream, (e) => e.event === "done");
    expect(outputText(events, "stdout")).toBe("streamed\n");

    const mismatch = await api.post(`/servers/${server.id}/exec`, {
      server_id: "00000000-0000-4000-8000-000000000000",
      command: "true",
    });
    expect(mismatch.status).toBe(422);
    expect(((await mismatch.json()) as { fields: Json }).fields).toHaveProperty("server_id");
    const tooLong = await api.post(`/servers/${server.id}/exec`, {
      command: "true",
      timeout_seconds: 10 ** 7,
    });
    expect(tooLong.status).toBe(422);
    expect(((await tooLong.json()) as Json).detail).toMatch(
      /timeout_seconds must be a whole number of seconds from 1 to \d+/,
    );
  });

  /** The test host as a server of the organisation, added through the API with its key pinned as it is now. */
  async function seedTestHostServer(): Promise<ServerAnswer> {
    const res = await client(root, full.key).post("/servers", {
      name: `exec-${randomBytes(3).toString("hex")}`,
      host: host.host,
      port: host.port,
      user: host.username,
      private_key: host.privateKey,
      host_key_fingerprint: host.hostKeyFingerprint,
    });
    expect(res.status).toBe(201);
    return (await res.json()) as ServerAnswer;
  }
});

describe("an automation key revoked through one instance's management API", () => {
  let db: TestDatabase;
  let secondDb: DatabaseHandle;
  let first: TestApp;
  let second: TestApp;
  let served: ServedApp;
  let secondServed: ServedApp;

  beforeAll(async () => {
    const secrets = new SecretBox(randomBytes(32));
    db = await createTestDatabase("postgres");
    // A second instance on the same PostgreSQL, as in operations-instances.test.ts.
    secondDb = await openDatabase({ databaseUrl: db.url, maxConnections: 4 });
    first = createTestApp(db, { secrets });
    second = createTestApp(secondDb, { secrets });
    [served, secondServed] = await Promise.all([serveTestApp(first), serveTestApp(second)]);
  });
  afterAll(async () => {
    await Promise.all([served?.close(), secondServed?.close()]);
    await Promise.all([first?.close(), second?.close()]);
    await secondDb?.close();
    await db?.close();
  });

  it("is refused on the next request to the other instance", async () => {
    const ctx = testContext(db);
    const { key: adminKey } = await seedIntegrationKey(ctx.db, {
      orgId: (await resolveOrg(ctx, undefined)).id,
      acl: PRESET_ACLS.full_access,
    });
    const api = client(served.base.replace(API_BASE_PATH, MANAGEMENT_BASE_PATH), adminKey);
    const made = (await (
      await api.post("/automation-keys", { name: "ci", operations: ["exec"], all_servers: true })
    ).json()) as KeyAnswer;
    const onSecond = () =>
      fetch(`${secondServed.base}/key`, { headers: { Authorization: `Bearer ${made.key}` } });
    expect((await onSecond()).status).toBe(200);
    expect((await api.post(`/automation-keys/${made.id}/revoke`)).status).toBe(200);
    expect((await onSecond()).status).toBe(401);
  });
});
