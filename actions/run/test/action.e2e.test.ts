// The bundled run action (dist/, as action.yml names it), run as the GitHub runner runs it,
// against the real service and a real sshd host. Faults come from a proxy in front of the
// service (fault-proxy.ts); everything observed is what a user would see: the job log, the
// step's outputs and exit code, the summary, and the effect on the host.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startExecEnv, type ExecEnv } from "@reoclo/service/testing";
import { startFaultProxy, type FaultProxy } from "@reoclo/testbed/fault-proxy";
import { actionDir, Workspace } from "@reoclo/testbed/runner";
import { freePort } from "@reoclo/testbed/net";
import { pgrep } from "@reoclo/testbed/process-tree";

const unique = () => randomBytes(4).toString("hex");
/** A file on the host (the test host is this machine) that the remote user can write. */
const hostFile = (name: string) => `/tmp/reoclo-e2e-${name}-${unique()}`;
const lines = (path: string) =>
  existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : [];
/** The operation's precise outcome (`running`, `cancelled`, …), not its wire status. */
async function operationOutcome(env: ExecEnv, id: string): Promise<string> {
  const res = await env.get(`/operations/${id}`);
  return ((await res.json()) as { outcome: string }).outcome;
}

let env: ExecEnv;
const workspaces: Workspace[] = [];
const files: string[] = [];
const proxies: FaultProxy[] = [];
const workspace = () => {
  const w = new Workspace(actionDir("run"));
  workspaces.push(w);
  return w;
};
const file = (name: string) => {
  const f = hostFile(name);
  files.push(f);
  return f;
};

beforeAll(async () => {
  env = await startExecEnv();
});
afterAll(async () => {
  await env?.close();
});
afterEach(async () => {
  for (const w of workspaces.splice(0)) w.remove();
  for (const f of files.splice(0)) rmSync(f, { force: true });
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

const origin = () => env.base.replace(/\/api\/automation\/v1$/, "");
const inputs = (over: Record<string, string>) => ({
  api_key: env.key,
  server_id: env.serverId,
  api_url: origin(),
  ...over,
});

describe("the run action, run as the runner runs it", () => {
  it("streams the output, sets every output and the summary, and exits 0", async () => {
    const w = workspace();
    const step = w.start(
      "main",
      inputs({ command: "echo hello; echo 'warn: careful' >&2; echo '::error::forged'" }),
    );
    expect(await step.exited).toBe(0);
    const out = step.outputs();
    expect(out).toMatchObject({
      exit_code: "0",
      stdout: "hello\n::error::forged\n",
      stderr: "warn: careful\n",
    });
    expect(out.operation_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(out.duration_ms)).toBeGreaterThanOrEqual(0);
    const log = step.log();
    // Remote lines are in the log, between a stop-commands marker and its token, so a line
    // like `::error::forged` from the server is never read as a workflow command.
    const stop = /^::stop-commands::([0-9a-f-]+)$/m.exec(log);
    expect(stop).not.toBeNull();
    const body = log.slice(log.indexOf(stop![0]), log.indexOf(`::${stop![1]}::`));
    expect(body).toContain("hello\n");
    expect(body).toContain("warn: careful\n");
    expect(body).toContain("::error::forged\n");
    // The key reaches the log only in the runner's add-mask command, which the runner consumes.
    expect(log.split("\n").filter((l) => l.includes(env.key))).toEqual([`::add-mask::${env.key}`]);
    const summary = step.summary();
    expect(summary).toContain(out.operation_id);
    expect(summary).toContain("completed");
    expect(w.state()).toMatchObject({ operation_id: out.operation_id, finished: "true" });
  });

  it("fails with the remote exit code and an error annotation holding the tail of stderr", async () => {
    const w = workspace();
    const step = w.start(
      "main",
      inputs({
        command: "echo progress; echo 'deploy: missing config' >&2; exit 7",
        env: "TOKEN=s3cr3t-value-1\n# note\n",
      }),
    );
    expect(await step.exited).toBe(7);
    expect(step.outputs()).toMatchObject({
      exit_code: "7",
      stdout: "progress\n",
      stderr: "deploy: missing config\n",
    });
    expect(step.log()).toMatch(/^::error title=The command exited with code 7::deploy: missing config$/m);
  });

  it("writes the first line to the log while the command is still running", async () => {
    const release = file("release");
    const w = workspace();
    const step = w.start(
      "main",
      inputs({
        command: 'echo first-line; while [ ! -e "$RELEASE" ]; do sleep 0.05; done; echo second-line',
        env: `RELEASE=${release}`,
      }),
    );
    await step.waitForLog(/^first-line$/m);
    expect(step.log()).not.toContain("second-line");
    expect(step.child.exitCode).toBeNull();
    expect(await operationOutcome(env, w.state().operation_id ?? "")).toBe("running");
    writeFileSync(release, "");
    expect(await step.exited).toBe(0);
    expect(step.outputs().stdout).toBe("first-line\nsecond-line\n");
  });

  it.each(["SIGINT", "SIGTERM"] as const)(
    "cancels the remote command on %s and leaves nothing running",
    async (sig) => {
      const m = `${Math.floor(Math.random() * 9000) + 1000}.${unique().slice(0, 3).replace(/\D/g, "7")}`;
      const w = workspace();
      const step = w.start(
        "main",
        inputs({ command: `echo started; (sleep ${m} &); sleep ${m}`, timeout: "600" }),
      );
      await step.waitForLog(/^started$/m);
      await expect.poll(() => pgrep(`sleep ${m}`), { timeout: 10_000 }).not.toBe("");
      step.child.kill(sig);
      expect(await step.exited).toBe(130);
      expect(pgrep(`sleep ${m}`)).toBe("");
      const id = w.state().operation_id ?? "";
      expect(await operationOutcome(env, id)).toBe("cancelled");
      expect(step.outputs().exit_code).toBe("130");
      expect(step.log()).toMatch(/::error title=The command was cancelled/);
      // Main saw the end, so the post step has nothing to do.
      const post = w.start("post", inputs({ command: "unused" }));
      expect(await post.exited).toBe(0);
      expect(post.log()).toContain("[reoclo] nothing left running");
    },
  );

  it("on a signal before the operation id is known, sends no more attempts and cancels what a lost answer started", async () => {
    const m = `${Math.floor(Math.random() * 9000) + 1000}.${unique().slice(0, 3).replace(/\D/g, "5")}`;
    const ran = file("ran");
    const proxy = await startFaultProxy(env.base, [
      { kind: "lost_answer" },
      ...Array.from({ length: 20 }, () => ({ kind: "unavailable" as const })),
    ]);
    proxies.push(proxy);
    const w = workspace();
    const step = w.start(
      "main",
      inputs({
        command: `echo run >> "$RAN"; sleep ${m}`,
        env: `RAN=${ran}`,
        api_url: proxy.url,
        timeout: "600",
      }),
    );
    // The first attempt started the command but its answer was lost; the retries meet 503s.
    await expect.poll(() => pgrep(`sleep ${m}`), { timeout: 10_000 }).not.toBe("");
    expect(w.state().operation_id).toBeUndefined();
    // Signal just after a 503, while the client waits 1 s (Retry-After) before its next attempt.
    await step.waitForLog(/POST \/exec: HTTP 503.*retry/, step.log().length);
    const posts = () => proxy.seen.filter((s) => s.startsWith("POST") && s.endsWith("/exec")).length;
    const postsAtSignal = posts();
    step.child.kill("SIGINT");
    expect(await step.exited).toBe(130);
    expect(posts()).toBe(postsAtSignal);
    expect(step.log()).toMatch(/operation [0-9a-f-]{36} was cancelled \(cancelled\)/);
    expect(pgrep(`sleep ${m}`)).toBe("");
    expect(lines(ran)).toEqual(["run"]);
  });

  it("has the post step cancel an operation that a killed main step left running", async () => {
    const m = `${Math.floor(Math.random() * 9000) + 1000}.${unique().slice(0, 3).replace(/\D/g, "3")}`;
    const w = workspace();
    const step = w.start("main", inputs({ command: `echo started; sleep ${m}`, timeout: "600" }));
    await step.waitForLog(/^started$/m);
    step.child.kill("SIGKILL");
    await step.exited;
    const id = w.state().operation_id ?? "";
    expect(await operationOutcome(env, id)).toBe("running");
    const post = w.start("post", inputs({ command: "unused" }));
    expect(await post.exited).toBe(0);
    expect(post.log()).toContain(`operation ${id} was left running by the main step: cancel sent`);
    await expect.poll(() => operationOutcome(env, id), { timeout: 15_000 }).toBe("cancelled");
    expect(pgrep(`sleep ${m}`)).toBe("");
  });

  it("rides out a refused connection when it first posts, and runs the command once", async () => {
    const port = await freePort();
    const ran = file("ran");
    const w = workspace();
    const step = w.start(
      "main",
      inputs({
        command: 'echo run >> "$RAN"; echo done',
        env: `RAN=${ran}`,
        api_url: `http://127.0.0.1:${port}`,
      }),
    );
    // Nothing listens yet: the action says it retries; then the service comes up on that port.
    await step.waitForLog(/\[reoclo\] POST \/exec: .*retry 1 of/);
    proxies.push(await startFaultProxy(env.base, [], port));
    expect(await step.exited).toBe(0);
    expect(lines(ran)).toEqual(["run"]);
    expect(step.outputs().stdout).toBe("done\n");
  });

  it("rides out 503s, a lost answer and a stream cut mid-run without failing or running twice", async () => {
    const ran = file("ran");
    const release = file("release");
    const proxy = await startFaultProxy(env.base, [
      { kind: "unavailable" },
      { kind: "lost_answer" },
      { kind: "unavailable" },
      { kind: "cut_stream", after: /one\\n/ },
    ]);
    proxies.push(proxy);
    const w = workspace();
    const step = w.start(
      "main",
      inputs({
        command:
          'echo run >> "$RAN"; echo one; while [ ! -e "$RELEASE" ]; do sleep 0.05; done; echo two; echo three',
        env: `RAN=${ran}\nRELEASE=${release}`,
        api_url: proxy.url,
      }),
    );
    await proxy.cut;
    writeFileSync(release, "");
    expect(await step.exited).toBe(0);
    expect(lines(ran)).toEqual(["run"]);
    expect(step.outputs()).toMatchObject({ exit_code: "0", stdout: "one\ntwo\nthree\n" });
    const log = step.log();
    for (const line of ["one", "two", "three"])
      expect(log.match(new RegExp(`^${line}$`, "gm"))).toHaveLength(1);
    // Four POSTs (503, lost answer, 503, the stream that was cut), then a resume of the events.
    expect(proxy.seen.filter((s) => s.startsWith("POST")).length).toBe(4);
    expect(proxy.seen.some((s) => s.startsWith("GET") && s.endsWith("/events"))).toBe(true);
  });
});
