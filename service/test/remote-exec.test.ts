// What running a command on a real OpenSSH host looks like from the outside, including what is left on the host.
import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { SshPool, type PoolTarget } from "../src/ssh/pool.js";
import { runRemote, type RemoteExecOutcome, type RemoteExecRequest } from "../src/ssh/remote-exec.js";
import { commandLines, pgrep } from "@reoclo/testbed/process-tree";

let host: TestHost;
let pool: SshPool;
const cleanup: string[] = [];

function targetFor(h: TestHost): PoolTarget {
  const { host: address, port, username, privateKey, hostKeyFingerprint } = h;
  return { serverId: randomUUID(), host: address, port, username, privateKey, hostKeyFingerprint };
}

interface Run {
  outcome: RemoteExecOutcome;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

type Request = Partial<RemoteExecRequest> & { command: string };

function start(req: Request, target = targetFor(host), onStdout?: (text: string) => void) {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const operationId = req.operationId ?? randomUUID();
  const started = performance.now();
  const execution = runRemote(
    pool,
    target,
    { env: {}, timeoutSeconds: 30, ...req, operationId },
    {
      onStdout: (chunk) => {
        out.push(chunk);
        onStdout?.(Buffer.concat(out).toString());
      },
      onStderr: (chunk) => err.push(chunk),
    },
  );
  const result = execution.done.then((outcome): Run => ({
    outcome,
    stdout: Buffer.concat(out).toString(),
    stderr: Buffer.concat(err).toString(),
    elapsedMs: performance.now() - started,
  }));
  return { execution, result, operationId };
}

const run = (req: Request, target?: PoolTarget): Promise<Run> => start(req, target).result;
const token = (): string => randomBytes(8).toString("hex");
/** A number no other process on this machine sleeps for, so `pgrep -f "sleep <n>"` finds only ours. */
const uniqueSleep = (): string => `${600_000 + Math.floor(Math.random() * 399_999)}`;

/** Processes on the host (this machine) whose command line contains `pattern`. */

function tempPath(label: string): string {
  const p = `/tmp/reoclo-test-${label}-${token()}`;
  cleanup.push(p);
  return p;
}

beforeAll(async () => {
  host = await startTestHost();
  pool = new SshPool();
});

afterAll(async () => {
  await pool?.close();
  await host?.close();
  cleanup.forEach((p) => rmSync(p, { recursive: true, force: true }));
});

describe("runRemote", () => {
  it("keeps stdout and stderr apart and complete, and reports exit codes", async () => {
    const ok = await run({ command: "echo out1; echo err1 >&2; echo out2; echo err2 >&2" });
    expect(ok).toMatchObject({ stdout: "out1\nout2\n", stderr: "err1\nerr2\n" });
    expect(ok.outcome).toMatchObject({ kind: "exited", exitCode: 0 });
    expect((await run({ command: "echo bye; exit 3" })).outcome).toMatchObject({
      kind: "exited",
      exitCode: 3,
    });
    const killed = await run({ command: "kill -9 $$" });
    expect(killed).toMatchObject({ stderr: "", outcome: { kind: "exited", exitCode: 137 } });
  });

  it("passes env values byte for byte, whatever they contain, and names the wrapper uses too", async () => {
    const secret = ` spaced 'single' "double" $(touch /tmp/x) \`id\` \\ end\n\n`;
    const env = { SECRET: secret, pid: "p", tmp: "t", runner: "r" };
    const result = await run({ command: 'printf %s "$SECRET"; printf "|%s" "$pid" "$tmp" "$runner"', env });
    expect(result.stdout).toBe(`${secret}|p|t|r`);
    expect(result.outcome).toMatchObject({ kind: "exited", exitCode: 0 });
  });

  it("keeps env values and the command text out of every command line on the host", async () => {
    const secret = `secret-${token()}`;
    const marker = `marker-${token()}`;
    let running = false;
    const { result, operationId } = start(
      { command: `echo running; : ${marker}; sleep 2`, env: { SECRET: secret } },
      targetFor(host),
      () => (running = true),
    );
    const seen: string[] = [];
    const onDisk: string[] = [];
    let finished = false;
    void result.then(() => (finished = true));
    while (!finished) {
      seen.push(commandLines());
      // The env file (0600, in a 0700 directory) is deleted as soon as it is sourced, before the
      // command runs: from the command's first output on, no file on the host holds the value.
      if (running) {
        const grep = ["-c", `grep -rl -- ${secret} /tmp/reoclo-${operationId}.* 2>/dev/null || true`];
        onDisk.push(execFileSync("sh", grep, { encoding: "utf8" }));
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await result).outcome).toMatchObject({ kind: "exited", exitCode: 0 });
    expect(seen.some((ps) => ps.includes(operationId))).toBe(true); // the sampling did see the run
    expect(seen.filter((ps) => ps.includes(secret) || ps.includes(marker))).toEqual([]);
    expect(onDisk.length).toBeGreaterThan(10); // the disk was looked at while the command ran
    expect(onDisk.filter((files) => files !== "")).toEqual([]);
  });

  it("runs the command in its own session, with the account's usual umask and /dev/null as stdin", async () => {
    const channel = await pool.exec(targetFor(host), "umask");
    const loginUmask = await new Promise<string>((resolve) => {
      let out = "";
      channel.on("data", (d: Buffer) => (out += d.toString()));
      channel.once("close", () => resolve(out));
    });
    const result = await run({ command: "umask; cat; readlink /proc/self/fd/0; ps -o sid= -p $$; echo $$" });
    const [umask, stdin, sessionId, pid] = result.stdout.split("\n").map((l) => l.trim());
    expect(`${umask}\n`).toBe(loginUmask);
    expect(stdin).toBe("/dev/null");
    expect(sessionId).toBe(pid);
  });

  it("treats the working directory as data: injection payloads run nothing and exit 1", async () => {
    for (const payload of ["$(touch {f})", '"; touch {f}; "', "`touch {f}`", "-P"]) {
      const file = tempPath("inject");
      const marker = tempPath("ran");
      const result = await run({
        command: `touch ${marker}`,
        workingDirectory: payload.replace("{f}", file),
      });
      expect(result.outcome).toMatchObject({ kind: "exited", exitCode: 1 });
      expect(result.stderr).toMatch(/^reoclo: working directory .* does not exist\n$/);
      expect(existsSync(file) || existsSync(marker)).toBe(false);
    }
  });

  it("takes a working directory of `-` as a directory of that name, never as $OLDPWD", async () => {
    const missing = await run({ command: "pwd", workingDirectory: "-" });
    expect(missing.outcome).toMatchObject({ kind: "exited", exitCode: 1 });
    expect(missing.stderr).toBe("reoclo: working directory - does not exist\n");
    const home = (await run({ command: 'printf %s "$HOME"' })).stdout;
    const named = `${home}/-`;
    await run({ command: `mkdir -p ./-` });
    try {
      for (const wd of ["-", "./-", named]) {
        const result = await run({ command: "pwd", workingDirectory: wd });
        expect(result.stdout).toBe(`${named}\n`);
      }
    } finally {
      await run({ command: "rmdir ./-" });
    }
  });

  it("runs the command in a valid working directory", async () => {
    const dir = mkdtempSync("/tmp/reoclo test dir ");
    cleanup.push(dir);
    chmodSync(dir, 0o755);
    const result = await run({ command: "pwd", workingDirectory: dir });
    expect(result.stdout).toBe(`${dir}\n`);
  });

  it("kills the whole process tree at the timeout", async () => {
    const child = uniqueSleep();
    const { result, operationId } = start({
      command: `bash -c 'sleep ${child}' & sleep 30`,
      timeoutSeconds: 1,
      killGraceSeconds: 2,
    });
    await expect.poll(() => pgrep(`sleep ${child}`)).not.toBe("");
    const { outcome, elapsedMs, stderr } = await result;
    expect(outcome.kind).toBe("timeout");
    expect(stderr).toBe(""); // no job notices from the wrapper's shell
    expect(elapsedMs).toBeGreaterThanOrEqual(1_000);
    expect(elapsedMs).toBeLessThan(1_000 + 2_000 + 1_000);
    await expect.poll(() => pgrep(`sleep ${child}`) + pgrep(operationId), { timeout: 3_000 }).toBe("");
  });

  it("cancel() kills a tree that ignores TERM with KILL after the grace", async () => {
    const child = uniqueSleep();
    let cancelledAt = 0;
    const { execution, result, operationId } = start(
      { command: `trap '' TERM; echo started; sleep ${child}`, killGraceSeconds: 1 },
      targetFor(host),
      (text) => {
        if (text.includes("started") && cancelledAt === 0) {
          cancelledAt = performance.now();
          execution.cancel();
          execution.cancel(); // idempotent
        }
      },
    );
    const { outcome } = await result;
    expect(outcome.kind).toBe("cancelled");
    expect(performance.now() - cancelledAt).toBeGreaterThanOrEqual(900);
    expect(performance.now() - cancelledAt).toBeLessThan(3_000);
    await expect.poll(() => pgrep(`sleep ${child}`) + pgrep(operationId), { timeout: 3_000 }).toBe("");
  });

  it("ends when the command exits even if a background process still holds stdout, and cleans it up", async () => {
    const child = uniqueSleep();
    const result = await run({ command: `sh -c 'sleep ${child} &'; echo done`, killGraceSeconds: 2 });
    expect(result).toMatchObject({ stdout: "done\n", outcome: { kind: "exited", exitCode: 0 } });
    expect(result.elapsedMs).toBeLessThan(2_000);
    await expect.poll(() => pgrep(`sleep ${child}`), { timeout: 3_000 }).toBe("");
  });

  it("removes its temp dir and leaves nothing behind after a normal run", async () => {
    const operationId = randomUUID();
    await run({ command: "echo hi", operationId });
    const leftovers = execFileSync("sh", ["-c", `ls -d /tmp/reoclo-${operationId}* 2>/dev/null || true`]);
    expect(leftovers.toString()).toBe("");
    await expect.poll(() => pgrep(operationId), { timeout: 3_000 }).toBe("");
  });

  it("ends every one of many short commands promptly (no helper left to wait for)", async () => {
    // A helper that had not reached its setsid when the command ended once outlived the kill and held
    // the wrapper until its timeout; quick commands in parallel are what exposed it.
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const kinds: string[] = [];
        for (let i = 0; i < 40; i++)
          kinds.push((await run({ command: "true", timeoutSeconds: 60 })).outcome.kind);
        return kinds;
      }),
    );
    // A held wrapper ends `lost` (after timeout + grace + margin), which the filter catches.
    expect(outcomes.flat().filter((k) => k !== "exited")).toEqual([]);
    // 320 commands take ~15–27 s on this 2-core machine, depending on what else runs: a bound, not a goal.
  }, 120_000);

  it("delivers 5 MiB of output complete and in order", async () => {
    const result = await run({ command: "seq 1 800000" });
    const expected = Array.from({ length: 800_000 }, (_, i) => `${i + 1}\n`).join("");
    expect(result.stdout.length).toBeGreaterThan(5 * 1024 * 1024);
    expect(result.stdout === expected).toBe(true);
  });

  it("honours pause() and resume() without losing output", async () => {
    let received = 0;
    const { execution, result } = start({ command: "seq 1 200000" }, targetFor(host), () => received++);
    execution.pause();
    // Longer than the 2.5 s allowed for trailing output: a pause held by us must not cut the output short.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(received).toBe(0);
    execution.resume();
    const { stdout, outcome } = await result;
    expect(outcome).toMatchObject({ kind: "exited", exitCode: 0 });
    expect(stdout.split("\n").length).toBe(200_001);
  });

  it("cancel() before the channel opens runs nothing", async () => {
    const marker = tempPath("early-cancel");
    const { execution, result } = start({ command: `touch ${marker}` });
    execution.cancel();
    expect((await result).outcome).toEqual({ kind: "cancelled", durationMs: 0 });
    await expect.poll(() => pool.stats().channels).toBe(0); // the channel opened, got no header, and closed
    expect(existsSync(marker)).toBe(false);
  });

  it("rejects a malformed request without connecting", async () => {
    const outcome = (await run({ command: "true", env: { "BAD-NAME": "x" } })).outcome;
    expect(outcome).toMatchObject({ kind: "failed", code: "invalid_request" });
  });
});

describe("runRemote against a host that changes under it", () => {
  let other: TestHost;
  let target: PoolTarget;

  beforeAll(async () => {
    other = await startTestHost();
    target = targetFor(other);
  });

  afterAll(async () => {
    await other?.close();
  });

  it("fails with host_key_mismatch after the host key changed, and runs nothing", async () => {
    expect((await run({ command: "true" }, target)).outcome.kind).toBe("exited"); // a warm pooled connection
    await other.replaceHostKey();
    const marker = tempPath("mismatch");
    const { outcome } = await run({ command: `touch ${marker}` }, target);
    expect(outcome).toMatchObject({ kind: "failed", code: "host_key_mismatch" });
    expect(existsSync(marker)).toBe(false);
  });

  it("reports lost when the host's sshd dies mid-run", async () => {
    const current = { ...target, hostKeyFingerprint: other.hostKeyFingerprint };
    let stopping: Promise<void> | undefined;
    const { result, operationId } = start({ command: "echo started; sleep 30" }, current, (text) => {
      if (text.includes("started")) stopping ??= other.stop();
    });
    expect((await result).outcome.kind).toBe("lost");
    await stopping;
    await other.start();
    // The wrapper was SIGKILLed with its session: its temp dir stays, holding the command (and the wrapper's
    // bookkeeping: pids, grace) but never the env file, which the command's shell deleted before it ran.
    const leftover = execFileSync("sh", ["-c", `ls /tmp/reoclo-${operationId}.*`], { encoding: "utf8" });
    expect(leftover.trim().split("\n")).toContain("command");
    expect(leftover.trim().split("\n")).not.toContain("env");
    execFileSync("sh", ["-c", `rm -rf /tmp/reoclo-${operationId}.*`]);
  });
});
