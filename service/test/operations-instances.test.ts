import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type DatabaseHandle } from "../src/db/database";
import { operations } from "../src/db/schema";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { outputText, readEvents, startExecEnv, type ExecEnv } from "./fixtures/exec-env";

// Two service instances sharing one PostgreSQL: what one starts, the other can follow, cancel
// and settle.

describe("operations across two instances", () => {
  let a: ExecEnv;
  let secondDb: DatabaseHandle;
  let b: TestApp;
  let bServed: ServedApp;
  let bBase: string;
  const bGet = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${bBase}${path}`, { headers: { Authorization: `Bearer ${a.key}`, ...headers } });
  const bPost = (path: string) =>
    fetch(`${bBase}${path}`, { method: "POST", headers: { Authorization: `Bearer ${a.key}` } });

  beforeAll(async () => {
    a = await startExecEnv({ runner: { heartbeatMs: 300 } });
    secondDb = await openDatabase({ databaseUrl: a.db.url, maxConnections: 4 });
    b = createTestApp(secondDb, { secrets: a.secrets, runner: { heartbeatMs: 300, staleAfterMs: 1_000 } });
    bServed = await serveTestApp(b);
    bBase = bServed.base;
  });
  afterAll(async () => {
    await bServed?.close();
    await b?.close();
    await secondDb?.close();
    await a?.close();
  });

  it("resumes an event stream on the other instance with Last-Event-ID, without gaps or duplicates", async () => {
    const res = await a.post(
      "/exec",
      { server_id: a.serverId, command: "echo one; sleep 1; echo two; sleep 1; echo three" },
      { Accept: "text/event-stream" },
    );
    const first = (await readEvents(res, (e) => e.event === "output")).filter((e) => e.event === "output");
    const [op] = await a.db.db.select({ id: operations.id }).from(operations).limit(1);
    const rest = await readEvents(
      await bGet(`/operations/${op!.id}/events`, { "Last-Event-ID": first.at(-1)!.id }),
    );
    const outputs = [...first, ...rest.filter((e) => e.event === "output")];
    const ids = outputs.map((e) => Number(e.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(outputText(outputs)).toBe("one\ntwo\nthree\n");
    expect(rest.at(-1)?.event).toBe("end");
  });

  it("cancels from the other instance: the running instance sees it at its next heartbeat", async () => {
    const started = (await (
      await a.post("/exec", { server_id: a.serverId, command: "sleep 60", timeout_seconds: 600 })
    ).json()) as { operation_id: string; status: string };
    expect(started.status).toBe("running");
    const res = await bPost(`/operations/${started.operation_id}/cancel`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      status: "failed",
      outcome: "cancelled",
      reason: expect.stringMatching(/^Cancelled by automation key /) as unknown,
      result: { exit_code: 130 },
    });
  });

  it("settles `lost` an operation whose instance stopped heart-beating", async () => {
    const id = randomUUID();
    const stale = new Date(Date.now() - 10 * 60_000);
    await secondDb.db.insert(operations).values({
      id,
      orgId: (await a.ctx.db.query.organisations.findFirst())!.id,
      serverId: a.serverId,
      operationType: "exec",
      status: "running",
      timeoutSeconds: 60,
      runnerId: "vanished-instance",
      heartbeatAt: stale,
      createdAt: stale,
      startedAt: stale,
    });
    await expect
      .poll(async () => ((await (await bGet(`/operations/${id}`)).json()) as { outcome: string }).outcome, {
        timeout: 10_000,
      })
      .toBe("lost");
    expect(await (await bGet(`/operations/${id}`)).json()).toMatchObject({
      status: "failed",
      result: { exit_code: 255, outcome: "lost" },
    });
  });
});
