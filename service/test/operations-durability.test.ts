import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { API_BASE_PATH } from "@reoclo/protocol";
import { eq } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPrivatePostgres, type PrivatePostgres } from "@reoclo/testbed/private-postgres";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import type { ServiceContext } from "../src/context";
import { openDatabase, type DatabaseHandle } from "../src/db/database";
import { operationOutput } from "../src/db/schema";
import { SecretBox } from "../src/secrets/secret-box";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { addTestHost, seedKey } from "./fixtures/entities";
import { outputText, readEvents } from "./fixtures/exec-env";
import { startService, type RunningService } from "./fixtures/processes";

// What an operation survives on the service side (issue 13, items 1–3): an instance that dies
// half-way through creating one, a PostgreSQL restart while one runs, and an instance that dies
// while one runs (the reconciler's answer then still shows what was printed, and why it is lost).

interface OperationView {
  status: string;
  outcome: string;
  result?: { exit_code: number; stdout: string; stderr: string; stdout_truncated: boolean };
}

const MASTER_KEY = randomBytes(32).toString("hex");

/** A directory the host account may write in, for files that tell the test where a command is. */
function hostDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "reoclo-durable-"));
  chmodSync(dir, 0o777);
  return dir;
}

function api(base: string, key: string) {
  const auth = { Authorization: `Bearer ${key}` };
  return {
    exec: (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
      fetch(`${base}/exec`, {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json", ...headers },
        body: JSON.stringify(body),
      }),
    get: (p: string, headers: Record<string, string> = {}) =>
      fetch(`${base}${p}`, { headers: { ...auth, ...headers } }),
  };
}

describe("operations and the instances running them, on PostgreSQL", () => {
  let db: TestDatabase;
  let host: TestHost;
  let ctx: ServiceContext;
  let serverId: string;
  let key: string;
  const secrets = new SecretBox(Buffer.from(MASTER_KEY, "hex"));

  beforeAll(async () => {
    [db, host] = await Promise.all([createTestDatabase("postgres"), startTestHost()]);
    ctx = testContext(db, secrets);
    const srv = await addTestHost(ctx, host, "web");
    serverId = srv.id;
    key = (
      await seedKey(ctx, {
        operations: ["exec"],
        server_ids: [serverId],
        all_servers: false,
        rate_limit_per_minute: 100_000,
      })
    ).key;
  });
  const dataDirs: string[] = [];
  afterAll(async () => {
    await Promise.all([db?.close(), host?.close()]);
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  });

  async function serviceProcess(env: Record<string, string> = {}): Promise<RunningService> {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "reoclo-instance-"));
    dataDirs.push(dataDir);
    return startService({
      DATABASE_URL: db.url!,
      REOCLO_MASTER_KEY: MASTER_KEY,
      REOCLO_DATA_DIR: dataDir,
      ...env,
    });
  }

  it("runs a command exactly once for a retried Idempotency-Key whose first instance died while creating it", async () => {
    const dir = hostDir();
    const a = await serviceProcess();
    const lock = postgres(db.url!, { max: 2, onnotice: () => undefined });
    let b: TestApp | undefined;
    let bServed: ServedApp | undefined;
    try {
      const body = { server_id: serverId, command: `echo ran >> ${dir}/ran`, timeout_seconds: 30 };
      const headers = { "Idempotency-Key": `deploy-${randomBytes(4).toString("hex")}` };
      // Hold inserts into operations, so instance A is caught between its claim and its operation.
      let releaseLock!: () => void;
      const released = new Promise<void>((resolve) => (releaseLock = resolve));
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const holding = lock.begin(async (tx) => {
        await tx`lock table operations in exclusive mode`;
        locked();
        await released;
      });
      await isLocked;
      const first = api(`${a.url}${API_BASE_PATH}`, key)
        .exec(body, headers)
        .then(
          (r) => r.status,
          () => "no answer",
        );
      await expect
        .poll(
          async () =>
            (
              await lock<
                { n: number }[]
              >`select count(*)::int as n from pg_locks where not granted and relation = 'operations'::regclass`
            )[0]?.n,
          { timeout: 10_000 },
        )
        .toBe(1);
      a.process.kill("SIGKILL");
      expect(await first).toBe("no answer");
      releaseLock();
      await holding;

      const b1 = createTestApp(await openDatabase({ databaseUrl: db.url, maxConnections: 4 }), {
        secrets,
        env: { REOCLO_SYNC_WAIT_SECONDS: "10" },
      });
      b = b1;
      bServed = await serveTestApp(b1);
      const onB = api(bServed.base, key);
      const retried = await onB.exec(body, headers);
      expect(retried.status).toBe(200);
      expect(await retried.json()).toMatchObject({ status: "completed", exit_code: 0 });
      const again = await onB.exec(body, headers);
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(await again.json()).toMatchObject({ status: "completed" });
      expect(readFileSync(`${dir}/ran`, "utf8")).toBe("ran\n");
    } finally {
      if (a.process.exitCode === null && a.process.signalCode === null) a.process.kill("SIGKILL");
      await bServed?.close();
      await b?.close();
      await b?.deps.database.close();
      await lock.end();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // With reattaching on (the default) another instance takes the operation over instead: reattach.test.ts.
  it("with reattaching off, answers lost with the output it stored and why, when the instance running it died", async () => {
    const dir = hostDir();
    const a = await serviceProcess({ REOCLO_REATTACH_BOUND_SECONDS: "0" });
    let b: TestApp | undefined;
    try {
      const onA = api(`${a.url}${API_BASE_PATH}`, key);
      const res = await onA.exec(
        {
          server_id: serverId,
          command: `echo first line; echo to stderr >&2; echo second line; while [ ! -e ${dir}/never ]; do sleep 0.1; done`,
          timeout_seconds: 5,
        },
        { Accept: "text/event-stream" },
      );
      const id = res.headers.get("x-operation-id")!;
      const seen = await readEvents(res, (_e, all) => {
        const text = outputText(all);
        return text.includes("second line") && text.includes("to stderr");
      });
      // readEvents also returns when the stream ends: the lines must really have come.
      expect(outputText(seen, "stdout")).toBe("first line\nsecond line\n");
      expect(outputText(seen, "stderr")).toBe("to stderr\n");
      // Output is stored in batches (every 50 ms): kill the instance once this one is in the database.
      await expect
        .poll(
          async () =>
            (await db.db.select().from(operationOutput).where(eq(operationOutput.operationId, id))).length,
          {
            timeout: 5_000,
          },
        )
        .toBeGreaterThanOrEqual(2);
      a.process.kill("SIGKILL");
      await a.stop().catch(() => undefined);

      b = createTestApp(await openDatabase({ databaseUrl: db.url, maxConnections: 4 }), {
        secrets,
        runner: { staleAfterMs: 1_000 },
      });
      const bApp = b;
      const read = async () =>
        (await (
          await bApp.app.request(`${API_BASE_PATH}/operations/${id}`, {
            headers: { Authorization: `Bearer ${key}` },
          })
        ).json()) as OperationView;
      await expect.poll(async () => (await read()).outcome, { timeout: 15_000 }).toBe("lost");
      const op = await read();
      expect(op.result?.exit_code).toBe(255);
      expect(op.result?.stdout).toBe("first line\nsecond line\n");
      expect(op.result?.stderr).toMatch(
        /^to stderr\nreoclo: .*stopped heart-beating at .*the command's end was not seen/,
      );
    } finally {
      if (a.process.exitCode === null && a.process.signalCode === null) a.process.kill("SIGKILL");
      await b?.close();
      await b?.deps.database.close();
      writeFileSync(`${dir}/never`, "");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a PostgreSQL restart while a command runs", () => {
  let pg: PrivatePostgres;
  let database: DatabaseHandle;
  let host: TestHost;
  let t: TestApp;
  let served: ServedApp;
  let base: string;
  let key: string;
  let serverId: string;
  const logged: string[] = [];

  beforeAll(async () => {
    [pg, host] = await Promise.all([startPrivatePostgres(), startTestHost()]);
    database = await openDatabase({ databaseUrl: pg.url, maxConnections: 4 });
    await database.migrate();
    const secrets = new SecretBox(randomBytes(32));
    const ctx = testContext(database, secrets);
    serverId = (await addTestHost(ctx, host, "web")).id;
    key = (await seedKey(ctx, { operations: ["exec"], server_ids: [serverId], all_servers: false })).key;
    const record = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
      logged.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
    t = createTestApp(database, {
      secrets,
      env: { REOCLO_SYNC_WAIT_SECONDS: "20" },
      logger: { info: record("info"), warn: record("warn"), error: record("error") },
    });
    served = await serveTestApp(t);
    base = served.base;
  });
  afterAll(async () => {
    await served?.close();
    await t?.close();
    await database?.close();
    await Promise.all([pg?.close(), host?.close()]);
  });

  it("keeps the outcome it knows: completed with all its output, and 503 (never 500) while the database is away", async () => {
    const dir = hostDir();
    try {
      const client = api(base, key);
      const pending = client.exec({
        server_id: serverId,
        command: `echo before; touch ${dir}/started; while [ ! -e ${dir}/release ]; do sleep 0.05; done; echo after; echo done >&2`,
        timeout_seconds: 60,
      });
      await expect.poll(() => existsSync(`${dir}/started`), { timeout: 10_000 }).toBe(true);
      await pg.stop("fast");

      // Requests that need the database get the envelope and 503 while it is away.
      const during = await client.exec({ server_id: serverId, command: "true" });
      expect(during.status).toBe(503);
      expect(await during.json()).toMatchObject({ error: "database_unavailable" });

      writeFileSync(`${dir}/release`, "");
      // The caller gets the outcome the instance saw, although it cannot be stored yet.
      const answer = await pending;
      expect(answer.status).toBe(200);
      const body = (await answer.json()) as {
        operation_id: string;
        status: string;
        stdout: string;
        stderr: string;
      };
      expect(body).toMatchObject({
        status: "completed",
        exit_code: 0,
        stdout: "before\nafter\n",
        stderr: "done\n",
      });

      const byId = await client.get(`/operations/${body.operation_id}`);
      expect(byId.status).toBe(503);
      expect(await byId.json()).toMatchObject({ error: "database_unavailable" });

      await pg.start();
      await expect
        .poll(
          async () => {
            const r = await client.get(`/operations/${body.operation_id}`);
            return r.status === 200 ? ((await r.json()) as OperationView).status : `HTTP ${r.status}`;
          },
          { timeout: 20_000 },
        )
        .toBe("completed");
      const stored = (await (await client.get(`/operations/${body.operation_id}`)).json()) as OperationView;
      expect(stored.result).toMatchObject({ exit_code: 0, stdout: "before\nafter\n", stderr: "done\n" });
      // Every output event is stored once, in order: a stream from the start replays them all.
      const events = await readEvents(await client.get(`/operations/${body.operation_id}/events`));
      const outputs = events.filter((e) => e.event === "output");
      expect([outputText(outputs, "stdout"), outputText(outputs, "stderr")]).toEqual([
        "before\nafter\n",
        "done\n",
      ]);
      expect(new Set(outputs.map((e) => e.id)).size).toBe(outputs.length);
      expect(logged.filter((l) => l.startsWith("error"))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
