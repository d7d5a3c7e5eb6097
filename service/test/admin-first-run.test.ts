import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair } from "@reoclo/testbed/keys";
import { createPostgresDatabase } from "@reoclo/testbed/postgres-database";
import type { TestHost } from "@reoclo/testbed/sshd";
import {
  runAdminCli,
  startService,
  startServiceWithHost,
  type RunningService,
  type ServiceWithHost,
} from "./fixtures/processes";
import { freePort } from "@reoclo/testbed/net";

// Issue 14, "a first run that works as written": reoclo-admin finds the service's storage or says
// where it looked (and creates none), `servers add` checks the key file and the fingerprint it is
// given before storing anything, and `--env-file` is read as dotenv.

const parse = <T>(text: string): T => JSON.parse(text) as T;

/** reoclo-admin from `cwd` (not the repository: nothing found there by accident). */
const runAdminIn = (cwd: string, args: string[], env: Record<string, string> = {}) =>
  runAdminCli(args, env, "", cwd);

describe("reoclo-admin opens the storage the service created, and never creates any", () => {
  let dir: string;
  let elsewhere: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "reoclo-first-run-"));
    elsewhere = path.join(dir, "elsewhere");
    await mkdir(elsewhere);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses a REOCLO_DATA_DIR that does not exist, naming it and how to point it, and creates nothing", async () => {
    const missing = path.join(dir, "nowhere", "data");
    const r = await runAdminIn(elsewhere, ["servers", "list"], { REOCLO_DATA_DIR: missing });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("data_dir_not_found");
    expect(r.stderr).toContain(`No Reoclo data directory at ${missing}`);
    expect(r.stderr).toContain("set REOCLO_DATA_DIR");
    expect(existsSync(path.join(dir, "nowhere"))).toBe(false);
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it("looks in ./.reoclo of the current directory by default, and says so", async () => {
    const r = await runAdminIn(elsewhere, ["servers", "list", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const err = parse<{ error: string; detail: string }>(r.stderr.trim().split("\n").at(-1) ?? "");
    expect(err.error).toBe("data_dir_not_found");
    expect(err.detail).toContain(path.join(elsewhere, ".reoclo"));
    expect(err.detail).toContain("REOCLO_DATA_DIR, default ./.reoclo");
    expect(err.detail).toContain("the directory where you ran `npm start`");
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it("refuses a data directory that holds no database, and leaves it empty (no master key, no socket)", async () => {
    const empty = path.join(dir, "empty");
    await mkdir(empty);
    const r = await runAdminIn(elsewhere, ["keys", "list"], { REOCLO_DATA_DIR: empty });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("database_not_initialised");
    expect(r.stderr).toContain(`${empty} holds no Reoclo database`);
    expect(r.stderr).toContain("has not been started on this directory");
    expect(await readdir(empty)).toEqual([]);
  });

  it("opens a data directory created by a service start with the service stopped, never generating a master key", async () => {
    const data = path.join(dir, "data");
    const env = { REOCLO_DATA_DIR: data, REOCLO_SHUTDOWN_GRACE_SECONDS: "1" };
    const service = await startService(env);
    expect(await service.stop()).toBe(0);
    expect(existsSync(path.join(data, "master.key"))).toBe(true);

    const listed = await runAdminIn(elsewhere, ["orgs", "list", "--json"], { REOCLO_DATA_DIR: data });
    expect(listed.stderr).toBe("");
    expect(listed.code).toBe(0);
    expect(parse<{ name: string }[]>(listed.stdout).map((o) => o.name)).toEqual(["default"]);

    // Only the service generates a key: without one, the admin command line reads and warns.
    await rm(path.join(data, "master.key"));
    const keyless = await runAdminIn(elsewhere, ["servers", "list", "--json"], { REOCLO_DATA_DIR: data });
    expect(keyless.code).toBe(0);
    expect(parse<unknown[]>(keyless.stdout)).toEqual([]);
    expect(keyless.stderr).toContain(`${path.join(data, "master.key")} does not exist`);
    expect(existsSync(path.join(data, "master.key"))).toBe(false);
  }, 60_000); // a service start and two command-line runs that each open the embedded database

  it("refuses a PostgreSQL database the service was never started on, and leaves it without a schema", async () => {
    const pg = await createPostgresDatabase();
    try {
      const r = await runAdminIn(elsewhere, ["servers", "list"], {
        DATABASE_URL: pg.url,
        REOCLO_MASTER_KEY: "11".repeat(32),
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("database_not_initialised");
      expect(r.stderr).toContain("the service has not been started on it");
      expect(r.stderr).not.toContain(pg.url);
      const sql = postgres(pg.url, { max: 1, onnotice: () => undefined });
      try {
        const tables = await sql`select table_schema, table_name from information_schema.tables
          where table_schema not in ('pg_catalog', 'information_schema')`;
        expect(tables).toEqual([]);
      } finally {
        await sql.end();
      }
    } finally {
      await pg.drop();
    }
  });
});

describe("servers add checks the key file and the host key fingerprint before storing anything", () => {
  let dir: string;
  let host: TestHost;
  let service: RunningService;
  let env: Record<string, string>;
  let keyFile: string;

  let bed: ServiceWithHost;
  beforeAll(async () => {
    bed = await startServiceWithHost("reoclo-add-checks-");
    ({ dir: dir, env, host, keyFile, service } = bed);
  });
  afterAll(async () => {
    await bed?.close();
  });

  const add = (name: string, extra: string[], opts: { port?: number; key?: string } = {}) =>
    runAdminCli(
      [
        "servers",
        "add",
        "--name",
        name,
        "--host",
        host.host,
        "--port",
        String(opts.port ?? host.port),
      ].concat(["--user", host.username, "--private-key-file", opts.key ?? keyFile, ...extra, "--json"]),
      env,
    );
  const storedNames = async () =>
    parse<{ name: string }[]>((await runAdminCli(["servers", "list", "--json"], env)).stdout).map(
      (s) => s.name,
    );

  const sshKeygenPublic = (type: string) => {
    const file = path.join(dir, `id_${type}`);
    execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", "deploy@laptop", "-f", file]);
    return `${file}.pub`;
  };
  const pemPublic = async (name: string, type: "spki" | "pkcs1") => {
    const file = path.join(dir, name);
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    await writeFile(file, publicKey.export({ type, format: "pem" }));
    return file;
  };

  it.each([
    ["an ssh-ed25519 .pub file from ssh-keygen", () => sshKeygenPublic("ed25519"), "(ssh-ed25519)"],
    ["an ecdsa-sha2 .pub file from ssh-keygen", () => sshKeygenPublic("ecdsa"), "(ecdsa-sha2-nistp256)"],
    ["an ssh-rsa .pub file from ssh-keygen", () => sshKeygenPublic("rsa"), "(ssh-rsa)"],
    [
      "an OpenSSH public key line with no comment",
      async () => {
        const file = path.join(dir, "bare.pub");
        await writeFile(file, generateKeyPair().public.split(" ").slice(0, 2).join(" "));
        return file;
      },
      "(ssh-ed25519)",
    ],
    ["a PEM public key", () => pemPublic("spki.pem", "spki"), "(PEM PUBLIC KEY)"],
    ["a PEM RSA public key", () => pemPublic("pkcs1.pem", "pkcs1"), "(PEM RSA PUBLIC KEY)"],
  ])("refuses %s as the private key, by name, and stores nothing", async (_what, make, kind) => {
    const pub = await make();
    const name = `pub-${path.basename(pub).replace(/\W/g, "-")}`;
    const r = await add(name, ["--trust-on-first-use"], { key: pub });
    expect(r.code).toBe(1);
    const err = parse<{ error: string; detail: string }>(r.stderr.trim());
    expect(err.error).toBe("validation");
    expect(err.detail).toContain(`this is a public key ${kind}; give the private key file, not the .pub one`);
    expect(await storedNames()).not.toContain(name);
  });

  it("refuses a well-formed fingerprint the host does not present, naming both and how to read the right one", async () => {
    const wrong = `SHA256:${"A".repeat(43)}`;
    const r = await add("wrong-pin", ["--host-key-fingerprint", wrong]);
    expect(r.code).toBe(1);
    const err = parse<{ error: string; detail: string }>(r.stderr.trim());
    expect(err.error).toBe("host_key_mismatch");
    expect(err.detail).toContain(`presents host key ${host.hostKeyFingerprint}, not ${wrong}`);
    expect(err.detail).toContain("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub");
    expect(err.detail).toContain("nothing was stored");
    expect(await storedNames()).not.toContain("wrong-pin");
  });

  it("accepts the fingerprint the host presents, and pins it", async () => {
    const r = await add("right-pin", ["--host-key-fingerprint", host.hostKeyFingerprint]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(parse<{ host_key_fingerprint: string }>(r.stdout).host_key_fingerprint).toBe(
      host.hostKeyFingerprint,
    );
    expect(await storedNames()).toContain("right-pin");
  });

  it("refuses a host that does not answer, naming --skip-host-key-check, and stores nothing", async () => {
    const r = await add("down-checked", ["--host-key-fingerprint", host.hostKeyFingerprint], {
      port: await freePort(),
    });
    expect(r.code).toBe(1);
    const err = parse<{ error: string; detail: string }>(r.stderr.trim());
    expect(err.error).toBe("host_unreachable");
    expect(err.detail).toContain("pass --skip-host-key-check");
    expect(await storedNames()).not.toContain("down-checked");
  });

  it("with --skip-host-key-check, pins the given fingerprint of a host that is down", async () => {
    const r = await add(
      "down-skipped",
      ["--host-key-fingerprint", host.hostKeyFingerprint, "--skip-host-key-check"],
      {
        port: await freePort(),
      },
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(parse<{ host_key_fingerprint: string }>(r.stdout).host_key_fingerprint).toBe(
      host.hostKeyFingerprint,
    );
    expect(await storedNames()).toContain("down-skipped");
  });

  it("refuses --skip-host-key-check with --trust-on-first-use, which must ask the host", async () => {
    const r = await add("tofu-skipped", ["--trust-on-first-use", "--skip-host-key-check"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--skip-host-key-check goes with --host-key-fingerprint");
    expect(await storedNames()).not.toContain("tofu-skipped");
  });

  it("reads --env-file as dotenv: a deploy sees export, quotes, comments, empty and multi-line values as written", async () => {
    const added = await add("env-host", ["--host-key-fingerprint", host.hostKeyFingerprint]);
    const serverId = parse<{ id: string }>(added.stdout).id;
    const envFile = path.join(dir, "web.env");
    await writeFile(
      envFile,
      [
        "# the deploy's settings",
        "export A=1",
        'Q="ab"',
        "S='x y'",
        "# C=3 is a comment, not a variable",
        "E=",
        'M="l1',
        'l2"',
        "",
      ].join("\n"),
    );
    const script = path.join(dir, "deploy.sh");
    await writeFile(
      script,
      `printf '[%s]' "$A" "$Q" "$S" "$E" "$M"; printf ' %s' "\${E+set}" "\${C-unset}"\n`,
    );
    const app = await runAdminCli(
      ["apps", "add", "--name", "web", "--server", serverId, "--working-directory", "/tmp"].concat([
        "--deploy-script-file",
        script,
        "--env-file",
        envFile,
        "--json",
      ]),
      env,
    );
    expect(app.stderr).toBe("");
    const appId = parse<{ id: string }>(app.stdout).id;
    const created = await runAdminCli(
      ["keys", "create", "--name", "deploy", "--operations", "deploy", "--servers", serverId, "--json"],
      env,
    );
    const { key } = parse<{ key: string }>(created.stdout);
    const res = await fetch(`${service.url}/api/automation/v1/deploy`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ application_id: appId, commit_ref: "main" }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; exit_code: number; stdout: string; stderr: string };
    expect(body.stderr).toBe("");
    expect(body).toMatchObject({ status: "completed", exit_code: 0 });
    expect(body.stdout).toBe("[1][ab][x y][][l1\nl2] set unset");
  });

  it("names the line of a malformed --env-file, never its value", async () => {
    const envFile = path.join(dir, "bad.env");
    await writeFile(envFile, 'export OK=1\nTOKEN="s3cret-value\n');
    const r = await runAdminCli(
      ["apps", "add", "--name", "bad", "--server", "00000000-0000-0000-0000-000000000000"].concat([
        "--working-directory",
        "/tmp",
        "--deploy-script-file",
        envFile,
        "--env-file",
        envFile,
      ]),
      env,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--env-file: line 2 opens a " quote that is never closed');
    expect(r.stderr).not.toContain("s3cret");
  });
});
