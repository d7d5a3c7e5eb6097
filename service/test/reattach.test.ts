import { createHash, randomBytes, randomInt } from "node:crypto";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { API_BASE_PATH } from "@reoclo/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep } from "@reoclo/testbed/process-tree";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { startTcpProxy, type TcpProxy } from "@reoclo/testbed/tcp-proxy";
import { addApplication } from "../src/applications/applications";
import type { ServiceContext } from "../src/context";
import { readOutput } from "../src/operations/store";
import { SecretBox } from "../src/secrets/secret-box";
import { addServer } from "../src/servers/servers";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, testContext, type TestDatabase } from "./fixtures/db";
import { addTestHost, seedKey } from "./fixtures/entities";
import { outputText, readEvents, type SseEvent } from "./fixtures/exec-env";
import { runAdminCli, startService, startServiceWithHost, type RunningService } from "./fixtures/processes";

// Issue 19: an operation outlives a dropped SSH connection, the death of the instance running it
// and a restart of the service. Real sshd hosts, real service processes (SIGKILL and SIGTERM are
// sent to them), PostgreSQL with two instances, and PGlite with one. What is checked is what a
// user sees: the final answer (outcome, exit code, every byte of output once), the event stream,
// and the host (a marker written once; nothing left running; the operation's directory gone).

interface OperationView {
  operation_id: string;
  status: string;
  outcome: string;
  reason: string | null;
  result?: { exit_code: number; stdout: string; stderr: string };
}

const MASTER_KEY = randomBytes(32).toString("hex");
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const lines = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix} ${i + 1}\n`).join("");

function api(base: string, key: string) {
  const auth = { Authorization: `Bearer ${key}` };
  return {
    post: (p: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
      fetch(`${base}${p}`, {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json", ...headers },
        body: JSON.stringify(body),
      }),
    op: async (id: string) =>
      (await (await fetch(`${base}/operations/${id}`, { headers: auth })).json()) as OperationView,
  };
}

/** Reads an event stream to its end; `on` sees every event (to inject a fault at a point). A cut stream ends it. */
async function follow(res: Response, on: (all: SseEvent[]) => void = () => undefined): Promise<SseEvent[]> {
  const seen: SseEvent[] = [];
  try {
    await readEvents(res, (e, all) => {
      seen.push(e);
      on(all);
      return false;
    });
  } catch {
    // the instance serving the stream died: what was read is kept
  }
  return seen;
}

/** A directory the host account may write in, for markers. */
function hostDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "reoclo-reattach-"));
  chmodSync(dir, 0o777);
  return dir;
}

const leftovers = (id: string) =>
  execFileSync("sh", ["-c", `ls -d /tmp/reoclo-${id}.* 2>/dev/null || true`], { encoding: "utf8" });

describe("on PostgreSQL with two instances", () => {
  let db: TestDatabase;
  let host: TestHost;
  let ctx: ServiceContext;
  let serverId: string;
  let key: string;
  let appId: string;
  const marker = hostDir();
  const dataDirs: string[] = [];
  const procs: RunningService[] = [];

  beforeAll(async () => {
    [db, host] = await Promise.all([createTestDatabase("postgres"), startTestHost()]);
    ctx = testContext(db, new SecretBox(Buffer.from(MASTER_KEY, "hex")));
    serverId = (await addTestHost(ctx, host, "web")).id;
    key = (
      await seedKey(ctx, {
        operations: ["exec", "deploy"],
        server_ids: [serverId],
        all_servers: false,
        rate_limit_per_minute: 100_000,
      })
    ).key;
    const app = await addApplication(ctx, {
      name: "web",
      server_id: serverId,
      working_directory: marker,
      // Writes its marker once, then prints for ~8 s; the env value must come out masked.
      deploy_script: `echo "deploying $REOCLO_COMMIT_REF" >> deployed; for i in $(seq 1 40); do echo "step $i $DEPLOY_TOKEN"; sleep 0.2; done; echo done`,
      env: { DEPLOY_TOKEN: "tok-9f8e7d6c5b4a" },
    });
    appId = app.id;
  });
  afterAll(async () => {
    for (const p of procs)
      if (p.process.exitCode === null && p.process.signalCode === null) p.process.kill("SIGKILL");
    await Promise.all([db?.close(), host?.close()]);
    for (const dir of [...dataDirs, marker]) rmSync(dir, { recursive: true, force: true });
  });

  async function instance(): Promise<RunningService & { api: ReturnType<typeof api> }> {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "reoclo-instance-"));
    dataDirs.push(dataDir);
    const svc = await startService({
      DATABASE_URL: db.url!,
      REOCLO_MASTER_KEY: MASTER_KEY,
      REOCLO_DATA_DIR: dataDir,
      REOCLO_TAKEOVER_AFTER_SECONDS: "3",
      REOCLO_SHUTDOWN_GRACE_SECONDS: "1",
      REOCLO_SYNC_WAIT_SECONDS: "0",
    });
    procs.push(svc);
    return Object.assign(svc, { api: api(`${svc.url}${API_BASE_PATH}`, key) });
  }

  it("killing the sshd session mid-command ends `completed` with the exit code and every byte, once", async () => {
    const a = await instance();
    try {
      const command = `for i in $(seq 1 60); do echo "out $i"; echo "err $i" >&2; sleep 0.05; done; exit 7`;
      const res = await a.api.post(
        "/exec",
        { server_id: serverId, command },
        { Accept: "text/event-stream" },
      );
      const id = res.headers.get("x-operation-id")!;
      let killed = 0;
      const events = await follow(res, (all) => {
        if (killed === 0 && outputText(all, "stdout").includes("out 10\n")) killed = host.killSessions();
      });
      expect(killed).toBeGreaterThan(0);
      // The live stream: every line once, in order, and the real end.
      expect(outputText(events, "stdout")).toBe(lines("out", 60));
      expect(outputText(events, "stderr")).toBe(lines("err", 60));
      const ids = events.filter((e) => e.event === "output").map((e) => Number(e.id));
      expect(new Set(ids).size).toBe(ids.length);
      expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ exit_code: 7 });
      // The stored answer.
      const op = await a.api.op(id);
      expect(op).toMatchObject({ outcome: "completed", result: { exit_code: 7 } });
      expect(sha256(op.result!.stdout)).toBe(sha256(lines("out", 60)));
      expect(op.result!.stderr).toBe(lines("err", 60));
      expect(a.output()).toMatch(/"msg":"reattached to a running operation"/);
      // Settled, the host's copy goes.
      await expect.poll(() => leftovers(id), { timeout: 10_000 }).toBe("");
    } finally {
      await a.stop();
    }
  });

  it("SIGKILL of the instance running a 30 s command: the other instance settles it `completed` with all its output", async () => {
    const a = await instance();
    const b = await instance();
    try {
      const command = `for i in $(seq 1 30); do echo "tick $i"; sleep 1; done; echo end`;
      const res = await a.api.post(
        "/exec",
        { server_id: serverId, command, timeout_seconds: 120 },
        { Accept: "text/event-stream" },
      );
      const id = res.headers.get("x-operation-id")!;
      await follow(res, (all) => {
        if (outputText(all).includes("tick 3\n")) a.process.kill("SIGKILL");
      });
      await a.stop();
      await expect
        .poll(async () => (await b.api.op(id)).outcome, { timeout: 90_000, interval: 500 })
        .toBe("completed");
      const op = await b.api.op(id);
      expect(op.result).toMatchObject({ exit_code: 0, stderr: "" });
      expect(sha256(op.result!.stdout)).toBe(sha256(lines("tick", 30) + "end\n"));
      expect(b.output()).toMatch(/"msg":"taking over an operation"/);
      // A stream opened on the instance that settled it replays it whole, from the database.
      const replay = await follow(
        await fetch(`${b.url}${API_BASE_PATH}/operations/${id}/events`, {
          headers: { Authorization: `Bearer ${key}` },
        }),
      );
      expect(outputText(replay)).toBe(lines("tick", 30) + "end\n");
      await expect.poll(() => leftovers(id), { timeout: 10_000 }).toBe("");
    } finally {
      await b.stop();
    }
  }, 120_000);

  it("a rolling restart of both instances during a deploy completes the deploy, once", async () => {
    const a = await instance();
    const b = await instance();
    const running: Awaited<ReturnType<typeof instance>>[] = [];
    try {
      const res = await a.api.post("/deploy", { application_id: appId, commit_ref: "main" });
      const started = (await res.json()) as OperationView;
      expect(started.status).toBe("running");
      const id = started.operation_id;
      // The output stored so far (the answer's tail is only written at the end).
      const storedSteps = async () =>
        Buffer.concat(
          (await readOutput(db.db, id, 0, 100_000)).filter((e) => e.stream === "stdout").map((e) => e.data),
        ).toString();
      await expect.poll(storedSteps, { timeout: 15_000 }).toMatch(/step 3 /);
      // Restart A: it hands the deploy over; then restart B, which by then follows it or sees A's successor do so.
      expect(await a.stop()).toBe(0);
      running.push(await instance());
      await expect.poll(storedSteps, { timeout: 15_000 }).toMatch(/step 15 /);
      expect(await b.stop()).toBe(0);
      running.push(await instance());
      const last = running.at(-1)!;
      await expect
        .poll(async () => (await last.api.op(id)).outcome, { timeout: 60_000, interval: 500 })
        .toBe("completed");
      const op = await last.api.op(id);
      const expected = Array.from({ length: 40 }, (_, i) => `step ${i + 1} ***\n`).join("") + "done\n";
      expect(op.result).toMatchObject({ exit_code: 0 });
      expect(op.result!.stdout).toBe(expected);
      expect(readFileSync(path.join(marker, "deployed"), "utf8")).toBe("deploying main\n");
      expect([a.output(), b.output()].join("")).toMatch(
        /"msg":"handed running operations to the next instance"/,
      );
      // The secret reached the host as a value and never came back unmasked.
      expect(JSON.stringify(op)).not.toContain("tok-9f8e7d6c5b4a");
    } finally {
      for (const r of running) await r.stop();
    }
  }, 120_000);
});

describe("with PGlite", () => {
  it("restarting the single service in the middle of a command completes it", async () => {
    const bed = await startServiceWithHost("reoclo-reattach-pglite-");
    let service = bed.service;
    try {
      const added = await runAdminCli(
        ["servers", "add", "--name", "web", "--host", bed.host.host, "--port", String(bed.host.port)].concat([
          "--user",
          bed.host.username,
          "--private-key-file",
          bed.keyFile,
          "--trust-on-first-use",
          "--json",
        ]),
        bed.env,
      );
      expect(added.code).toBe(0);
      const server = JSON.parse(added.stdout) as { id: string };
      const created = await runAdminCli(
        ["keys", "create", "--name", "ci", "--operations", "exec", "--servers", server.id, "--json"],
        bed.env,
      );
      expect(created.code).toBe(0);
      const key = (JSON.parse(created.stdout) as { key: string }).key;
      const first = api(`${service.url}${API_BASE_PATH}`, key);
      const res = await first.post(
        "/exec",
        { server_id: server.id, command: `for i in $(seq 1 25); do echo "n $i"; sleep 0.2; done; exit 3` },
        { Accept: "text/event-stream" },
      );
      const id = res.headers.get("x-operation-id")!;
      let stopping: Promise<number | null> | undefined;
      await follow(res, (all) => {
        if (outputText(all).includes("n 3\n")) stopping ??= service.stop();
      });
      expect(await stopping).toBe(0);
      service = await startService(bed.env);
      const again = api(`${service.url}${API_BASE_PATH}`, key);
      await expect
        .poll(async () => (await again.op(id)).outcome, { timeout: 30_000, interval: 300 })
        .toBe("completed");
      const op = await again.op(id);
      expect(op.result).toMatchObject({ exit_code: 3, stdout: lines("n", 25) });
    } finally {
      if (service.process.exitCode === null) await service.stop();
      await bed.close();
    }
  }, 90_000);
});

describe("a host that never comes back", () => {
  let db: TestDatabase;
  let host: TestHost;
  let proxy: TcpProxy;
  let t: TestApp;
  let served: ServedApp;
  let serverId: string;
  let key: string;

  beforeAll(async () => {
    const secrets = new SecretBox(randomBytes(32));
    [db, host] = await Promise.all([createTestDatabase("postgres"), startTestHost()]);
    proxy = await startTcpProxy(host.host, host.port);
    const ctx = testContext(db, secrets);
    serverId = (
      await addServer(ctx, {
        name: "behind-proxy",
        host: "127.0.0.1",
        port: proxy.port,
        user: host.username,
        private_key: host.privateKey,
        host_key_fingerprint: host.hostKeyFingerprint,
      })
    ).id;
    key = (await seedKey(ctx, { operations: ["exec"], server_ids: [serverId], all_servers: false })).key;
    t = createTestApp(db, {
      secrets,
      env: { REOCLO_REATTACH_BOUND_SECONDS: "8", REOCLO_SYNC_WAIT_SECONDS: "0" },
    });
    served = await serveTestApp(t);
  });
  afterAll(async () => {
    await served?.close();
    await t?.close();
    await proxy?.close();
    await Promise.all([db?.close(), host?.close()]);
  });

  it("is `lost` after the bound, and when the host returns nothing of it runs and its directory is gone", async () => {
    const on = api(served.base, key);
    const sleep = randomInt(500_000, 599_999);
    const res = await on.post(
      "/exec",
      { server_id: serverId, command: `echo started; sleep ${sleep}`, timeout_seconds: 3600 },
      { Accept: "text/event-stream" },
    );
    const id = res.headers.get("x-operation-id")!;
    const seen = follow(res, (all) => {
      if (outputText(all).includes("started")) proxy.partition();
    });
    await expect.poll(async () => (await on.op(id)).outcome, { timeout: 30_000, interval: 250 }).toBe("lost");
    const op = await on.op(id);
    expect(op.reason).toMatch(/could not be reached again within 8 s/);
    expect(op.result).toMatchObject({ exit_code: 255, stdout: "started\n" });
    expect(JSON.parse((await seen).at(-1)!.data)).toMatchObject({ outcome: "lost" });
    proxy.heal();
    // The host gave it up by itself, sooner than the service did: killed, and its directory removed.
    expect(pgrep(`sleep ${sleep}`)).toBe("");
    expect(pgrep(id)).toBe("");
    expect(leftovers(id)).toBe("");
  }, 60_000);
});
