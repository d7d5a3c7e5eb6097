import { randomBytes } from "node:crypto";
import { count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podmanLoggedInAs, startRegistry, type TestRegistry } from "@reoclo/testbed/registry";
import { addCredential } from "../src/credentials/credentials";
import { operations, servers } from "../src/db/schema";
import { dumpAllTables } from "./fixtures/db";
import { seedKey } from "./fixtures/entities";
import { startExecEnv, type ExecEnv } from "./fixtures/exec-env";
import { commandLines } from "@reoclo/testbed/process-tree";

// Registry login and logout (spec §3) against a real registry (docker-registry with htpasswd
// and TLS) and a real sshd host whose container CLI is podman.

interface OperationView {
  status: string;
  result?: { exit_code: number; stdout: string; stderr: string };
}

describe("registry login and logout with podman on the host", () => {
  let env: ExecEnv;
  let registry: TestRegistry;
  let key: string;
  let credentialId: string;
  let wrongCredentialId: string;
  const password = `pw-${randomBytes(12).toString("hex")}`;
  const username = `bot-${randomBytes(3).toString("hex")}`;

  /** What podman on the host says it is logged in as, through the host user's own podman. */
  const loggedInAs = () => podmanLoggedInAs(env.host.username, registry.address);
  const api = (k: string) => ({
    post: (path: string, body: unknown) =>
      fetch(`${env.base}${path}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${k}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      }),
  });
  const settle = async (id: string): Promise<OperationView> => {
    for (;;) {
      const op = (await (
        await fetch(`${env.base}/operations/${id}`, { headers: { Authorization: `Bearer ${key}` } })
      ).json()) as OperationView;
      if (op.status !== "running") return op;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    [env, registry] = await Promise.all([startExecEnv(), startRegistry(username, password)]);
    await env.db.db.update(servers).set({ containerCli: "podman" }).where(eq(servers.id, env.serverId));
    const cred = await addCredential(env.ctx, {
      name: "registry",
      type: "generic",
      registry_url: registry.address,
      username,
      password,
    });
    const wrong = await addCredential(env.ctx, {
      name: "registry-wrong",
      type: "harbor",
      registry_url: registry.address,
      username,
      password: "not-the-password",
    });
    credentialId = cred.id;
    wrongCredentialId = wrong.id;
    ({ key } = await seedKey(env.ctx, {
      operations: ["registry_login", "registry_logout"],
      all_servers: false,
      server_ids: [env.serverId],
      credential_ids: [cred.id, wrong.id],
    }));
  });
  afterAll(async () => {
    await Promise.all([env?.close(), registry?.close()]);
  });

  it("logs in with the stored password on standard input, and logs out again", async () => {
    const samples: string[] = [];
    const res = await api(key).post("/registry-auth/login", {
      server_id: env.serverId,
      credential_id: credentialId,
    });
    expect(res.status).toBe(202);
    const body = (await res.json()) as Record<string, string>;
    expect(body).toMatchObject({
      status: "running",
      registry_url: registry.address,
      registry_type: "generic",
    });
    const pending = settle(body.operation_id!);
    let done = false;
    void pending.finally(() => (done = true));
    while (!done) {
      samples.push(commandLines());
      await new Promise((r) => setTimeout(r, 20));
    }
    const op = await pending;
    expect(op, JSON.stringify(op)).toMatchObject({ status: "completed", result: { exit_code: 0 } });
    expect(op.result?.stdout).toContain("Login Succeeded");
    expect(samples.some((s) => s.includes("podman") || s.includes("reoclo-"))).toBe(true);
    for (const s of samples) expect(s).not.toContain(password);
    expect(loggedInAs()).toBe(username);

    const out = await api(key).post("/registry-auth/logout", {
      server_id: env.serverId,
      registry_url: registry.address,
    });
    expect(out.status).toBe(200);
    const logout = (await out.json()) as Record<string, unknown>;
    expect(logout).toMatchObject({ registry_url: registry.address });
    const settled = logout.status === "running" ? await settle(logout.operation_id as string) : undefined;
    expect(settled?.status ?? logout.status).toBe("completed");
    expect(loggedInAs()).toBe("");

    const dump = await dumpAllTables(env.db);
    expect(dump.text).toContain("registry_login");
    expect(dump.text).not.toContain(password);
    expect(JSON.stringify(body) + JSON.stringify(op) + JSON.stringify(logout)).not.toContain(password);
  });

  it("fails cleanly with a wrong password, with neither username nor password in its output", async () => {
    const res = await api(key).post("/registry-auth/login", {
      server_id: env.serverId,
      credential_id: wrongCredentialId,
    });
    expect(res.status).toBe(202);
    const op = await settle(((await res.json()) as { operation_id: string }).operation_id);
    expect(op.status).toBe("completed");
    expect(op.result?.exit_code).not.toBe(0);
    expect(op.result?.stderr).toMatch(/invalid username\/password|unauthorized/i);
    expect(op.result?.stderr + op.result!.stdout).not.toContain("not-the-password");
    expect(op.result?.stderr + op.result!.stdout).not.toContain(username);
    expect(loggedInAs()).toBe("");
  });

  it("refuses a key without registry_login, or without the credential in scope (403), and runs nothing", async () => {
    const countOps = async () => (await env.db.db.select({ n: count() }).from(operations))[0]?.n;
    const before = await countOps();
    const { key: execOnly } = await seedKey(env.ctx, {
      operations: ["exec"],
      all_servers: true,
      all_credentials: true,
    });
    const r1 = await api(execOnly).post("/registry-auth/login", {
      server_id: env.serverId,
      credential_id: credentialId,
    });
    expect(r1.status).toBe(403);
    expect(((await r1.json()) as { error: string }).error).toBe("operation_not_allowed");
    const { key: otherScope } = await seedKey(env.ctx, {
      operations: ["registry_login"],
      all_servers: true,
      credential_ids: [wrongCredentialId],
    });
    const r2 = await api(otherScope).post("/registry-auth/login", {
      server_id: env.serverId,
      credential_id: credentialId,
    });
    expect(r2.status).toBe(403);
    expect(((await r2.json()) as { error: string }).error).toBe("credential_not_in_scope");
    expect(await countOps()).toBe(before);
    expect(loggedInAs()).toBe("");
  });
});
