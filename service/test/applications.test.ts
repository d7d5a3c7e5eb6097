import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { count, eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { addApplication, removeApplication } from "../src/applications/applications";
import { openDatabase, type DatabaseHandle } from "../src/db/database";
import { operations, servers } from "../src/db/schema";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { seedKey } from "./fixtures/entities";
import { startExecEnv, type ExecEnv } from "./fixtures/exec-env";

// Applications (spec §5) against real sshd hosts: deploys of one application one at a time in
// arrival order across two instances sharing PostgreSQL, restart, and reboots.

interface Answer {
  operation_id: string;
  status: string;
  exit_code?: number;
  stdout?: string;
  stderr?: string;
}
interface OperationView {
  status: string;
  outcome: string;
  reason: string | null;
  result?: { exit_code: number; stdout: string; stderr: string; downtime_ms?: number };
}

const tmp = (name: string) => `/tmp/reoclo-apps-${name}-${randomBytes(4).toString("hex")}`;
const files: string[] = [];
const file = (name: string) => {
  const f = tmp(name);
  files.push(f);
  return f;
};
afterEach(() => {
  for (const f of files.splice(0)) rmSync(f, { force: true });
});

function client(base: string, key: string) {
  const headers = { Authorization: `Bearer ${key}`, "Content-Type": "application/json" };
  return {
    post: (path: string, body: unknown, extra: Record<string, string> = {}) =>
      fetch(`${base}${path}`, {
        method: "POST",
        headers: { ...headers, ...extra },
        body: JSON.stringify(body),
      }),
    async settle(id: string): Promise<OperationView> {
      for (;;) {
        const op = (await (await fetch(`${base}/operations/${id}`, { headers })).json()) as OperationView;
        if (op.status !== "running") return op;
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

describe("deploy and restart, across two instances sharing PostgreSQL", () => {
  let a: ExecEnv;
  let secondDb: DatabaseHandle;
  let b: TestApp;
  let bServed: ServedApp;
  let key: string;
  let onA: ReturnType<typeof client>;
  let onB: ReturnType<typeof client>;
  const log = file("log");
  const release = file("release");
  let appId: string;
  let gatedAppId: string;

  beforeAll(async () => {
    a = await startExecEnv({ driver: "postgres", runner: { heartbeatMs: 300 } });
    secondDb = await openDatabase({ databaseUrl: a.db.url, maxConnections: 4 });
    b = createTestApp(secondDb, { secrets: a.secrets, env: { REOCLO_SYNC_WAIT_SECONDS: "1" } });
    bServed = await serveTestApp(b);
    const bBase = bServed.base;
    ({ key } = await seedKey(a.ctx, {
      operations: ["deploy", "restart"],
      all_servers: false,
      server_ids: [a.serverId],
      rate_limit_per_minute: 100_000,
      rate_limit_per_hour: 1_000_000,
    }));
    onA = client(a.base, key);
    onB = client(bBase, key);
    const app = await addApplication(a.ctx, {
      name: `web-${randomBytes(3).toString("hex")}`,
      server_id: a.serverId,
      working_directory: "/tmp",
      // Timestamps on the host, in nanoseconds, around a second of work.
      deploy_script: `echo "start $(date +%s%N) $REOCLO_COMMIT_REF" >> "$LOG"; sleep 1; echo "end $(date +%s%N) $REOCLO_COMMIT_REF" >> "$LOG"; echo "deployed $REOCLO_COMMIT_REF as $REOCLO_APPLICATION"`,
      restart_script: `echo "restarted in $(pwd)" >> "$LOG"`,
      env: { LOG: log },
    });
    appId = app.id;
    const gated = await addApplication(a.ctx, {
      name: `gated-${randomBytes(3).toString("hex")}`,
      server_id: a.serverId,
      working_directory: "/tmp",
      deploy_script: `echo "ran $REOCLO_COMMIT_REF" >> "$LOG"; while [ ! -e "$RELEASE" ]; do sleep 0.05; done`,
      env: { LOG: log, RELEASE: release },
    });
    gatedAppId = gated.id;
  });
  afterAll(async () => {
    await bServed?.close();
    await b?.close();
    await secondDb?.close();
    await a?.close();
  });

  it("runs two deploys requested at the same time on two instances one after the other", async () => {
    const [first, second] = (await Promise.all([
      onA.post("/deploy", { application_id: appId, commit_ref: "aaaa1111" }).then((r) => r.json()),
      onB.post("/deploy", { application_id: appId, commit_ref: "refs/heads/main" }).then((r) => r.json()),
    ])) as Answer[];
    const [x, y] = await Promise.all([onA.settle(first!.operation_id), onB.settle(second!.operation_id)]);
    expect([x?.status, x?.result?.exit_code, y?.status, y?.result?.exit_code]).toEqual([
      "completed",
      0,
      "completed",
      0,
    ]);
    const lines = readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(" "));
    expect(lines.map((l) => l[0])).toEqual(["start", "end", "start", "end"]);
    // One ran entirely before the other started: the host's timestamps do not overlap.
    expect(BigInt(lines[1]![1]!)).toBeLessThanOrEqual(BigInt(lines[2]![1]!));
    expect(lines[0]![2]).toBe(lines[1]![2]);
    const [firstRef, secondRef] = [lines[0]![2], lines[2]![2]];
    const later = firstRef === "aaaa1111" ? y : x;
    expect(later?.result?.stderr).toMatch(/waiting for 1 earlier deploy/);
    expect(x?.result?.stdout).toMatch(/^deployed aaaa1111 as web-/m);
    expect(new Set([firstRef, secondRef])).toEqual(new Set(["aaaa1111", "refs/heads/main"]));
  });

  it("answers 409 application_busy to a deploy that asks not to wait, and cancels a queued one before it runs", async () => {
    rmSync(log, { force: true });
    const running = await onA.post(
      "/deploy",
      { application_id: gatedAppId, commit_ref: "v1.0.0" },
      { Accept: "text/event-stream" },
    );
    const runningId = running.headers.get("X-Operation-Id")!;
    await running.body?.cancel();
    const busy = await onB.post("/deploy", { application_id: gatedAppId, commit_ref: "v1.0.1", wait: false });
    expect(busy.status).toBe(409);
    expect(((await busy.json()) as { error: string }).error).toBe("application_busy");
    const queued = (await (
      await onB.post("/deploy", { application_id: gatedAppId, commit_ref: "v1.0.2" })
    ).json()) as Answer;
    expect(queued.status).toBe("running");
    const cancelled = await onA.post(`/operations/${queued.operation_id}/cancel`, {});
    expect(cancelled.status).toBe(200);
    const q = await onB.settle(queued.operation_id);
    expect(q).toMatchObject({ status: "failed", outcome: "cancelled", result: { exit_code: 130 } });
    expect(q.reason).toMatch(
      /^Cancelled by automation key ".*" \(rca_\w+…\) before it ran .*it never ran\.$/,
    );
    expect(q.result?.stderr).toContain(`reoclo: ${q.reason}`);
    writeFileSync(release, "");
    expect((await onA.settle(runningId)).status).toBe("completed");
    expect(readFileSync(log, "utf8")).toBe("ran v1.0.0\n"); // v1.0.2 never ran
  });

  it("never runs a queued deploy once it left the queue (its application was removed meanwhile)", async () => {
    rmSync(log, { force: true });
    rmSync(release, { force: true });
    const app = await addApplication(a.ctx, {
      name: `short-lived-${randomBytes(3).toString("hex")}`,
      server_id: a.serverId,
      working_directory: "/tmp",
      deploy_script: `echo "ran $REOCLO_COMMIT_REF" >> "$LOG"; while [ ! -e "$RELEASE" ]; do sleep 0.05; done`,
      env: { LOG: log, RELEASE: release },
    });
    const first = await onA.post(
      "/deploy",
      { application_id: app.id, commit_ref: "one" },
      { Accept: "text/event-stream" },
    );
    const firstId = first.headers.get("X-Operation-Id")!;
    await first.body?.cancel();
    const second = (await (
      await onB.post("/deploy", { application_id: app.id, commit_ref: "two" })
    ).json()) as Answer;
    expect(second.status).toBe("running");
    await removeApplication(a.ctx, app.id);
    const gone = await onB.settle(second.operation_id);
    expect(gone).toMatchObject({ status: "failed", outcome: "failed", result: { exit_code: 255 } });
    expect(gone.reason).toBe(
      "It left the deploy queue without running: its application was removed while it waited.",
    );
    expect(gone.result?.stderr).toContain("left the deploy queue without running");
    writeFileSync(release, "");
    expect((await onA.settle(firstId)).status).toBe("completed");
    expect(readFileSync(log, "utf8")).toBe("ran one\n");
  });

  it.each(["--upload-pack=x", "$(id)", "main;id", "a..b"])(
    "refuses the ref %j and runs nothing",
    async (ref) => {
      const countOps = async () => (await a.db.db.select({ n: count() }).from(operations))[0]?.n;
      const before = await countOps();
      const res = await onA.post("/deploy", { application_id: appId, commit_ref: ref });
      expect(res.status).toBe(422);
      expect(((await res.json()) as { fields: Record<string, unknown> }).fields).toHaveProperty("commit_ref");
      expect(await countOps()).toBe(before);
    },
  );

  it("restarts with the application's restart script in its working directory", async () => {
    rmSync(log, { force: true });
    const r = (await (await onA.post("/restart", { application_id: appId })).json()) as Answer;
    expect(r).toMatchObject({ status: "completed", exit_code: 0 });
    expect(readFileSync(log, "utf8")).toBe("restarted in /tmp\n");
  });

  it("checks the application before the Idempotency-Key, and a malformed key runs nothing", async () => {
    const bare = await addApplication(a.ctx, {
      name: `bare-${randomBytes(3).toString("hex")}`,
      server_id: a.serverId,
      working_directory: "/tmp",
      deploy_script: `echo "ran" >> "${log}"`,
    });
    rmSync(log, { force: true });
    const badKey = { "Idempotency-Key": "has spaces in it" };
    const restart = await onA.post("/restart", { application_id: bare.id }, badKey);
    expect(restart.status).toBe(422);
    expect(((await restart.json()) as { fields: Record<string, unknown> }).fields).toHaveProperty(
      "application_id",
    );
    const deploy = await onA.post("/deploy", { application_id: bare.id, commit_ref: "main" }, badKey);
    expect(deploy.status).toBe(422);
    expect(((await deploy.json()) as { fields: Record<string, unknown> }).fields).toHaveProperty(
      "Idempotency-Key",
    );
    expect(existsSync(log)).toBe(false);
    const [stored] = await a.db.db
      .select({ n: count() })
      .from(operations)
      .where(eq(operations.applicationId, bare.id));
    expect(stored?.n).toBe(0);
  });

  it("refuses a key without the operation (403) and leaves the host alone", async () => {
    const { key: execOnly } = await seedKey(a.ctx, { operations: ["exec"], all_servers: true });
    rmSync(log, { force: true });
    for (const [path, body] of [
      ["/deploy", { application_id: appId, commit_ref: "main" }],
      ["/restart", { application_id: appId }],
      ["/reboot", { server_id: a.serverId }],
    ] as const) {
      const res = await client(a.base, execOnly).post(path, body);
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: string }).error).toBe("operation_not_allowed");
    }
    expect(existsSync(log)).toBe(false);
  });
});

describe("reboot", () => {
  let env: ExecEnv;
  let api: ReturnType<typeof client>;

  beforeAll(async () => {
    env = await startExecEnv({ env: { REOCLO_REBOOT_TIMEOUT_SECONDS: "6" } });
    const { key } = await seedKey(env.ctx, { operations: ["reboot"], all_servers: true });
    api = client(env.base, key);
  });
  afterAll(async () => {
    await env?.host.start(); // back up for the fixture's own shutdown
    await env?.close();
  });

  /** The host's reboot command only leaves a mark; the test then takes its sshd down as a reboot would. */
  async function rebootWith(mark: string) {
    await env.db.db
      .update(servers)
      .set({ rebootCommand: `touch ${mark}` })
      .where(eq(servers.id, env.serverId));
    const res = await api.post("/reboot", { server_id: env.serverId }, { Accept: "text/event-stream" });
    const id = res.headers.get("X-Operation-Id")!;
    await res.body?.cancel();
    await expect.poll(() => existsSync(mark), { timeout: 10_000 }).toBe(true);
    await env.host.stop();
    return id;
  }

  it("completes when the host answers SSH again with the same host key, and records the downtime", async () => {
    const id = await rebootWith(file("reboot"));
    // The simulated reboot: the host stays down this long before its sshd comes back.
    await new Promise((r) => setTimeout(r, 1500));
    await env.host.start();
    const op = await api.settle(id);
    expect(op).toMatchObject({ status: "completed", result: { exit_code: 0 } });
    expect(op.result?.downtime_ms).toBeGreaterThanOrEqual(1000);
    expect(op.result?.downtime_ms).toBeLessThan(6000);
    expect(op.result?.stdout).toMatch(/host went down/);
    expect(op.result?.stdout).toMatch(
      /answered SSH again with the same host key after \d+\.\d s of downtime/,
    );
  });

  it("fails after the bound when the host never comes back", async () => {
    const id = await rebootWith(file("reboot"));
    const op = await api.settle(id);
    expect(op).toMatchObject({ status: "failed", result: { exit_code: 255 } });
    expect(op.result?.stderr).toMatch(/did not answer SSH again within 6\.0 s/);
    await env.host.start();
  });
});
