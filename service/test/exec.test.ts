import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { dumpAllTables, rowsOf } from "./fixtures/db";
import { outputText, readEvents, startExecEnv, type ExecEnv } from "./fixtures/exec-env";
import { commandLines, pgrep } from "@reoclo/testbed/process-tree";

type ExecAnswer = {
  operation_id: string;
  status: string;
  exit_code?: number;
  stdout?: string;
  stderr?: string;
  duration_ms?: number;
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
};

const marker = () => `9${randomInt(100_000, 999_999)}`;

describe.each(DRIVERS)("POST /exec against a real sshd host, on %s", (driver) => {
  let env: ExecEnv;
  const exec = async (body: Record<string, unknown>, headers?: Record<string, string>) => {
    const res = await env.post("/exec", { server_id: env.serverId, ...body }, headers);
    expect(res.status).toBe(200);
    return (await res.json()) as ExecAnswer;
  };
  const settle = async (id: string) => {
    await expect
      .poll(async () => ((await (await env.get(`/operations/${id}`)).json()) as { status: string }).status, {
        timeout: 20_000,
      })
      .not.toBe("running");
    return (await (await env.get(`/operations/${id}`)).json()) as { status: string; result: ExecAnswer };
  };

  beforeAll(async () => {
    env = await startExecEnv({ driver });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("answers 200 with the result flat, streams kept apart", async () => {
    const r = await exec({ command: "echo hi; echo oops >&2; exit 3" });
    expect(r).toMatchObject({
      status: "completed",
      exit_code: 3,
      stdout: "hi\n",
      stderr: "oops\n",
      stdout_truncated: false,
    });
    expect(r.duration_ms).toBeGreaterThanOrEqual(0);
    const op = (await (await env.get(`/operations/${r.operation_id}`)).json()) as Record<string, unknown>;
    expect(op).toMatchObject({
      operation_id: r.operation_id,
      operation_type: "exec",
      server_id: env.serverId,
      status: "completed",
    });
    expect(op.result).toMatchObject({ exit_code: 3, stdout: "hi\n" });
  });

  it("keeps env secrets out of ps, the stored command and every table, and masks them in output", async () => {
    const secret = `s3cr3t-${randomBytes(12).toString("hex")}`;
    const m = marker();
    const pending = exec({
      command: `printf %s "$API_TOKEN" | wc -c; echo "token=$API_TOKEN"; bash -c "sleep 1.5; : ${m}"`,
      env: { API_TOKEN: secret, SHORT: "abc" },
    });
    const samples: string[] = [];
    let done = false;
    void pending.finally(() => (done = true));
    while (!done) {
      samples.push(commandLines());
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await pending;
    expect(samples.some((s) => s.includes(m))).toBe(true); // the sampling did see the command run
    for (const s of samples) expect(s).not.toContain(secret);
    expect(r.stdout).toBe(`${secret.length}\ntoken=***\n`);
    const dump = await dumpAllTables(env.db);
    expect(dump.text).toContain("token=***");
    expect(dump.text).not.toContain(secret);
  });

  it("passes working_directory as data: injection payloads create nothing", async () => {
    for (const payload of [
      "$(touch /tmp/reoclo-inj-a)",
      '"; touch /tmp/reoclo-inj-b; "',
      "`touch /tmp/reoclo-inj-c`",
    ]) {
      const r = await exec({ command: "pwd", working_directory: payload });
      expect(r.status).toBe("completed");
      expect(r.exit_code).toBe(1);
      expect(r.stderr).toContain("working directory");
    }
    for (const f of ["a", "b", "c"]) expect(existsSync(`/tmp/reoclo-inj-${f}`)).toBe(false);
    expect((await exec({ command: "pwd", working_directory: "/tmp" })).stdout).toBe("/tmp\n");
  });

  it("kills the whole process tree at the timeout", async () => {
    const m = marker();
    const r = await exec({ command: `(sleep ${m} &); sleep ${m}`, timeout_seconds: 1 });
    const final = r.status === "running" ? (await settle(r.operation_id)).result : r;
    expect(final.exit_code).toBe(124);
    await expect.poll(() => pgrep(`sleep ${m}`), { timeout: 10_000 }).toBe("");
  });

  it("cancels a running command and leaves none of its processes", async () => {
    const m = marker();
    const r = await exec({ command: `sleep ${m}`, timeout_seconds: 600 });
    expect(r.status).toBe("running");
    expect(pgrep(`sleep ${m}`)).not.toBe("");
    const res = await env.post(`/operations/${r.operation_id}/cancel`, {});
    expect(res.status).toBe(200);
    const op = (await res.json()) as { status: string; outcome: string; reason: string; result: ExecAnswer };
    expect(op).toMatchObject({ status: "failed", outcome: "cancelled" });
    expect(op.reason).toMatch(
      /^Cancelled by automation key ".*" \(rca_\w+…\); the command's process group was killed\.$/,
    );
    expect(op.result.exit_code).toBe(130);
    await expect.poll(() => pgrep(`sleep ${m}`), { timeout: 10_000 }).toBe("");
    // Cancelling again is harmless.
    expect((await env.post(`/operations/${r.operation_id}/cancel`, {})).status).toBe(200);
  });

  it("finishes at once when the command leaves a background process holding stdout", async () => {
    const m = marker();
    const started = Date.now();
    const r = await exec({ command: `sleep ${m} & echo started` });
    expect(r).toMatchObject({ status: "completed", exit_code: 0, stdout: "started\n" });
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect.poll(() => pgrep(`sleep ${m}`), { timeout: 10_000 }).toBe("");
  });

  it("runs a command once for the same Idempotency-Key, and refuses the key with another body", async () => {
    const file = `/tmp/reoclo-idem-${randomBytes(4).toString("hex")}`;
    const body = { command: `echo run >> ${file}` };
    const headers = { "Idempotency-Key": `idem-${randomBytes(6).toString("hex")}` };
    const first = await env.post("/exec", { server_id: env.serverId, ...body }, headers);
    const second = await env.post("/exec", { server_id: env.serverId, ...body }, headers);
    const a = (await first.json()) as ExecAnswer;
    const b = (await second.json()) as ExecAnswer;
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(b.operation_id).toBe(a.operation_id);
    expect(readFileSync(file, "utf8")).toBe("run\n");
    rmSync(file, { force: true });
    const other = await env.post("/exec", { server_id: env.serverId, command: "echo other" }, headers);
    expect(other.status).toBe(422);
    expect(await other.json()).toMatchObject({ error: "idempotency_key_mismatch" });
  });

  it("streams output live over SSE, and resumes with Last-Event-ID without gaps or duplicates", async () => {
    const res = await env.post(
      "/exec",
      { server_id: env.serverId, command: "echo one; sleep 1; echo two; sleep 1; echo three" },
      { Accept: "text/event-stream" },
    );
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const announced = res.headers.get("x-operation-id");
    const first = await readEvents(res, (e) => e.event === "output");
    const outputs = first.filter((e) => e.event === "output");
    expect(JSON.parse(outputs[0]!.data)).toEqual({ stream: "stdout", data: "one\n" });
    const list = (await (await env.get(`/operations?run_id=none`)).json()) as { items: unknown[] };
    expect(list.items).toEqual([]);
    // Still running when the first line arrived: that is live output.
    const opId = await findLatestOperation(env);
    expect(announced).toBe(opId);
    expect(((await (await env.get(`/operations/${opId}`)).json()) as { status: string }).status).toBe(
      "running",
    );
    const lastId = outputs.at(-1)!.id;
    const rest = await readEvents(await env.get(`/operations/${opId}/events`, { "Last-Event-ID": lastId }));
    const all = [...outputs, ...rest.filter((e) => e.event === "output")];
    const ids = all.map((e) => Number(e.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
    expect(outputText(all)).toBe("one\ntwo\nthree\n");
    const end = rest.find((e) => e.event === "end");
    expect(JSON.parse(end!.data)).toMatchObject({ exit_code: 0, stdout: "one\ntwo\nthree\n" });
  });

  it("lists the operations of one CI run, newest first", async () => {
    const runId = `run-${randomBytes(4).toString("hex")}`;
    const a = await exec({
      command: "true",
      run_id: runId,
      run_context: { provider: "github_actions", repository: "acme/web" },
    });
    const b = await exec({ command: "true", run_id: runId });
    const list = (await (await env.get(`/operations?run_id=${runId}`)).json()) as {
      items: { operation_id: string; run_context: unknown }[];
    };
    expect(list.items.map((i) => i.operation_id)).toEqual([b.operation_id, a.operation_id]);
    expect(list.items[1]!.run_context).toMatchObject({ repository: "acme/web" });
  });

  it("finds the operation this key started with an Idempotency-Key, and only that one", async () => {
    const idem = `find-${randomBytes(4).toString("hex")}`;
    const started = (await (
      await env.post("/exec", { server_id: env.serverId, command: "true" }, { "Idempotency-Key": idem })
    ).json()) as { operation_id: string };
    const found = (await (await env.get(`/operations?idempotency_key=${idem}`)).json()) as {
      items: { operation_id: string }[];
    };
    expect(found.items.map((i) => i.operation_id)).toEqual([started.operation_id]);
    const none = (await (await env.get(`/operations?idempotency_key=${idem}-other`)).json()) as {
      items: unknown[];
    };
    expect(none.items).toEqual([]);
  });

  it("answers 404 for unknown operations and for ids that are not uuids", async () => {
    expect((await env.get("/operations/00000000-0000-4000-8000-000000000000")).status).toBe(404);
    expect((await env.get("/operations/nope")).status).toBe(404);
  });
});

async function findLatestOperation(env: ExecEnv): Promise<string> {
  const [latest] = rowsOf<{ id: string }>(
    await env.db.db.execute(sql`select id from operations order by created_at desc limit 1`),
  );
  return latest!.id;
}

describe("hosts that change or go away", () => {
  let env: ExecEnv;
  beforeAll(async () => {
    env = await startExecEnv({ env: { REOCLO_SYNC_WAIT_SECONDS: "1" } });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("ends `lost` when the host loses the command (a power cut) and says why once it answers again", async () => {
    const res = await env.post("/exec", { server_id: env.serverId, command: "sleep 30" });
    const r = (await res.json()) as ExecAnswer;
    expect(r.status).toBe("running");
    // Every process of the host dies, the command's supervisor included; the service keeps trying to reattach.
    await env.host.stop();
    const outcome = async () =>
      ((await (await env.get(`/operations/${r.operation_id}`)).json()) as { outcome: string }).outcome;
    expect(await outcome()).toBe("running");
    await env.host.start();
    await expect.poll(outcome, { timeout: 15_000 }).toBe("lost");
    const final = (await (await env.get(`/operations/${r.operation_id}`)).json()) as { reason: string };
    expect(final.reason).toMatch(/ended without recording an exit status/);
    // Its directory is swept by the next command on that host (its keeper is gone).
    const next = (await (
      await env.post("/exec", { server_id: env.serverId, command: "true" })
    ).json()) as ExecAnswer;
    expect(next.status).toBe("completed");
    expect(
      execFileSync("sh", ["-c", `ls -d /tmp/reoclo-${r.operation_id}.* 2>/dev/null || true`], {
        encoding: "utf8",
      }),
    ).toBe("");
  });

  it("runs nothing on a host whose key changed, and the operation is `failed`", async () => {
    await env.host.replaceHostKey();
    const file = `/tmp/reoclo-hk-${randomBytes(4).toString("hex")}`;
    const res = await env.post("/exec", { server_id: env.serverId, command: `touch ${file}` });
    const r = (await res.json()) as ExecAnswer;
    expect(r).toMatchObject({ status: "failed", exit_code: 255 });
    expect(r.stderr).toContain("host_key_mismatch");
    expect(existsSync(file)).toBe(false);
  });
});
