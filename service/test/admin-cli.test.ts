import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPostgresDatabase } from "@reoclo/testbed/postgres-database";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { openDatabase } from "../src/db/database";
import {
  runAdminCli,
  runServiceToExit,
  startService,
  startServiceWithHost,
  type RunningService,
  type ServiceWithHost,
} from "./fixtures/processes";
import { pgrepCount } from "@reoclo/testbed/process-tree";

const parse = <T>(text: string): T => JSON.parse(text) as T;
/** With --json an error is one JSON line on stderr (warnings may precede it). */
const lastLine = (text: string) => text.trim().split("\n").at(-1) ?? "";

describe("reoclo-admin against a running service on the embedded database", () => {
  let dataDir: string;
  let keyFile: string;
  let host: TestHost;
  let service: RunningService;
  let env: Record<string, string>;
  let serverId: string;
  let plaintextKey: string;

  let bed: ServiceWithHost;
  beforeAll(async () => {
    bed = await startServiceWithHost("reoclo-cli-");
    ({ dir: dataDir, env, host, keyFile, service } = bed);
  });
  afterAll(async () => {
    await bed?.close();
  });

  it("answers /healthz and /readyz with nothing installed", async () => {
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${service.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.headers.get("x-request-id")).toBeTruthy();
  });

  it("keeps the data directory and its admin socket private to the owner", async () => {
    expect((await stat(env.REOCLO_DATA_DIR!)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(env.REOCLO_DATA_DIR!, "admin.sock"))).mode & 0o777).toBe(0o600);
  });

  it("adds a server from another process, pinning its host key on first use", async () => {
    const r = await runAdminCli(serversAdd(host, keyFile, "web-1", ["--trust-on-first-use"]), env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const server = parse<{ id: string; host_key_fingerprint: string }>(r.stdout);
    expect(server.host_key_fingerprint).toBe(host.hostKeyFingerprint);
    serverId = server.id;
  });

  it("adds an application whose environment is stored encrypted and never printed", async () => {
    const script = path.join(dataDir, "deploy.sh");
    const envFile = path.join(dataDir, "app.env");
    await writeFile(script, 'echo "deploying $REOCLO_COMMIT_REF"\n');
    await writeFile(envFile, "# secrets for the deploy\nDB_PASSWORD = hunter2-very-secret\n\nMODE=prod\n");
    const r = await runAdminCli(
      ["apps", "add", "--name", "web", "--server", serverId, "--working-directory", "/srv/web"].concat([
        "--deploy-script-file",
        script,
        "--env-file",
        envFile,
        "--json",
      ]),
      env,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(parse<{ has_env: boolean; has_restart_script: boolean }>(r.stdout)).toMatchObject({
      has_env: true,
      has_restart_script: false,
    });
    const list = await runAdminCli(["apps", "list", "--json"], env);
    expect(parse<{ name: string; has_env: boolean }[]>(list.stdout)).toMatchObject([
      { name: "web", has_env: true },
    ]);
    expect(list.stdout + r.stdout).not.toContain("hunter2");
    await writeFile(envFile, "not an assignment\n");
    const bad = await runAdminCli(
      ["apps", "add", "--name", "web2", "--server", serverId, "--working-directory", "/srv/web"].concat([
        "--deploy-script-file",
        script,
        "--env-file",
        envFile,
      ]),
      env,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--env-file: line 1 is not NAME=value");
  });

  it("creates a key and prints it exactly once", async () => {
    const r = await runAdminCli(
      ["keys", "create", "--name", "ci", "--operations", "exec,deploy", "--servers", serverId, "--json"],
      env,
    );
    expect(r.code).toBe(0);
    const created = parse<{ id: string; key: string; prefix: string; status: string }>(r.stdout);
    expect(created.key).toMatch(/^rca_[0-9A-Za-z]{36}$/);
    expect(created.key.startsWith(created.prefix)).toBe(true);
    expect(created.status).toBe("active");
    plaintextKey = created.key;

    const list = await runAdminCli(["keys", "list", "--json"], env);
    expect(list.code).toBe(0);
    const keys = parse<{ id: string; prefix: string }[]>(list.stdout);
    expect(keys.map((k) => k.id)).toContain(created.id);
    expect(list.stdout).not.toContain(plaintextKey);
    const show = await runAdminCli(["keys", "show", created.id, "--json"], env);
    expect(show.stdout).not.toContain(plaintextKey);
  });

  it("lets the key call the API, and shows that decision in `audit list`", async () => {
    const res = await fetch(`${service.url}/api/automation/v1/key`, {
      headers: { Authorization: `Bearer ${plaintextKey}`, "User-Agent": "reoclo-github-action" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("ratelimit-limit")).toBe("100");
    const audit = await runAdminCli(["audit", "list", "--outcome", "allowed", "--json"], env);
    expect(audit.code).toBe(0);
    const rows = parse<{ outcome: string; user_agent: string; client_ip: string }[]>(audit.stdout);
    expect(rows[0]).toMatchObject({
      outcome: "allowed",
      user_agent: "reoclo-github-action",
      client_ip: "127.0.0.1",
    });
    expect(audit.stdout).not.toContain(plaintextKey);
  });

  it("tests the server over SSH, then refuses it with host_key_mismatch once the host key changes", async () => {
    const ok = await runAdminCli(["servers", "test", serverId, "--json"], env);
    expect(ok.code).toBe(0);
    expect(parse<{ remote_user: string }>(ok.stdout).remote_user).toBe(host.username);

    const newFingerprint = await host.replaceHostKey();
    const bad = await runAdminCli(["servers", "test", serverId], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("host_key_mismatch");
    expect(bad.stderr).toContain(newFingerprint);
    expect(bad.stdout).toBe("");
  });

  it("refuses a second service on the same data directory with a clear error", async () => {
    const second = await runServiceToExit(env);
    expect(second.code).toBe(1);
    expect(second.output).toMatch(/in use by reoclo service \(pid \d+\)/);
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
  });

  it("on SIGTERM hands a running operation to the next start, exits 0, and keeps the data", async () => {
    // The host key was replaced above: pin the host again as a new server, with a key for all servers.
    const added = await runAdminCli(serversAdd(host, keyFile, "web-2", ["--trust-on-first-use"]), env);
    const { id } = parse<{ id: string }>(added.stdout);
    const { key } = parse<{ key: string }>(
      (
        await runAdminCli(
          ["keys", "create", "--name", "all", "--operations", "exec", "--all-servers", "--json"],
          env,
        )
      ).stdout,
    );
    const exec = (base: string, command: string) =>
      fetch(`${base}/api/automation/v1/exec`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ server_id: id, command, timeout_seconds: 600 }),
      });
    const marker = `9${Math.floor(Math.random() * 900_000 + 100_000)}`;
    const pending = exec(service.url, `sleep ${marker}; echo after the restart`);
    await expect.poll(() => pgrepCount(`sleep ${marker}`), { timeout: 10_000 }).toBe(1);
    const exited = service.stop();
    const answer = await pending;
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { operation_id: string; status: string };
    expect(body.status).toBe("running"); // handed over: the caller polls, whichever instance answers
    expect(await exited).toBe(0);
    expect(pgrepCount(`sleep ${marker}`)).toBe(1); // it runs on without the service

    const list = await runAdminCli(["keys", "list", "--json"], env); // now opens the database itself
    expect(list.code).toBe(0);
    expect(parse<{ name: string }[]>(list.stdout).map((k) => k.name)).toContain("ci");
    expect(list.stdout).not.toContain(plaintextKey);

    // The next start takes it over: a cancel there kills it on the host.
    const next = await startService(env);
    try {
      const op = (path: string, method = "GET") =>
        fetch(`${next.url}/api/automation/v1/operations/${body.operation_id}${path}`, {
          method,
          headers: { Authorization: `Bearer ${key}` },
        });
      await expect.poll(() => next.output(), { timeout: 10_000 }).toMatch(/"msg":"taking over an operation"/);
      expect((await op("/cancel", "POST")).status).toBe(200);
      expect(await (await op("")).json()).toMatchObject({ outcome: "cancelled", result: { exit_code: 130 } });
      await expect.poll(() => pgrepCount(`sleep ${marker}`), { timeout: 10_000 }).toBe(0);
    } finally {
      expect(await next.stop()).toBe(0);
    }

    // REOCLO_CANCEL_ON_SHUTDOWN keeps the old behaviour: SIGTERM cancels what has not finished within the grace.
    const old = await startService({ ...env, REOCLO_CANCEL_ON_SHUTDOWN: "true" });
    const second = `8${Math.floor(Math.random() * 900_000 + 100_000)}`;
    const cancelled = exec(old.url, `sleep ${second}`);
    await expect.poll(() => pgrepCount(`sleep ${second}`), { timeout: 10_000 }).toBe(1);
    const stopped = old.stop();
    const final = (await (await cancelled).json()) as { reason: string };
    expect(final).toMatchObject({ status: "failed", outcome: "cancelled", exit_code: 130 });
    expect(final.reason).toMatch(
      /^Cancelled by the service instance stopping \(SIGTERM\) after its shutdown grace of \d+ s; /,
    );
    expect(await stopped).toBe(0);
    await expect.poll(() => pgrepCount(`sleep ${second}`), { timeout: 10_000 }).toBe(0);
  });
});

/** `reoclo-admin servers add … --json` for a fixture host, with the given way of pinning its key. */
function serversAdd(host: TestHost, keyFile: string, name: string, pin: string[]): string[] {
  const target = ["--host", host.host, "--port", String(host.port), "--user", host.username];
  return ["servers", "add", "--name", name, ...target, "--private-key-file", keyFile, ...pin, "--json"];
}

describe("reoclo-admin on PostgreSQL", () => {
  let pg: Awaited<ReturnType<typeof createPostgresDatabase>>;
  let host: TestHost;
  let keyFile: string;
  let dir: string;

  beforeAll(async () => {
    [pg, host] = await Promise.all([createPostgresDatabase(), startTestHost()]);
    // The schema, as the service creates it at its first start: reoclo-admin never creates it.
    const database = await openDatabase({ databaseUrl: pg.url, maxConnections: 1 });
    await database.migrate();
    await database.close();
    dir = await mkdtemp(path.join(tmpdir(), "reoclo-cli-pg-"));
    keyFile = path.join(dir, "id_test");
    await writeFile(keyFile, host.privateKey, { mode: 0o600 });
  });
  afterAll(async () => {
    await pg?.drop();
    await host?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const addServer = (env: Record<string, string>) =>
    runAdminCli(serversAdd(host, keyFile, "db-1", ["--host-key-fingerprint", host.hostKeyFingerprint]), env);

  it("without a master key, refuses to store an SSH key (secrets_unavailable) but still manages keys", async () => {
    const env = { DATABASE_URL: pg.url, REOCLO_DATA_DIR: path.join(dir, "unused") };
    const r = await addServer(env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("warning: REOCLO_MASTER_KEY is not set");
    expect(parse<{ error: string; detail: string }>(lastLine(r.stderr))).toMatchObject({
      error: "secrets_unavailable",
    });
    const k = await runAdminCli(
      ["keys", "create", "--name", "all", "--operations", "exec", "--all-servers", "--json"],
      env,
    );
    expect(k.code).toBe(0);
    expect(parse<{ servers: string }>(k.stdout).servers).toBe("all");
  });

  it("with a master key, adds and tests a server", async () => {
    const env = { DATABASE_URL: pg.url, REOCLO_MASTER_KEY: "11".repeat(32) };
    const r = await addServer(env);
    expect(r.code).toBe(0);
    const { id } = parse<{ id: string }>(r.stdout);
    const t = await runAdminCli(["servers", "test", id, "--json"], env);
    expect(t.code).toBe(0);
  });

  it("explains usage errors with exit code 2", async () => {
    const r = await runAdminCli(["keys", "create", "--name", "x", "--bogus"], { DATABASE_URL: pg.url });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("usage: reoclo-admin keys create");
  });
});
