// The bundled docker-auth action, main then post as the runner runs them, against the real
// service, a real sshd host whose container CLI is podman, and a real registry.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { addCredential, seedKey, servers, startExecEnv, type ExecEnv } from "@reoclo/service/testing";
import { podmanLoggedInAs, startRegistry, type TestRegistry } from "@reoclo/testbed/registry";
import { actionDir, Workspace } from "@reoclo/testbed/runner";

let env: ExecEnv;
let registry: TestRegistry;
let key: string;
let credentialId: string;
let wrongCredentialId: string;
const username = `bot-${randomBytes(3).toString("hex")}`;
const password = `pw-${randomBytes(12).toString("hex")}`;
const workspaces: Workspace[] = [];
const loggedInAs = () => podmanLoggedInAs(env.host.username, registry.address);

beforeAll(async () => {
  [env, registry] = await Promise.all([startExecEnv(), startRegistry(username, password)]);
  await env.db.db.update(servers).set({ containerCli: "podman" }).where(eq(servers.id, env.serverId));
  credentialId = (
    await addCredential(env.ctx, {
      name: "reg",
      type: "harbor",
      registry_url: registry.address,
      username,
      password,
    })
  ).id;
  wrongCredentialId = (
    await addCredential(env.ctx, {
      name: "reg-wrong",
      type: "harbor",
      registry_url: registry.address,
      username,
      password: "wrong-password",
    })
  ).id;
  ({ key } = await seedKey(env.ctx, {
    operations: ["registry_login", "registry_logout"],
    all_servers: true,
    all_credentials: true,
  }));
});
afterAll(async () => {
  await Promise.all([env?.close(), registry?.close()]);
});
afterEach(() => {
  for (const w of workspaces.splice(0)) w.remove();
});

const step = (credential: string, extra: Record<string, string> = {}) => {
  const w = new Workspace(actionDir("docker-auth"));
  workspaces.push(w);
  const inputs = {
    api_key: key,
    server_id: env.serverId,
    credential_id: credential,
    api_url: env.base.replace(/\/api\/automation\/v1$/, ""),
    ...extra,
  };
  return { w, main: () => w.start("main", inputs), post: () => w.start("post", inputs) };
};

describe("the docker-auth action, main then post", () => {
  it("logs the server in, sets the outputs, saves no secret, and the post step logs it out", async () => {
    const s = step(credentialId);
    const main = s.main();
    expect(await main.exited, main.log()).toBe(0);
    expect(main.outputs()).toMatchObject({ registry_url: registry.address, registry_type: "harbor" });
    expect(main.outputs().operation_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(loggedInAs()).toBe(username);
    const state = readFileSync(s.w.files.state, "utf8");
    expect(state).toContain(registry.address);
    for (const secret of [key, password]) {
      expect(state).not.toContain(secret);
      expect(main.log()).not.toContain(password);
    }
    const post = s.post();
    expect(await post.exited, post.log()).toBe(0);
    expect(post.log()).toContain(`logged out of ${registry.address}`);
    expect(loggedInAs()).toBe("");
  });

  it("runs the post step after a failed main: a failed login fails main with the reason, post only tidies", async () => {
    const s = step(wrongCredentialId);
    const main = s.main();
    expect(await main.exited).not.toBe(0);
    expect(main.log()).toMatch(/::error title=Login to .* failed.*::.*invalid username\/password/);
    expect(main.log()).not.toContain("wrong-password");
    const post = s.post();
    expect(await post.exited, post.log()).toBe(0);
    expect(post.log()).not.toMatch(/::error/);
    expect(loggedInAs()).toBe("");
  });

  it("logs out in the post step even when main was killed after starting the login", async () => {
    const s = step(credentialId);
    const main = s.main();
    await main.waitForLog(/logging server .* in to/);
    main.child.kill("SIGKILL");
    await main.exited;
    // Whether or not the login had finished, post leaves the server logged out.
    await expect.poll(() => loggedInAs(), { timeout: 10_000 }).toBe(username);
    const post = s.post();
    expect(await post.exited, post.log()).toBe(0);
    expect(loggedInAs()).toBe("");
  });

  it("stays logged in with cleanup false", async () => {
    const s = step(credentialId, { cleanup: "false" });
    expect(await s.main().exited).toBe(0);
    const post = s.post();
    expect(await post.exited).toBe(0);
    expect(post.log()).toContain("cleanup is false");
    expect(loggedInAs()).toBe(username);
    expect(await step(credentialId).post().exited).toBe(0); // no state: nothing to undo
    const tidy = await fetch(`${env.base}/registry-auth/logout`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ server_id: env.serverId, registry_url: registry.address }),
    });
    expect(tidy.status).toBe(200);
  });
});
