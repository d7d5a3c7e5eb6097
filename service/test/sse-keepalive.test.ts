import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { operationEventStream } from "../src/operations/events";
import { getOperation } from "../src/operations/store";
import { startExecEnv, type ExecEnv } from "./fixtures/exec-env";

// A quiet command's event stream still carries a comment now and then, so proxies keep it open
// and a client can tell a live stream from a dead connection.

describe("operation event stream keep-alive", () => {
  let env: ExecEnv;
  beforeAll(async () => {
    env = await startExecEnv({ driver: "pglite" });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("sends a keep-alive comment while the command prints nothing", async () => {
    const res = await env.post("/exec", {
      server_id: env.serverId,
      command: "sleep 30",
      timeout_seconds: 60,
    });
    const { operation_id: id, status } = (await res.json()) as { operation_id: string; status: string };
    expect(status).toBe("running");
    const row = await getOperation(env.ctx.db, id);
    const stream = operationEventStream({ ctx: env.ctx, runner: env.t.runner }, row!, 0, { keepaliveMs: 50 });
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    let text = "";
    while (!text.includes(": keep-alive\n\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    await reader.cancel();
    expect(text).toContain('event: status\nid: 0\ndata: {"status":"running","outcome":"running"}\n\n');
    expect(text).toContain(": keep-alive\n\n");
    await env.post(`/operations/${id}/cancel`, {});
  });
});
