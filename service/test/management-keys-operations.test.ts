import { randomBytes, randomInt } from "node:crypto";
import { aclPermissions, MANAGEMENT_BASE_PATH, roleAcl } from "@reoclo/protocol";
import { pgrep } from "@reoclo/testbed/process-tree";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { eq, sql } from "drizzle-orm";
import type { IntegrationKeyView } from "../src/keys/integration-keys";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN } from "../src/access/principal";
import { listAuditVerb } from "../src/control/audit";
import { createIntegrationKeyVerb } from "../src/control/integration-keys";
import { invoke } from "../src/control/verb";
import { openDatabase, type DatabaseHandle } from "../src/db/database";
import { integrationKeys, operations } from "../src/db/schema";
import type { OperationServices } from "../src/operations/start";
import { resolveOrg } from "../src/orgs/orgs";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { dumpAllTables } from "./fixtures/db";
import { seedOrg } from "./fixtures/entities";
import { outputText, readEvents, startExecEnv, type ExecEnv, type SseEvent } from "./fixtures/exec-env";
import { seedPerson, type TestPerson } from "./fixtures/people";

// Spec §11: integration keys (never more than their maker's role, stopped when the maker is removed
// or the key revoked, on every instance), the organisation's operations for people and integration
// keys (what a CI run did, its live output, cancel), and the audit log, through real HTTP.

type As = { cookie: string } | { key: string } | { apiKey: string } | null;
type Json = Record<string, unknown>;

/** What the API answers for a key: the service's view, and the plaintext on creation. */
type KeyAnswer = IntegrationKeyView & { key: string };

interface OperationItem {
  operation_id: string;
  status: string;
  outcome: string;
  reason: string | null;
  run_id: string | null;
  server_id: string;
  key_id: string | null;
  actor: string | null;
  created_at: string;
  result?: { stdout: string; exit_code: number };
}

interface AuditRow {
  id: number;
  outcome: string;
  reason: string;
  key_id: string | null;
  server_id: string | null;
  operation_id: string | null;
  path: string | null;
  run_id: string | null;
  actor: string | null;
  action: string | null;
  details: Json | null;
}

interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

const marker = () => `9${randomInt(100_000, 999_999)}`;
const label = () => `script-${randomBytes(3).toString("hex")}`;

describe.each(DRIVERS)("the management API: integration keys, operations and audit, on %s", (driver) => {
  let env: ExecEnv;
  let svc: OperationServices;
  let origin: string;
  let orgId: string;
  let automationKeyId: string;
  let viewer: TestPerson;
  let dev: TestPerson;
  let otherDev: TestPerson;
  let manager: TestPerson;
  let otherOrgKey: KeyAnswer;

  /** A request to the management API (or `base`) as a person (cookie), a key (Bearer) or X-API-Key. */
  const call = (as: As, path: string, init: { method?: string; body?: unknown; headers?: Json } = {}) =>
    fetch(`${origin}${MANAGEMENT_BASE_PATH}${path}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: {
        // Browser writes carry their page's Origin; the service accepts only its own.
        ...(as && "cookie" in as ? { Cookie: as.cookie, Origin: origin } : {}),
        ...(as && "key" in as ? { Authorization: `Bearer ${as.key}` } : {}),
        ...(as && "apiKey" in as ? { "X-API-Key": as.apiKey } : {}),
        ...(init.body === undefined ? {} : { "Content-Type": "application/json" }),
        ...(init.headers as Record<string, string> | undefined),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  const json = async <T>(res: Response, status = 200): Promise<T> => {
    const body = (await res.json()) as T;
    expect({ status: res.status, body }).toMatchObject({ status });
    return body;
  };
  const post = (as: As, path: string, body: unknown = {}) => call(as, path, { method: "POST", body });
  const createKey = async (as: As, body: Json) =>
    json<KeyAnswer>(await post(as, "/integration-keys", { label: label(), expires: "never", ...body }), 201);
  const adminKey = (preset: string, org?: string) =>
    invoke(createIntegrationKeyVerb, svc, ADMIN, { org, label: label(), preset, expires: "never" });
  const auditOf = async (as: As, query: string) =>
    (await json<Page<AuditRow>>(await call(as, `/audit?${query}`))).items;
  const operationsOf = async (as: As, query: string) =>
    json<Page<OperationItem>>(await call(as, `/operations?${query}`));
  const execAs = async (body: Json) => {
    const res = await env.post("/exec", { server_id: env.serverId, ...body });
    return json<{ operation_id: string; status: string }>(res);
  };

  beforeAll(async () => {
    env = await startExecEnv({ driver });
    svc = { ctx: env.ctx, runner: env.t.runner };
    origin = new URL(env.base).origin;
    orgId = (await resolveOrg(env.ctx, undefined)).id;
    automationKeyId = (await json<{ id: string }>(await env.get("/key"))).id;
    const person = (role: TestPerson["role"]) => seedPerson(env.db.db, { orgId, role });
    [viewer, dev, otherDev, manager] = await Promise.all([
      person("viewer"),
      person("developer"),
      person("developer"),
      person("manager"),
    ]);
    const other = await seedOrg(env.ctx);
    otherOrgKey = await adminKey("full_access", other.name);
  });
  afterAll(async () => {
    await env?.close();
  });

  describe("integration keys", () => {
    it("lets a developer create a Full Access key, capped to the developer role, shown once and stored as its hash", async () => {
      const res = await post({ cookie: dev.cookie }, "/integration-keys", {
        label: "deploy script",
        preset: "full_access",
        expires: "30d",
      });
      const created = await json<KeyAnswer>(res, 201);
      expect(created).toMatchObject({
        label: "deploy script",
        preset: "full_access",
        status: "active",
        created_by: dev.id,
        created_by_email: dev.email,
        last_used_at: null,
        revoked_at: null,
      });
      expect(created.key).toMatch(/^rk_t_[0-9A-Za-z]{36}$/);
      expect(created.key.startsWith(created.prefix)).toBe(true);
      const days = (Date.parse(created.expires_at!) - Date.parse(created.created_at)) / 86_400_000;
      expect(days).toBe(30);
      // Full Access, within what a developer may do: no people, no changes to servers.
      const held = aclPermissions(created.permissions);
      expect(held).toEqual(aclPermissions(roleAcl("developer")));
      expect(held).not.toContain("users:write");
      expect(held).not.toContain("users:read");
      expect(held).not.toContain("servers:write");
      expect(held).toContain("servers:execute");
      const [row] = await env.db.db
        .select({ permissions: integrationKeys.permissions })
        .from(integrationKeys)
        .where(eq(integrationKeys.id, created.id));
      expect(row?.permissions).toEqual(created.permissions);
      // Its plaintext is nowhere: not in a table, not in the list, not in the audit.
      expect((await dumpAllTables(env.db)).text).not.toContain(created.key);

      const list = await json<Page<KeyAnswer>>(await call({ cookie: viewer.cookie }, "/integration-keys"));
      expect(list.next_cursor).toBeNull();
      const listed = list.items.find((k) => k.id === created.id);
      expect(listed).toMatchObject({
        prefix: created.prefix,
        status: "active",
        created_by: dev.id,
        last_used_at: null,
      });
      expect(listed).not.toHaveProperty("key");
      expect(listed?.permission_summary).toContain("servers:execute");
      expect(listed?.permission_summary).not.toContain("users:");

      // The key works as Bearer and as X-API-Key, and its last use is shown with the address.
      expect((await call({ key: created.key }, "/integration-keys")).status).toBe(200);
      expect((await call({ apiKey: created.key }, "/operations")).status).toBe(200);
      const used = (
        await json<Page<KeyAnswer>>(await call({ key: created.key }, "/integration-keys"))
      ).items.find((k) => k.id === created.id);
      expect(used?.last_used_at).not.toBeNull();
      expect(used?.last_used_ip).toBe("127.0.0.1");

      const audit = await auditOf(
        { cookie: viewer.cookie },
        `action=integration_key.create&actor=user:${dev.id}`,
      );
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({
        outcome: "allowed",
        actor: `user:${dev.id}`,
        key_id: created.id,
        details: { label: "deploy script", prefix: created.prefix, preset: "full_access" },
      });
      expect(JSON.stringify(audit)).not.toContain(created.key);
    });

    it("lets a developer create an integration key but not an automation key", async () => {
      const refused = await post({ cookie: dev.cookie }, "/automation-keys", {
        name: "ci",
        operations: ["exec"],
        all_servers: true,
      });
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as Json).error).toBe("forbidden");
      const keys = await json<Page<{ name: string }>>(await call({ cookie: dev.cookie }, "/automation-keys"));
      expect(keys.items.map((k) => k.name)).not.toContain("ci");
      const made = await post({ cookie: dev.cookie }, "/integration-keys", {
        label: "mine",
        preset: "read_only",
        expires: "30d",
      });
      expect(made.status).toBe(201);
      // The new key works.
      const key = ((await made.json()) as { key: string }).key;
      expect((await call({ key }, "/auth/me")).status).toBe(200);
    });

    it("refuses a Read Only key that tries to create a key (403), and keeps a key's keys within its own ACL", async () => {
      const readOnly = await adminKey("read_only");
      expect(readOnly.created_by).toBeNull();
      expect((await call({ key: readOnly.key }, "/integration-keys")).status).toBe(200);
      const refused = await post({ key: readOnly.key }, "/integration-keys", {
        label: label(),
        preset: "read_only",
        expires: "never",
      });
      expect(refused.status).toBe(403);
      expect(await refused.json()).toMatchObject({
        error: "forbidden",
        detail: expect.stringContaining("api_keys:write") as string,
      });

      // A developer's Deploy Only key cannot make itself a key that changes servers or reads the audit.
      const deployOnly = await createKey({ cookie: dev.cookie }, { preset: "deploy_only" });
      const sub = await json<Page<never>>(
        await post({ key: deployOnly.key }, "/integration-keys", { label: label(), preset: "read_only" }),
        403,
      );
      expect(sub).toMatchObject({ error: "forbidden" });
      // A developer's Full Access key may: the new one is within the key and within the developer.
      const full = await createKey({ cookie: dev.cookie }, { preset: "full_access" });
      const made = await createKey(
        { key: full.key },
        {
          preset: "custom",
          permissions: { servers: ["read", "write", "execute"], audit_logs: ["read"], users: ["read"] },
        },
      );
      expect(made.permissions).toEqual({ servers: ["read", "execute"], audit_logs: ["read"] });
      expect(made.created_by).toBe(dev.id);
      // Its creation is the first key's doing: the audit's key filter finds both rows.
      const rows = await auditOf({ cookie: viewer.cookie }, `key=${full.id}`);
      expect(rows.map((r) => [r.action, r.actor, r.key_id])).toEqual([
        ["integration_key.create", `integration_key:${full.id}`, made.id],
        ["integration_key.create", `user:${dev.id}`, full.id],
      ]);
    });

    it.each([
      ["custom without permissions", { preset: "custom" }, "permissions"],
      [
        "permissions with a preset",
        { preset: "read_only", permissions: { servers: ["read"] } },
        "permissions",
      ],
      [
        "an unknown resource",
        { preset: "custom", permissions: { clusters: ["read"] } },
        "permissions.clusters",
      ],
      [
        "a resource named after an Object property",
        { preset: "custom", permissions: { constructor: ["read"] } },
        "permissions.constructor",
      ],
      [
        "nothing within the maker's role",
        { preset: "custom", permissions: { users: ["read"] } },
        "permissions",
      ],
      ["an unknown preset", { preset: "admin" }, "preset"],
      ["an unknown expiry", { preset: "read_only", expires: "2d" }, "expires"],
    ])("refuses %s with 422 naming the field", async (_rule, body, field) => {
      const res = await post({ cookie: dev.cookie }, "/integration-keys", { label: label(), ...body });
      const answer = await json<{ error: string; fields: Record<string, string[]> }>(res, 422);
      expect(answer.error).toBe("validation");
      expect(Object.keys(answer.fields)).toContain(field);
    });

    it("revokes, with a leaked integration key, every key made with it, at any depth", async () => {
      const leaked = await createKey({ cookie: manager.cookie }, { preset: "full_access" });
      const child = await createKey({ key: leaked.key }, { preset: "full_access" });
      const grandchild = await createKey({ key: child.key }, { preset: "read_only" });
      expect(child).toMatchObject({ created_by: manager.id, created_by_key: leaked.id });
      const automation = await json<{ id: string; key: string; created_by_key: string }>(
        await post({ key: leaked.key }, "/automation-keys", {
          name: label(),
          operations: ["exec"],
          all_servers: true,
        }),
        201,
      );
      expect(automation.created_by_key).toBe(leaked.id);
      const unrelated = await createKey({ cookie: manager.cookie }, { preset: "read_only" });

      expect((await post({ cookie: manager.cookie }, `/integration-keys/${leaked.id}/revoke`)).status).toBe(
        200,
      );
      for (const k of [leaked, child, grandchild])
        expect((await call({ key: k.key }, "/servers")).status, k.label).toBe(401);
      const onAutomation = await fetch(`${env.base}/key`, {
        headers: { Authorization: `Bearer ${automation.key}` },
      });
      expect(onAutomation.status).toBe(401);
      expect((await call({ key: unrelated.key }, "/servers")).status).toBe(200);
      const [row] = await auditOf(
        { cookie: manager.cookie },
        `action=integration_key.revoke&key=${leaked.id}`,
      );
      expect(row?.details).toMatchObject({
        also_revoked: {
          integration_keys: expect.arrayContaining([child.prefix, grandchild.prefix]) as unknown,
          automation_keys: [automation.key.slice(0, 10)],
        },
      });
    });

    it("stops a key when the person who made it is removed", async () => {
      const leaver = await seedPerson(env.db.db, { orgId, role: "developer" });
      const key = await createKey({ cookie: leaver.cookie }, { preset: "read_only" });
      expect((await call({ key: key.key }, "/operations")).status).toBe(200);
      // Removed the way an owner removes a person: through the API.
      const owner = await seedPerson(env.db.db, { orgId, role: "owner" });
      expect((await call({ cookie: owner.cookie }, `/users/${leaver.id}`, { method: "DELETE" })).status).toBe(
        200,
      );
      const refused = await call({ key: key.key }, "/operations");
      expect(refused.status).toBe(401);
      expect(await refused.json()).toMatchObject({ error: "unauthorized" });
      expect((await call({ cookie: leaver.cookie }, "/operations")).status).toBe(401);
      // The refusal is in the organisation's audit, naming the key.
      await env.t.deps.audit.flush();
      const rows = await auditOf(
        { cookie: manager.cookie },
        `actor=integration_key:${key.id}&outcome=denied`,
      );
      expect(rows.map((r) => r.reason)).toEqual(["creator_removed"]);
    });

    describe("on two instances sharing the database", () => {
      let secondDb: DatabaseHandle;
      let second: TestApp;
      let served: ServedApp;
      const onSecond = (key: string, path: string) =>
        fetch(`${new URL(served.base).origin}${MANAGEMENT_BASE_PATH}${path}`, {
          headers: { Authorization: `Bearer ${key}` },
        });

      beforeAll(async () => {
        secondDb = env.db.url ? await openDatabase({ databaseUrl: env.db.url, maxConnections: 4 }) : env.db;
        second = createTestApp(secondDb, { secrets: env.secrets });
        served = await serveTestApp(second);
      });
      afterAll(async () => {
        await served?.close();
        await second?.close();
        if (secondDb !== env.db) await secondDb?.close();
      });

      it("refuses a revoked key on the next request of the other instance; developers revoke only their own keys", async () => {
        const mine = await createKey({ cookie: dev.cookie }, { preset: "read_only" });
        const theirs = await createKey({ cookie: otherDev.cookie }, { preset: "read_only" });
        expect((await onSecond(mine.key, "/integration-keys")).status).toBe(200);

        const notMine = await post({ cookie: dev.cookie }, `/integration-keys/${theirs.id}/revoke`);
        expect(notMine.status).toBe(403);
        expect(await notMine.json()).toMatchObject({ error: "forbidden" });
        const revoked = await json<KeyAnswer>(
          await post({ cookie: dev.cookie }, `/integration-keys/${mine.id}/revoke`),
        );
        expect(revoked).toMatchObject({ id: mine.id, status: "revoked" });
        expect((await onSecond(mine.key, "/integration-keys")).status).toBe(401);
        // Again: harmless, the first revocation time kept.
        const again = await json<KeyAnswer>(
          await post({ cookie: dev.cookie }, `/integration-keys/${mine.id}/revoke`),
        );
        expect(again.revoked_at).toBe(revoked.revoked_at);

        // A manager revokes anyone's; nobody reaches another organisation's key.
        expect((await onSecond(theirs.key, "/integration-keys")).status).toBe(200);
        await json(await post({ cookie: manager.cookie }, `/integration-keys/${theirs.id}/revoke`));
        expect((await onSecond(theirs.key, "/integration-keys")).status).toBe(401);
        const foreign = await post({ cookie: manager.cookie }, `/integration-keys/${otherOrgKey.id}/revoke`);
        expect(foreign.status).toBe(404);
        expect((await post({ cookie: manager.cookie }, "/integration-keys/not-an-id/revoke")).status).toBe(
          404,
        );

        const rows = (await auditOf({ cookie: viewer.cookie }, "action=integration_key.revoke")).filter(
          (r) => r.key_id === mine.id || r.key_id === theirs.id,
        );
        expect(rows.map((r) => [r.actor, r.key_id])).toEqual([
          [`user:${manager.id}`, theirs.id],
          [`user:${dev.id}`, mine.id],
        ]);
      });
    });

    it("keeps each kind of key to its own API", async () => {
      const key = await createKey({ cookie: dev.cookie }, { preset: "full_access" });
      // An integration key on the automation API.
      const onAutomation = await fetch(`${env.base}/key`, {
        headers: { Authorization: `Bearer ${key.key}` },
      });
      expect(onAutomation.status).toBe(401);
      expect(await onAutomation.json()).toMatchObject({ error: "unauthorized" });
      const exec = await fetch(`${env.base}/exec`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key.key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ server_id: env.serverId, command: "true" }),
      });
      expect(exec.status).toBe(401);
      // An automation key on the management API, either header.
      for (const as of [{ key: env.key }, { apiKey: env.key }]) {
        const res = await call(as, "/operations");
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({
          error: "unauthorized",
          detail: expect.stringContaining("only on the automation API") as string,
        });
      }
    });
  });

  describe("operations and the audit log", () => {
    it("shows a CI run's operations to a person, filtered, with their events, and cancels a running one", async () => {
      const runId = `ci-${randomBytes(4).toString("hex")}`;
      const m = marker();
      const echo = await execAs({ command: "echo hello-from-ci", run_id: runId });
      expect(echo.status).toBe("completed");
      const sleep = await execAs({ command: `sleep ${m}`, run_id: runId, timeout_seconds: 600 });
      expect(sleep.status).toBe("running");
      expect(pgrep(`sleep ${m}`)).not.toBe("");

      // Newest first, with the automation key that started them.
      const all = await operationsOf({ cookie: viewer.cookie }, `run_id=${runId}`);
      expect(all.next_cursor).toBeNull();
      expect(all.items.map((o) => o.operation_id)).toEqual([sleep.operation_id, echo.operation_id]);
      expect(all.items[1]).toMatchObject({
        status: "completed",
        outcome: "completed",
        run_id: runId,
        server_id: env.serverId,
        key_id: automationKeyId,
        actor: null,
        result: { stdout: "hello-from-ci\n", exit_code: 0 },
      });
      const ids = async (query: string) =>
        (await operationsOf({ cookie: viewer.cookie }, query)).items.map((o) => o.operation_id);
      expect(await ids(`run_id=${runId}&server=${env.serverId}&status=running`)).toEqual([
        sleep.operation_id,
      ]);
      expect(await ids(`run_id=${runId}&status=completed`)).toEqual([echo.operation_id]);
      expect(await ids(`run_id=${runId}&key=${automationKeyId}`)).toHaveLength(2);
      expect(await ids(`run_id=${runId}&user=${dev.id}`)).toEqual([]);
      expect(await ids(`run_id=${runId}&since=${new Date(Date.now() + 60_000).toISOString()}`)).toEqual([]);
      // A page at a time.
      const first = await operationsOf({ cookie: viewer.cookie }, `run_id=${runId}&limit=1`);
      expect(first.items.map((o) => o.operation_id)).toEqual([sleep.operation_id]);
      const rest = await operationsOf(
        { cookie: viewer.cookie },
        `run_id=${runId}&limit=1&cursor=${first.next_cursor}`,
      );
      expect(rest).toMatchObject({ items: [{ operation_id: echo.operation_id }], next_cursor: null });

      const shown = await json<OperationItem>(
        await call({ cookie: viewer.cookie }, `/operations/${echo.operation_id}`),
      );
      expect(shown).toMatchObject({
        operation_id: echo.operation_id,
        run_id: runId,
        key_id: automationKeyId,
      });

      // The finished one's events, then resumed after its output.
      const events = await readEvents(
        await call({ cookie: viewer.cookie }, `/operations/${echo.operation_id}/events`),
      );
      expect(events.map((e) => e.event)).toEqual(["status", "output", "status", "end"]);
      expect(outputText(events)).toBe("hello-from-ci\n");
      const output = events.find((e) => e.event === "output")!;
      const resumed = await readEvents(
        await call({ cookie: viewer.cookie }, `/operations/${echo.operation_id}/events`, {
          headers: { "Last-Event-ID": output.id },
        }),
      );
      expect(resumed.filter((e) => e.event === "output")).toEqual([]);
      expect(JSON.parse(resumed.at(-1)!.data)).toMatchObject({ outcome: "completed", exit_code: 0 });

      // Following the running one while a developer cancels it; a viewer may not.
      const stream = await call({ cookie: dev.cookie }, `/operations/${sleep.operation_id}/events`);
      expect(stream.headers.get("content-type")).toContain("text/event-stream");
      const following = readEvents(stream);
      const refused = await post({ cookie: viewer.cookie }, `/operations/${sleep.operation_id}/cancel`);
      expect(refused.status).toBe(403);
      const cancelled = await json<OperationItem>(
        await post({ cookie: dev.cookie }, `/operations/${sleep.operation_id}/cancel`),
      );
      expect(cancelled).toMatchObject({ status: "failed", outcome: "cancelled" });
      expect(cancelled.reason).toMatch(new RegExp(`^Cancelled by ${dev.email} \\(developer\\)`));
      const followed: SseEvent[] = await following;
      expect(followed.at(-1)?.event).toBe("end");
      expect(JSON.parse(followed.at(-1)!.data)).toMatchObject({ outcome: "cancelled", exit_code: 130 });
      await expect.poll(() => pgrep(`sleep ${m}`), { timeout: 10_000 }).toBe("");
      // Cancelling again is harmless and not audited twice.
      expect((await post({ cookie: dev.cookie }, `/operations/${sleep.operation_id}/cancel`)).status).toBe(
        200,
      );

      // The audit: both /exec decisions of the run, and the cancel with who made it.
      const allowed = await auditOf({ cookie: viewer.cookie }, `run_id=${runId}&outcome=allowed`);
      expect(allowed.map((r) => [r.operation_id, r.key_id, r.path])).toEqual([
        [sleep.operation_id, automationKeyId, "/api/automation/v1/exec"],
        [echo.operation_id, automationKeyId, "/api/automation/v1/exec"],
      ]);
      const cancels = await auditOf(
        { cookie: viewer.cookie },
        `action=operation.cancel&server=${env.serverId}`,
      );
      expect(cancels).toHaveLength(1);
      expect(cancels[0]).toMatchObject({
        actor: `user:${dev.id}`,
        operation_id: sleep.operation_id,
        details: { run_id: runId, operation_type: "exec" },
      });
    });

    it("ends a person's event stream when they sign out, and an integration key's when it is revoked; the operation goes on", async () => {
      const m = marker();
      const sleep = await execAs({ command: `sleep ${m}`, timeout_seconds: 600 });
      expect(sleep.status).toBe("running");
      const leaver = await seedPerson(env.db.db, { orgId, role: "viewer" });
      const byPerson = readEvents(
        await call({ cookie: leaver.cookie }, `/operations/${sleep.operation_id}/events`),
      );
      expect((await post({ cookie: leaver.cookie }, "/auth/logout")).status).toBe(200);
      const personEvents: SseEvent[] = await byPerson;
      expect(personEvents.at(-1)?.event).toBe("error");
      expect(JSON.parse(personEvents.at(-1)!.data)).toMatchObject({ error: "unauthorized" });

      const made = await json<KeyAnswer>(
        await post({ cookie: dev.cookie }, "/integration-keys", {
          label: "follow",
          preset: "read_only",
          expires: "30d",
        }),
        201,
      );
      const byKey = readEvents(await call({ key: made.key }, `/operations/${sleep.operation_id}/events`));
      expect((await post({ cookie: dev.cookie }, `/integration-keys/${made.id}/revoke`)).status).toBe(200);
      const keyEvents: SseEvent[] = await byKey;
      expect(keyEvents.at(-1)?.event).toBe("error");
      expect(JSON.parse(keyEvents.at(-1)!.data)).toMatchObject({ error: "key_revoked" });

      // Neither ended the command on the host.
      expect(pgrep(`sleep ${m}`)).not.toBe("");
      await post({ cookie: dev.cookie }, `/operations/${sleep.operation_id}/cancel`);
      await expect.poll(() => pgrep(`sleep ${m}`), { timeout: 10_000 }).toBe("");
    });

    it("pages operations created in the same millisecond without skipping or repeating one", async () => {
      const runId = `batch-${randomBytes(4).toString("hex")}`;
      // Microseconds apart within one millisecond, and two at the very same instant (ordered by id).
      const instants = [
        "2024-05-01T10:00:00.123789Z",
        "2024-05-01T10:00:00.123456Z",
        "2024-05-01T10:00:00.123456Z",
      ];
      const inserted = await env.db.db
        .insert(operations)
        .values(
          instants.map((at) => ({
            orgId,
            serverId: env.serverId,
            operationType: "exec" as const,
            status: "completed" as const,
            timeoutSeconds: 60,
            runId,
            createdAt: sql`${at}::timestamptz`,
          })),
        )
        .returning({ id: operations.id });
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: Page<OperationItem> = await operationsOf(
          { cookie: viewer.cookie },
          `run_id=${runId}&limit=1${cursor ? `&cursor=${cursor}` : ""}`,
        );
        seen.push(...page.items.map((o) => o.operation_id));
        cursor = page.next_cursor;
      } while (cursor !== null && seen.length < 10);
      const [later, ...same] = inserted.map((r) => r.id);
      expect(seen).toEqual([later, ...same.sort().reverse()]);
    });

    it("answers 404 to another organisation's key for this organisation's operations", async () => {
      const runId = `ci-${randomBytes(4).toString("hex")}`;
      // A running command, so a cancel that wrongly went through would show on the host.
      const m = marker();
      const op = await execAs({ command: `sleep ${m}`, run_id: runId, timeout_seconds: 600 });
      expect(op.status).toBe("running");
      const theirs = { key: otherOrgKey.key };
      expect((await call({ cookie: viewer.cookie }, `/operations/${op.operation_id}`)).status).toBe(200);
      for (const res of [
        await call(theirs, `/operations/${op.operation_id}`),
        await call(theirs, `/operations/${op.operation_id}/events`),
        await post(theirs, `/operations/${op.operation_id}/cancel`),
      ]) {
        expect(res.status).toBe(404);
        expect(await res.json()).toMatchObject({ error: "not_found" });
      }
      expect((await operationsOf(theirs, `run_id=${runId}`)).items).toEqual([]);
      expect(await auditOf(theirs, `run_id=${runId}`)).toEqual([]);
      expect(pgrep(`sleep ${m}`)).not.toBe("");
      expect((await post({ cookie: dev.cookie }, `/operations/${op.operation_id}/cancel`)).status).toBe(200);
      await expect.poll(() => pgrep(`sleep ${m}`), { timeout: 10_000 }).toBe("");
    });

    it("shows refusals of no organisation only to reoclo-admin, and pages the audit log", async () => {
      const peer = `198.51.100.${randomInt(1, 250)}`;
      // No key, no session: the refusal belongs to no organisation.
      expect((await call(null, "/audit", { headers: { "User-Agent": `probe-${peer}` } })).status).toBe(401);
      await env.t.deps.audit.flush();
      const seen = (rows: { reason: string; user_agent?: string | null }[]) =>
        rows.some((r) => r.reason === "missing_credentials");
      expect(seen(await auditOf({ cookie: manager.cookie }, "outcome=denied&limit=1000"))).toBe(false);
      const operator = await invoke(listAuditVerb, svc, ADMIN, { outcome: "denied", limit: 1000 });
      expect(seen(operator.items)).toBe(true);

      const first = await json<Page<AuditRow>>(await call({ cookie: viewer.cookie }, "/audit?limit=2"));
      expect(first.items).toHaveLength(2);
      expect(first.next_cursor).not.toBeNull();
      const second = await json<Page<AuditRow>>(
        await call({ cookie: viewer.cookie }, `/audit?limit=2&cursor=${first.next_cursor}`),
      );
      expect(second.items[0]!.id).toBeLessThan(first.items[1]!.id);
      expect(
        (await auditOf({ cookie: viewer.cookie }, `since=${new Date(Date.now() + 60_000).toISOString()}`))
          .length,
      ).toBe(0);
    });

    it.each([
      ["/operations?status=finished", "status"],
      ["/operations?since=yesterday", "since"],
      ["/operations?limit=201", "limit"],
      ["/operations?server=srv-1", "server"],
      ["/operations?cursor=bm90LWEtY3Vyc29y", "cursor"],
      ["/audit?outcome=maybe", "outcome"],
      ["/audit?cursor=bm90LWEtY3Vyc29y", "cursor"],
    ])("refuses %s with 422 naming %s", async (path, field) => {
      const res = await call({ cookie: viewer.cookie }, path);
      const answer = await json<{ error: string; fields: Record<string, string[]> }>(res, 422);
      expect(answer.error).toBe("validation");
      expect(Object.keys(answer.fields)).toContain(field);
    });
  });
});
