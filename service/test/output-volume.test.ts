import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "./fixtures/db";
import { startExecEnv, type ExecEnv } from "./fixtures/exec-env";

const GIB = 1024 ** 3;
const CAP = 1024 * 1024;

describe("1 GiB of output", () => {
  let env: ExecEnv;
  beforeAll(async () => {
    env = await startExecEnv({ outputCapBytes: CAP, env: { REOCLO_SYNC_WAIT_SECONDS: "25" } });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("cuts off an event-stream client that stops reading, instead of buffering for it", async () => {
    const res = await env.post(
      "/exec",
      {
        server_id: env.serverId,
        command: `head -c ${256 * 1024 * 1024} /dev/zero | tr '\\0' 'y'`,
        timeout_seconds: 120,
      },
      { Accept: "text/event-stream" },
    );
    // Read nothing until the command is over: the service must not hold 256 MiB for this client.
    const [op] = rowsOf<{ id: string }>(
      await env.db.db.execute(sql`select id from operations order by created_at desc limit 1`),
    );
    await expect
      .poll(
        async () => ((await (await env.get(`/operations/${op!.id}`)).json()) as { status: string }).status,
        {
          timeout: 120_000,
          interval: 500,
        },
      )
      .toBe("completed");
    let received = 0;
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const outcome = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return "ended";
          received += value.length;
        }
      } catch {
        return "cut off";
      }
    })();
    expect(outcome).toBe("cut off");
    expect(received).toBeLessThan(128 * 1024 * 1024);
  }, 180_000);

  it("keeps the service's memory bounded and stores the output capped and flagged", async () => {
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    const res = await env.post("/exec", {
      server_id: env.serverId,
      command: `head -c ${GIB} /dev/zero | tr '\\0' 'x'; echo; echo tail-marker`,
      timeout_seconds: 300,
    });
    let answer = (await res.json()) as { operation_id: string; status: string };
    while (answer.status === "running") {
      await new Promise((r) => setTimeout(r, 500));
      const op = (await (await env.get(`/operations/${answer.operation_id}`)).json()) as { status: string };
      answer = { ...answer, status: op.status };
    }
    clearInterval(sampler);
    const op = (await (await env.get(`/operations/${answer.operation_id}`)).json()) as {
      status: string;
      result: { exit_code: number; stdout: string; stdout_truncated: boolean };
    };
    expect(op.status).toBe("completed");
    expect(op.result.exit_code).toBe(0);
    expect(op.result.stdout_truncated).toBe(true);
    expect(op.result.stdout.endsWith("x\ntail-marker\n")).toBe(true); // the tail is the real end
    expect(op.result.stdout.length).toBe(64 * 1024);
    const [stored] = rowsOf<{ bytes: string }>(
      await env.db.db.execute(
        sql`select coalesce(sum(length(data)), 0)::bigint as bytes from operation_output where operation_id = ${answer.operation_id}`,
      ),
    );
    expect(Number(stored?.bytes)).toBe(CAP);
    const [counted] = rowsOf<{ stdout_bytes: string }>(
      await env.db.db.execute(sql`select stdout_bytes from operations where id = ${answer.operation_id}`),
    );
    const stdout_bytes = counted?.stdout_bytes;
    expect(Number(stdout_bytes)).toBe(GIB + "\ntail-marker\n".length);
    const growthMiB = (peak - baseline) / 2 ** 20;
    console.info(`[1 GiB output] peak RSS growth ${growthMiB.toFixed(0)} MiB`);
    expect(growthMiB).toBeLessThan(256);
  }, 240_000);
});
