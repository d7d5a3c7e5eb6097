import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { runAdminCli } from "./fixtures/processes";

// `npm start` is what the README tells people (and `docker stop`, systemd, supervisors) to run and
// signal: SIGTERM to that very process must drain the service and exit 0 only after it stopped.

const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface Started {
  npm: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

function npmStart(env: Record<string, string>): Promise<Started> {
  const { DATABASE_URL: _ignored, ...rest } = process.env;
  // detached: its own process group, as a shell job or a container's PID 1 would be.
  const npm = spawn("npm", ["start"], {
    cwd: REPO_ROOT,
    env: { ...rest, PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  const exited = new Promise<number | null>((resolve) => npm.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = /"msg":"listening","url":"([^"]+)"/.exec(output);
      if (m?.[1]) resolve({ npm, url: m[1], output: () => output, exited });
    };
    npm.stdout.on("data", onData);
    npm.stderr.on("data", onData);
    void exited.then((code) =>
      reject(new Error(`npm start exited with ${code} before listening:\n${output}`)),
    );
  });
}

/** Children of a process, from /proc: after `exec`, the service is npm's direct child. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const line of readFileSync("/proc/" + pid + "/task/" + pid + "/children", "utf8").split(" ")) {
    if (line.trim()) out.push(Number(line));
  }
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("npm start under a supervisor's SIGTERM", () => {
  let dir: string;
  let host: TestHost;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "reoclo-start-"));
    host = await startTestHost();
  });
  afterAll(async () => {
    await host?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("drains a running command and exits 0 after the service when npm itself gets SIGTERM", async () => {
    // Reattaching off: the command is then one the service must see to its end within the grace (with it
    // on, SIGTERM hands the command to the next start at once: reattach.test.ts, admin-cli.test.ts).
    const env = {
      REOCLO_DATA_DIR: path.join(dir, "one"),
      REOCLO_SHUTDOWN_GRACE_SECONDS: "20",
      REOCLO_REATTACH_BOUND_SECONDS: "0",
    };
    const started = await npmStart(env);
    const [service] = childrenOf(started.npm.pid!);
    expect(service).toBeDefined();
    try {
      const keyFile = path.join(dir, "id");
      await writeFile(keyFile, host.privateKey, { mode: 0o600 });
      const added = await runAdminCli(
        [
          "servers",
          "add",
          "--name",
          "web",
          "--host",
          host.host,
          "--port",
          String(host.port),
          "--user",
          host.username,
          "--private-key-file",
          keyFile,
          "--host-key-fingerprint",
          host.hostKeyFingerprint,
          "--json",
        ],
        env,
      );
      expect(added.code, added.stderr).toBe(0);
      const serverId = (JSON.parse(added.stdout) as { id: string }).id;
      const created = await runAdminCli(
        ["keys", "create", "--name", "k", "--operations", "exec", "--servers", serverId, "--json"],
        env,
      );
      const key = (JSON.parse(created.stdout) as { key: string }).key;
      // The command says it started with a file, then waits for one the test creates once SIGTERM
      // was sent, so it is mid-run then. The directory is the host account's to write in.
      const markers = await mkdtemp(path.join(tmpdir(), "reoclo-drain-"));
      await chmod(markers, 0o777);
      const answer = fetch(`${started.url}/api/automation/v1/exec`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({
          server_id: serverId,
          command: `cd ${markers} && touch started && while [ ! -e release ]; do sleep 0.05; done; echo finished`,
          timeout_seconds: 60,
        }),
      });
      await expect.poll(() => existsSync(path.join(markers, "started")), { timeout: 10_000 }).toBe(true);
      process.kill(started.npm.pid!, "SIGTERM");
      await expect.poll(() => started.output(), { timeout: 10_000 }).toContain('"msg":"shutting down"');
      await writeFile(path.join(markers, "release"), "");
      const body = (await (await answer).json()) as { status: string; stdout: string; exit_code: number };
      expect(body).toMatchObject({ status: "completed", exit_code: 0 });
      expect(body.stdout).toBe("finished\n");
      expect(await started.exited).toBe(0);
      const out = started.output();
      expect(out).toContain('"msg":"stopped"');
      expect(alive(service!)).toBe(false);
    } finally {
      if (alive(service!)) process.kill(service!, "SIGKILL");
    }
  });

  it("exits 0 after the service has stopped when the whole process group gets SIGTERM", async () => {
    const started = await npmStart({ REOCLO_DATA_DIR: path.join(dir, "two") });
    const [service] = childrenOf(started.npm.pid!);
    try {
      process.kill(-started.npm.pid!, "SIGTERM");
      expect(await started.exited).toBe(0);
      expect(started.output()).toContain('"msg":"stopped"');
      expect(alive(service!)).toBe(false);
    } finally {
      if (alive(service!)) process.kill(service!, "SIGKILL");
    }
  });
});
