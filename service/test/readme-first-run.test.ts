import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startService, type RunningService } from "./fixtures/processes";
import { freePort } from "@reoclo/testbed/net";

// The README's "First run", pasted as written (scripts/readme-first-run.ts runs its shell blocks
// top to bottom) next to a freshly started service with a fresh data directory and home: it makes
// a throwaway sshd, adds it, creates a key, runs `uptime` through the API, shows a restricted key
// refused from here, and cleans up.

const REPO = fileURLToPath(new URL("../..", import.meta.url));

describe("the README's First run, as written", () => {
  let dir: string;
  let service: RunningService;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "reoclo-readme-"));
    env = { REOCLO_DATA_DIR: path.join(dir, "data") };
    service = await startService(env);
  });
  afterAll(async () => {
    if (service?.process.exitCode === null) await service.stop();
    // A run that failed half-way leaves the demo sshd running: stop it by its pid file.
    const pidFile = path.join(dir, "home", "reoclo-demo", "sshd.pid");
    if (existsSync(pidFile)) process.kill(Number(readFileSync(pidFile, "utf8").trim()), "SIGTERM");
    await rm(dir, { recursive: true, force: true });
  });

  it("adds a throwaway host, creates a key and runs a command through the API", async () => {
    const home = path.join(dir, "home");
    const sshPort = await freePort();
    const { DATABASE_URL: _ignored, ...rest } = process.env;
    const child = spawn(process.execPath, ["--import", "tsx", "scripts/readme-first-run.ts"], {
      cwd: REPO,
      env: {
        ...rest,
        ...env,
        HOME: home,
        PORT: new URL(service.url).port,
        SSH_PORT: String(sshPort),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code, out).toBe(0);
    // Step 1: the test connected as the account that ran it; step 3: uptime ran; step 4: refused.
    expect(out).toContain(`remote_user: ${os.userInfo().username}\n`);
    expect(out).toMatch(
      /"status":"completed","outcome":"completed","reason":null,"exit_code":0,"stdout":"[^"]*load average/,
    );
    expect(out).toContain('"error":"ip_not_allowed"');
    // The key printed once went to the shell, not the terminal; the demo host is gone.
    expect(out).not.toMatch(/rca_[0-9A-Za-z]{36}/);
    expect(existsSync(path.join(home, "reoclo-demo"))).toBe(false);
    expect(await connectError(sshPort)).toBe("ECONNREFUSED");
    // The README says which script keeps it honest.
    expect(readFileSync(path.join(REPO, "README.md"), "utf8")).toContain("scripts/readme-first-run.ts");
  }, 90_000);
});

/** The error code of a TCP connect to a loopback port ("" when something accepts it). */
function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve("");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}
