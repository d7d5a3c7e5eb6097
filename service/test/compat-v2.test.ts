import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { and, count, eq, isNotNull, sum } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { publishedV2Exec, V2Refused, type V2Options } from "@reoclo/testbed/published-v2-client";
import { addTestHost, seedKey } from "./fixtures/entities";
import { startExecEnv, type ExecEnv } from "./fixtures/exec-env";
import { auditEvents, operations } from "../src/db/schema";
import { pgrep } from "@reoclo/testbed/process-tree";

// The published v2 actions run the `reoclo` CLI (spec §7b): it knows only completed, failed and
// timeout as final, so a cancelled or lost operation must say `failed` on the wire (its precise end
// is `outcome`), a `# comment` line of the env input must not fail the step, and the 403 probe
// must find its route.

describe.each(DRIVERS)("the published v2 CLI, on %s", (driver) => {
  let env: ExecEnv;
  let v2: V2Options;
  let requests: string[];

  beforeAll(async () => {
    env = await startExecEnv({ driver, env: { REOCLO_SYNC_WAIT_SECONDS: "1" } });
    requests = [];
    v2 = { base: env.base, key: env.key, onRequest: (method, path) => requests.push(`${method} ${path}`) };
  });
  afterAll(async () => {
    await env?.close();
  });

  it("passes for a quick, a failing, a longer-than-the-window and a timed-out command", async () => {
    const run = (command: string, timeout = 60) =>
      publishedV2Exec(v2, { serverId: env.serverId, command, timeout });
    const [quick, failing, slow, timedOut] = await Promise.all([
      run("echo hello"),
      run("echo broken >&2; exit 7"),
      run("sleep 2; echo late"),
      run("sleep 30", 2),
    ]);
    expect(quick).toMatchObject({ status: "completed", exitCode: 0, stdout: "hello\n", polls: 0 });
    expect(failing).toMatchObject({ status: "completed", exitCode: 7, stderr: "broken\n" });
    expect(slow).toMatchObject({ status: "completed", exitCode: 0, stdout: "late\n" });
    expect(slow.polls).toBeGreaterThan(0);
    expect(timedOut).toMatchObject({ status: "timeout", exitCode: 124 });
    expect(timedOut.answer).toMatchObject({
      outcome: "timeout",
      reason: "Timed out after 2 s; the command's process group was killed.",
    });
  }, 60_000);

  it("ends a cancelled command as failed (130) instead of polling for ten minutes, saying who cancelled it", async () => {
    const marker = `${600_000 + Math.floor(Math.random() * 99_999)}`;
    const pending = publishedV2Exec(v2, { serverId: env.serverId, command: `sleep ${marker}`, timeout: 600 });
    await expect.poll(() => pgrep(`sleep ${marker}`), { timeout: 10_000 }).not.toBe("");
    const id = await operationIdOf(env, marker);
    expect((await env.post(`/operations/${id}/cancel`, {})).status).toBe(200);
    const result = await pending;
    expect(result).toMatchObject({ status: "failed", exitCode: 130 });
    expect(result.answer).toMatchObject({ outcome: "cancelled" });
    expect(String(result.answer.reason)).toMatch(/^Cancelled by automation key ".+" \(rca_\w+…\)/);
    expect(result.stderr).toContain(String(result.answer.reason));
    expect(pgrep(`sleep ${marker}`)).toBe("");
  }, 30_000);

  it("drops a `# comment` line of the env input and passes the other variables", async () => {
    const result = await publishedV2Exec(v2, {
      serverId: env.serverId,
      command: 'printf "%s\\n" "$NAME"; env | grep -c DEBUG || true',
      timeout: 60,
      envInput: "# DEBUG=1\nNAME=value\n\n  # another comment\n",
    });
    expect(result).toMatchObject({ status: "completed", exitCode: 0, stdout: "value\n0\n" });
  });

  it("still refuses an env name that is no comment and no variable name, and runs nothing", async () => {
    const before = await storedOperations(env);
    await expect(
      publishedV2Exec(v2, { serverId: env.serverId, command: "true", timeout: 60, envInput: "BAD-NAME=1" }),
    ).rejects.toMatchObject({ status: 422 });
    expect(await storedOperations(env)).toBe(before);
  });

  it("probes /auth/me/capabilities after a 403, re-sends once, and shows the refusal", async () => {
    const other = await addTestHost(env.ctx, env.host, `other-${randomBytes(3).toString("hex")}`);
    requests.length = 0;
    const refused = await publishedV2Exec(v2, { serverId: other.id, command: "true", timeout: 60 }).catch(
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(V2Refused);
    expect((refused as V2Refused).status).toBe(403);
    expect((refused as V2Refused).body).toContain("server_not_in_scope");
    expect(requests).toEqual(["POST /exec", "GET /auth/me/capabilities", "POST /exec"]);
    // Nothing ran on the other server, and both refusals are audited.
    const [ran] = await env.db.db
      .select({ n: count() })
      .from(operations)
      .where(eq(operations.serverId, other.id));
    expect(ran?.n).toBe(0);
    await env.t.deps.audit.flush();
    const audited = await env.db.db
      .select({ outcome: auditEvents.outcome, reason: auditEvents.reason, n: sum(auditEvents.repeatCount) })
      .from(auditEvents)
      // The requests' rows (an automation key's), not the admin change that added the server.
      .where(and(eq(auditEvents.serverId, other.id), isNotNull(auditEvents.keyId)))
      .groupBy(auditEvents.outcome, auditEvents.reason);
    expect(audited).toEqual([{ outcome: "denied", reason: "server_not_in_scope", n: "2" }]);
    const caps = await env.get("/auth/me/capabilities");
    expect(caps.status).toBe(200);
    expect(await caps.json()).toMatchObject({
      kind: "automation_key",
      operations: ["exec"],
      servers: [env.serverId],
    });
  });

  it("answers the capabilities probe for any key, also one that may do little", async () => {
    const narrow = await seedKey(env.ctx, { operations: ["registry_logout"], all_servers: true });
    const res = await fetch(`${env.base}/auth/me/capabilities`, {
      headers: { Authorization: `Bearer ${narrow.key}`, "User-Agent": "reoclo-cli" },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      name: narrow.name,
      operations: ["registry_logout"],
      servers: "all",
    });
  });

  it("ends a lost command as failed (255) instead of hanging, saying why", async () => {
    const marker = `${600_000 + Math.floor(Math.random() * 99_999)}`;
    const pending = publishedV2Exec(v2, { serverId: env.serverId, command: `sleep ${marker}`, timeout: 120 });
    await expect.poll(() => pgrep(`sleep ${marker}`), { timeout: 10_000 }).not.toBe("");
    const id = await operationIdOf(env, marker);
    // A power cut: sshd, its sessions and the command die. The service reattaches once the host is back,
    // finds no exit status recorded there, and the outcome is unknown.
    await env.host.stop();
    await env.host.start();
    try {
      const result = await pending;
      expect(result).toMatchObject({ status: "failed", exitCode: 255 });
      expect(result.answer).toMatchObject({ outcome: "lost" });
      expect(String(result.answer.reason)).toMatch(/^The connection to the host dropped mid-run/);
      // The command went with its session: nothing is left running on the host.
      await expect.poll(() => pgrep(`sleep ${marker}`), { timeout: 10_000 }).toBe("");
    } finally {
      execFileSync("sh", ["-c", `rm -rf /tmp/reoclo-${id}.*`]);
    }
  }, 60_000);
});

async function storedOperations(env: ExecEnv): Promise<number | undefined> {
  return (await env.db.db.select({ n: count() }).from(operations))[0]?.n;
}

/** The operation running `sleep <marker>`, from the service's own list (the CLI does not say it yet). */
async function operationIdOf(env: ExecEnv, marker: string): Promise<string> {
  const rows = (await env.db.query<{ id: string }>("select id from operations where command like $1", [
    `%${marker}%`,
  ])) as { id: string }[];
  const id = rows[0]?.id;
  if (!id) throw new Error(`no operation runs sleep ${marker}`);
  return id;
}
