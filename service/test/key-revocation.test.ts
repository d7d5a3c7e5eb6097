import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { ErrorEnvelope } from "@reoclo/protocol";
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { keyEndedEnvelope, KeyWatch, type KeyEnd } from "../src/access/key-watch";
import { openDatabase, type DatabaseHandle } from "../src/db/database";
import { automationKeys } from "../src/db/schema";
import { revokeKey } from "../src/keys/keys";
import { silentLogger } from "../src/logger";
import { createTestApp, serveTestApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, testContext } from "./fixtures/db";
import { seedKey } from "./fixtures/entities";
import { outputText, readEvents, startExecEnv, type ExecEnv, type SseEvent } from "./fixtures/exec-env";

// Issue 13, item 14: a key is checked once per request, but an event stream outlives its request.
// Revoking (or expiry of) the key ends its open streams, on every instance, with a final `error`
// event; the operation is not cancelled and completes on the host.

const SSE = { Accept: "text/event-stream" };
const KEY_ENDED_DETAIL =
  /^The automation key (was revoked|expired): the operation goes on .*this event stream ends here\.$/;

/** Events without the keep-alive comments. */
const named = (events: SseEvent[]) => events.filter((e) => e.event !== "message");

describe("revoking a key with open event streams", () => {
  let env: ExecEnv;
  let secondDb: DatabaseHandle;
  let second: TestApp;
  const files: string[] = [];

  beforeAll(async () => {
    env = await startExecEnv({ driver: "postgres" });
    // A second instance on the same PostgreSQL, as in operations-instances.test.ts.
    secondDb = await openDatabase({ databaseUrl: env.db.url, maxConnections: 4 });
    second = createTestApp(secondDb, { secrets: env.secrets });
  });
  afterAll(async () => {
    for (const f of files) rmSync(f, { force: true });
    await second?.close();
    await secondDb?.close();
    await env?.close();
  });

  const newKey = async () => {
    const { id, key } = await seedKey(env.ctx, {
      operations: ["exec"],
      all_servers: false,
      server_ids: [env.serverId],
      rate_limit_per_minute: 100_000,
      rate_limit_per_hour: 1_000_000,
    });
    return { id, key };
  };
  const request = (
    key: string,
    path: string,
    init: { method?: string; body?: unknown; headers?: object } = {},
  ) =>
    fetch(`${env.base}${path}`, {
      method: init.method ?? "GET",
      headers: {
        Authorization: `Bearer ${key}`,
        ...(init.body === undefined ? {} : { "Content-Type": "application/json" }),
        ...init.headers,
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  const operation = async (key: string, id: string) =>
    (await (await request(key, `/operations/${id}`)).json()) as {
      status: string;
      result?: { exit_code: number; stdout: string };
    };

  /** A command that prints `waiting`, stays quiet until the test creates `release`, then writes `done`. */
  const hostCommand = () => {
    const tag = randomBytes(4).toString("hex");
    const release = `/tmp/reoclo-revoke-release-${tag}`;
    const done = `/tmp/reoclo-revoke-done-${tag}`;
    files.push(release, done);
    return {
      release,
      done,
      command: `echo waiting; while [ ! -e ${release} ]; do sleep 0.1; done; echo released > ${done}; echo finished`,
    };
  };
  const execStream = (key: string, command: string) =>
    request(key, "/exec", {
      method: "POST",
      body: { server_id: env.serverId, command, timeout_seconds: 300 },
      headers: SSE,
    });

  /** Reads a stream to its end; `act` runs once the command printed `waiting` (it runs and is quiet). */
  async function readActingOnceRunning(res: Response, act: () => Promise<unknown>) {
    let acting: Promise<unknown> | undefined;
    const events = await readEvents(res, (e) => {
      if (e.event === "output") acting ??= act();
      return false;
    });
    await acting;
    return named(events);
  }

  /** The host side: still waiting now, and once released the command finishes and completes. */
  async function expectCompletesOnHost(
    cmd: { release: string; done: string },
    operationId: string,
    reader: string,
  ) {
    expect(existsSync(cmd.done)).toBe(false);
    expect((await operation(reader, operationId)).status).toBe("running");
    writeFileSync(cmd.release, "");
    await expect
      .poll(() => (existsSync(cmd.done) ? readFileSync(cmd.done, "utf8") : ""), { timeout: 15_000 })
      .toBe("released\n");
    await expect
      .poll(() => operation(reader, operationId), { timeout: 15_000 })
      .toMatchObject({ status: "completed", result: { exit_code: 0, stdout: "waiting\nfinished\n" } });
  }

  it("ends the stream with a key_revoked event when the key is revoked on the same instance; the command completes", async () => {
    const doomed = await newKey();
    const other = await newKey();
    const cmd = hostCommand();
    const res = await execStream(doomed.key, cmd.command);
    expect(res.status).toBe(200);
    const operationId = res.headers.get("x-operation-id")!;
    const requestId = res.headers.get("x-request-id");

    const events = await readActingOnceRunning(res, () => revokeKey(env.ctx, doomed.id));

    // No output came after `waiting`: the revocation alone ended the stream, with one final event.
    expect(events.map((e) => e.event)).toEqual(["status", "output", "error"]);
    expect(outputText(events)).toBe("waiting\n");
    // The one error envelope, for the request that opened the stream.
    const final = JSON.parse(events.at(-1)!.data) as ErrorEnvelope;
    expect(final).toEqual(keyEndedEnvelope("key_revoked", requestId!));
    expect(final.detail).toMatch(KEY_ENDED_DETAIL);
    const refused = await request(doomed.key, `/operations/${operationId}`);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: "unauthorized" });
    await expectCompletesOnHost(cmd, operationId, other.key);
  });

  it("ends a stream open on another instance sharing the database when the key is revoked here", async () => {
    const doomed = await newKey();
    const other = await newKey();
    const cmd = hostCommand();
    // The stream is held by the second instance (its own key watch, its own connections).
    const onSecond = await serveTestApp(second);
    try {
      const res = await fetch(`${onSecond.base}/exec`, {
        method: "POST",
        headers: { Authorization: `Bearer ${doomed.key}`, "Content-Type": "application/json", ...SSE },
        body: JSON.stringify({ server_id: env.serverId, command: cmd.command, timeout_seconds: 300 }),
      });
      expect(res.status).toBe(200);
      const operationId = res.headers.get("x-operation-id")!;

      const events = await readActingOnceRunning(res, () => revokeKey(env.ctx, doomed.id));

      expect(events.map((e) => e.event)).toEqual(["status", "output", "error"]);
      expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ error: "key_revoked" });
      // Refused on both instances from the next request on.
      expect((await request(doomed.key, `/operations/${operationId}`)).status).toBe(401);
      const refused = await fetch(`${onSecond.base}/operations/${operationId}`, {
        headers: { Authorization: `Bearer ${doomed.key}` },
      });
      expect(refused.status).toBe(401);
      await expectCompletesOnHost(cmd, operationId, other.key);
    } finally {
      await onSecond.close();
    }
  });

  it("keeps streaming to the end for another key following the same operation", async () => {
    const kept = await newKey();
    const doomed = await newKey();
    const cmd = hostCommand();
    const keptRes = await execStream(kept.key, cmd.command);
    const operationId = keptRes.headers.get("x-operation-id")!;
    const keptEvents = readEvents(keptRes);
    const doomedRes = await request(doomed.key, `/operations/${operationId}/events`, { headers: SSE });
    expect(doomedRes.status).toBe(200);

    const doomedEvents = await readActingOnceRunning(doomedRes, () => revokeKey(env.ctx, doomed.id));
    expect(doomedEvents.at(-1)?.event).toBe("error");

    await expectCompletesOnHost(cmd, operationId, kept.key);
    const events = named(await keptEvents);
    expect(events.map((e) => e.event)).not.toContain("error");
    expect(events.at(-1)?.event).toBe("end");
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ exit_code: 0 });
    expect(outputText(events)).toBe("waiting\nfinished\n");
  });

  it("ends the stream with a key_expired event when the key expires while it is open", async () => {
    const expiring = await newKey();
    const other = await newKey();
    const cmd = hostCommand();
    const res = await execStream(expiring.key, cmd.command);
    const operationId = res.headers.get("x-operation-id")!;

    const events = await readActingOnceRunning(res, async () => {
      await env.ctx.db
        .update(automationKeys)
        .set({ expiresAt: new Date() })
        .where(eq(automationKeys.id, expiring.id));
    });

    expect(events.map((e) => e.event)).toEqual(["status", "output", "error"]);
    const final = JSON.parse(events.at(-1)!.data) as ErrorEnvelope;
    expect(final).toMatchObject({ error: "key_expired", request_id: res.headers.get("x-request-id") });
    expect(final.detail).toMatch(KEY_ENDED_DETAIL);
    expect((await request(expiring.key, `/operations/${operationId}`)).status).toBe(401);
    await expectCompletesOnHost(cmd, operationId, other.key);
  });
});

describe("KeyWatch", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A database that knows which keys are no longer valid (id → expired), and records each query's ids. */
  function fakeDatabase() {
    const invalid = new Map<string, boolean>();
    const queries: string[][] = [];
    let failures = 0;
    return {
      invalid,
      queries,
      failNext: () => void failures++,
      database: {
        query<Row>(_sql: string, params: unknown[]): Promise<Row[]> {
          // Watched automation keys are asked for as `a:<id>` (integration keys `i:`, sessions `s:`).
          const refs = params[0] as string[];
          expect(refs.every((r) => r.startsWith("a:"))).toBe(true);
          const ids = refs.map((r) => r.slice(2));
          queries.push(ids);
          if (failures > 0) {
            failures--;
            return Promise.reject(new Error("connection refused"));
          }
          const rows = ids
            .filter((id) => invalid.has(id))
            .map((id) => ({ id: `a:${id}`, expired: invalid.get(id) }));
          return Promise.resolve(rows as Row[]);
        },
      },
    };
  }

  it("checks the keys of all open streams in one query per interval, and queries nothing while none is open", async () => {
    vi.useFakeTimers();
    const fake = fakeDatabase();
    const watch = new KeyWatch(fake.database, silentLogger, { intervalMs: 500 });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fake.queries).toEqual([]);

    const ended: string[] = [];
    const stopFirst = watch.watch("key-a", (e) => ended.push(`a1 ${e}`));
    watch.watch("key-a", (e) => ended.push(`a2 ${e}`));
    const stopB = watch.watch("key-b", (e) => ended.push(`b ${e}`));
    await vi.advanceTimersByTimeAsync(500);
    expect(fake.queries).toEqual([["key-a", "key-b"]]);
    expect(ended).toEqual([]);

    fake.invalid.set("key-a", false);
    await vi.advanceTimersByTimeAsync(500);
    expect(ended).toEqual(["a1 key_revoked", "a2 key_revoked"]);
    fake.invalid.set("key-b", true);
    await vi.advanceTimersByTimeAsync(500);
    expect(ended).toEqual(["a1 key_revoked", "a2 key_revoked", "b key_expired"]);
    expect(fake.queries).toEqual([["key-a", "key-b"], ["key-a", "key-b"], ["key-b"]]);

    // Each stream ended once; stopping them afterwards is harmless, and nothing is queried any more.
    stopFirst();
    stopB();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fake.queries).toHaveLength(3);
    expect(ended).toHaveLength(3);
    expect(watch.watchedKeys).toBe(0);
    await watch.close();
  });

  it("stops querying when the last stream closes", async () => {
    vi.useFakeTimers();
    const fake = fakeDatabase();
    const watch = new KeyWatch(fake.database, silentLogger, { intervalMs: 500 });
    const stop = watch.watch("key-c", () => undefined);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(fake.queries).toHaveLength(2);
    stop();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fake.queries).toHaveLength(2);
    await watch.close();
  });

  it("keeps the streams open when the database does not answer, and asks again", async () => {
    vi.useFakeTimers();
    const fake = fakeDatabase();
    const watch = new KeyWatch(fake.database, silentLogger, { intervalMs: 500 });
    const ended: KeyEnd[] = [];
    watch.watch("key-d", (e) => ended.push(e));
    fake.invalid.set("key-d", false);
    fake.failNext();
    await vi.advanceTimersByTimeAsync(500);
    expect(ended).toEqual([]);
    await vi.advanceTimersByTimeAsync(500);
    expect(ended).toEqual(["key_revoked"]);
    await watch.close();
  });

  it.each(DRIVERS)("finds revoked, expired and vanished keys in the %s database", async (driver) => {
    const db = await createTestDatabase(driver);
    const watch = new KeyWatch(db, silentLogger, { intervalMs: 20 });
    try {
      const ctx = testContext(db);
      const [revoked, expired, vanished, active] = await Promise.all(
        Array.from({ length: 4 }, () => seedKey(ctx)),
      );
      const ended: string[] = [];
      for (const [name, key] of Object.entries({ revoked, expired, vanished, active }))
        watch.watch(key!.id, (e) => ended.push(`${name} ${e}`));
      await revokeKey(ctx, revoked!.id);
      await db.db
        .update(automationKeys)
        .set({ expiresAt: new Date() })
        .where(eq(automationKeys.id, expired!.id));
      await db.db.delete(automationKeys).where(eq(automationKeys.id, vanished!.id));
      await expect
        .poll(() => [...ended].sort())
        .toEqual(["expired key_expired", "revoked key_revoked", "vanished key_revoked"]);
      expect(watch.watchedKeys).toBe(1);
    } finally {
      await watch.close();
      await db.close();
    }
  });
});
