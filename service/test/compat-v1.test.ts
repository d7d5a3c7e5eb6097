import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startExecEnv, type ExecEnv } from "./fixtures/exec-env";

// A client that behaves exactly like the published reoclo/run@v1 action (spec §7): pretty-printed
// JSON, Accept: application/json, its user agent, any status but 200 fails the step, then a poll
// every 5 s with no deadline, treating anything but `running` as final.

const POLL_MS = 5_000;

interface V1Result {
  exit_code: number;
  stdout: string;
  stderr: string;
  duration_ms: number;
  status: string;
}

async function publishedRunV1(env: ExecEnv, command: string, timeout: number): Promise<V1Result> {
  const headers = {
    Authorization: `Bearer ${env.key}`,
    "Content-Type": "application/json",
    Accept: "application/json",
    "User-Agent": "reoclo-github-action",
  };
  const body = {
    server_id: env.serverId,
    command,
    timeout_seconds: Math.min(900, Math.max(1, timeout)),
    run_id: "1234567890",
    run_context: {
      provider: "github_actions",
      repository: "acme/web",
      workflow: "deploy",
      trigger: "push",
      actor: "octocat",
      sha: "abc",
      ref: "refs/heads/main",
    },
  };
  const res = await fetch(`${env.base}/exec`, {
    method: "POST",
    headers,
    body: JSON.stringify(body, null, 2),
  });
  if (res.status !== 200) throw new Error(`the v1 step fails on HTTP ${res.status}: ${await res.text()}`);
  let data = (await res.json()) as Record<string, unknown>;
  const id = data.operation_id as string;
  while (data.status === "running") {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const poll = await fetch(`${env.base}/operations/${id}`, { headers });
    if (poll.status !== 200) throw new Error(`the v1 poll fails on HTTP ${poll.status}`);
    const op = (await poll.json()) as { status: string; result?: Record<string, unknown> };
    data = op.status === "running" ? op : { ...op.result, status: op.status };
  }
  return {
    status: String(data.status),
    exit_code: typeof data.exit_code === "number" ? data.exit_code : 1,
    stdout: typeof data.stdout === "string" ? data.stdout : "",
    stderr: typeof data.stderr === "string" ? data.stderr : "",
    duration_ms: Number(data.duration_ms ?? 0),
  };
}

describe("the published v1 client", () => {
  let env: ExecEnv;
  beforeAll(async () => {
    env = await startExecEnv({ env: { REOCLO_SYNC_WAIT_SECONDS: "1" } });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("passes for a quick, a failing, a longer-than-the-window and a timed-out command", async () => {
    const [quick, failing, slow, timeout] = await Promise.all([
      publishedRunV1(env, "echo hello", 60),
      publishedRunV1(env, "echo broken >&2; exit 7", 60),
      publishedRunV1(env, "sleep 2; echo late", 60),
      publishedRunV1(env, "sleep 30", 2),
    ]);
    expect(quick).toMatchObject({ status: "completed", exit_code: 0, stdout: "hello\n" });
    expect(failing).toMatchObject({ status: "completed", exit_code: 7, stderr: "broken\n" });
    expect(slow).toMatchObject({ status: "completed", exit_code: 0, stdout: "late\n" });
    expect(slow.duration_ms).toBeGreaterThanOrEqual(2_000);
    expect(timeout).toMatchObject({ status: "timeout", exit_code: 124 });
  }, 60_000);
});
