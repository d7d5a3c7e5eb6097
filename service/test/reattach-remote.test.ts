// An operation that outlives a dropped connection, on a real OpenSSH host: what the user sees (the output
// complete and in order, the exit code right, or an honest `lost`) and what is left on the host afterwards.
// The connection is cut, or the host made unreachable, by a TCP proxy in front of the sshd, or the sshd's
// session processes are killed (their commands run on).
import { execFileSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { pgrep, signal } from "@reoclo/testbed/process-tree";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { startTcpProxy, type TcpProxy } from "@reoclo/testbed/tcp-proxy";
import { SshPool, type PoolTarget } from "../src/ssh/pool.js";
import {
  attachRemote,
  hostKeepSeconds,
  runRemote,
  type AttachRequest,
  type ByteOffsets,
  type ConnectionEvent,
  type RemoteExecHandlers,
  type RemoteExecOutcome,
  type RemoteExecRequest,
  type RemoteExecution,
} from "../src/ssh/remote-exec.js";

let host: TestHost;
let proxy: TcpProxy;
let pool: SshPool;
/** Operation ids and unique sleeps this file started: whatever a failed test left of them goes in afterAll. */
const operations: string[] = [];
const sleeps: string[] = [];
/** Drop → reattached, per case, printed once at the end: how long a resume takes on this machine. */
const reattachTimes: string[] = [];

function targetFor(h: TestHost): PoolTarget {
  const { host: address, port, username, privateKey, hostKeyFingerprint } = h;
  return { serverId: randomUUID(), host: address, port, username, privateKey, hostKeyFingerprint };
}
/** The host through the proxy, which can cut the connection or make the host unreachable. */
const proxied = (): PoolTarget => ({ ...targetFor(host), port: proxy.port });

/** A number no other process on this machine sleeps for, so `pgrep -f "sleep <n>"` finds only ours. */
function uniqueSleep(): string {
  const n = `${600_000 + Math.floor(Math.random() * 399_999)}`;
  sleeps.push(n);
  return n;
}

/** The host's directories for an operation (`ls -d /tmp/reoclo-<id>.*`), one per line; "" when none. */
const hostDirs = (operationId: string): string =>
  execFileSync("sh", ["-c", `ls -d /tmp/reoclo-${operationId}.* 2>/dev/null || true`], { encoding: "utf8" });
/** The operation's command on the host (its keeper, which holds only the directory, is not matched). */
const commandOf = (operationId: string): string => pgrep(`reoclo-${operationId}\\.[^ ]*/command`);

const sha256 = (bytes: Buffer | string): string => createHash("sha256").update(bytes).digest("hex");
/** `<prefix> 1\n` … `<prefix> n\n`: what the numbered-lines commands print on a stream. */
const numbered = (prefix: string, n: number): string =>
  Array.from({ length: n }, (_, i) => `${prefix} ${i + 1}\n`).join("");
/** Prints `out i` and `err i` for i = 1…n, `pause` seconds apart, then exits with `code`. */
const numberedCommand = (n: number, pause: number, code: number): string =>
  `for i in $(seq 1 ${n}); do echo "out $i"; echo "err $i" >&2; sleep ${pause}; done; exit ${code}`;

interface Run {
  outcome: RemoteExecOutcome;
  stdout: Buffer;
  stderr: Buffer;
  events: ConnectionEvent[];
  /** Bytes of each stream received when each event came. */
  receivedAt: ByteOffsets[];
}

interface Followed {
  execution: RemoteExecution;
  operationId: string;
  result: Promise<Run>;
  events: ConnectionEvent[];
  stdout(): Buffer;
  stderr(): Buffer;
  /** Resolves once `test` holds after some output or connection event; rejects if the run ends first. */
  until(what: string, test: () => boolean): Promise<void>;
}

/** Follows one execution (started or attached by `begin`), keeping every byte and connection event it reports. */
function follow(operationId: string, begin: (handlers: RemoteExecHandlers) => RemoteExecution): Followed {
  operations.push(operationId);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const events: ConnectionEvent[] = [];
  const receivedAt: ByteOffsets[] = [];
  const checks = new Set<() => void>();
  const notify = (): void => [...checks].forEach((check) => check());
  const stdout = (): Buffer => Buffer.concat(out);
  const stderr = (): Buffer => Buffer.concat(err);
  const execution = begin({
    onStdout: (chunk) => (out.push(chunk), notify()),
    onStderr: (chunk) => (err.push(chunk), notify()),
    onConnection: (event) => {
      events.push(event);
      receivedAt.push({ stdout: stdout().length, stderr: stderr().length });
      notify();
    },
  });
  const result = execution.done.then((outcome): Run => ({
    outcome,
    stdout: stdout(),
    stderr: stderr(),
    events,
    receivedAt,
  }));
  const until = (what: string, test: () => boolean): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!test()) return;
        checks.delete(check);
        resolve();
      };
      checks.add(check);
      check();
      void execution.done.then((outcome) => {
        checks.delete(check);
        reject(new Error(`the run ended (${JSON.stringify(outcome)}) before ${what}`));
      });
    });
  return { execution, operationId, result, events, stdout, stderr, until };
}

type Request = Partial<RemoteExecRequest> & { command: string };
/** A bound well past any test, and a copy that holds all the output. */
const LONG = { boundMs: 30_000, copyCapBytes: 1 << 20 };

function start(req: Request, target: PoolTarget, on: SshPool = pool): Followed {
  const operationId = req.operationId ?? randomUUID();
  const full: RemoteExecRequest = { env: {}, timeoutSeconds: 30, reattach: LONG, ...req, operationId };
  return follow(operationId, (handlers) => runRemote(on, target, full, handlers));
}

function attach(req: AttachRequest, target: PoolTarget, on: SshPool = pool): Followed {
  return follow(req.operationId, (handlers) => attachRemote(on, target, req, handlers));
}

const kinds = (events: ConnectionEvent[]): string[] => events.map((e) => e.kind);
/** A lost outcome's reason (anything else, whole, so a mismatch shows what came instead). */
const lostReason = (outcome: RemoteExecOutcome): string =>
  outcome.kind === "lost" ? outcome.reason : `not lost: ${JSON.stringify(outcome)}`;

/** Each drop was resumed from exactly the bytes received before it, and soon (the host never went away). */
function expectResumedWhereDropped(label: string, { events, receivedAt }: Run): void {
  const times: number[] = [];
  events.forEach((event, i) => {
    if (event.kind !== "reattached") return;
    expect(event.from).toEqual(receivedAt[i - 1]); // what had arrived when the drop was noticed
    times.push(event.afterMs);
  });
  reattachTimes.push(`${label}: ${times.join(", ")} ms`);
  // The first attempt is immediate; only a new TCP connection and SSH handshake stand in the way.
  times.forEach((ms) => expect(ms).toBeLessThan(3_000));
}

/** Tells the host the operation is settled, and waits until its keeper has removed its directory and gone. */
async function releaseAndExpectGone(execution: RemoteExecution, operationId: string): Promise<void> {
  execution.release();
  await expect.poll(() => hostDirs(operationId) + pgrep(operationId), { timeout: 5_000 }).toBe("");
}

beforeAll(async () => {
  host = await startTestHost();
  proxy = await startTcpProxy(host.host, host.port);
  pool = new SshPool();
});

afterEach(() => {
  proxy.heal(); // a test that failed while the host was unreachable must not take the next one with it
});

afterAll(async () => {
  if (reattachTimes.length > 0) console.log(`drop → reattached: ${reattachTimes.join("; ")}`);
  await pool?.close();
  await proxy?.close();
  await host?.close();
  // What a failed test may have left on the host: its command, keeper and directory.
  for (const pattern of [...operations, ...sleeps.map((n) => `sleep ${n}`)])
    pgrep(pattern)
      .split("\n")
      .filter(Boolean)
      .forEach((pid) => signal(Number(pid), "SIGKILL"));
  for (const id of operations) execFileSync("sh", ["-c", `rm -rf /tmp/reoclo-${id}.*`]);
});

describe("runRemote with reattach: the connection drops and comes back", () => {
  it("resumes after the proxy cuts the connection mid-command: the output complete, the exit code right", async () => {
    const run = start({ command: numberedCommand(50, 0.05, 3) }, proxied());
    await run.until("line 10", () => run.stdout().includes("out 10\n"));
    proxy.cut();
    const result = await run.result;
    const expected = numbered("out", 50);
    expect(result.outcome).toMatchObject({ kind: "exited", exitCode: 3 });
    expect(result.stdout.toString()).toBe(expected);
    expect(sha256(result.stdout)).toBe(sha256(expected));
    expect(result.stderr.toString()).toBe(numbered("err", 50));
    expect(kinds(result.events)).toEqual(["dropped", "reattached"]);
    expectResumedWhereDropped("proxy cut", result);
    await releaseAndExpectGone(run.execution, run.operationId);
  });

  it("resumes after the host's sshd sessions are killed mid-command (no proxy)", async () => {
    const run = start({ command: numberedCommand(50, 0.05, 3) }, targetFor(host));
    await run.until("line 10", () => run.stdout().includes("out 10\n"));
    expect(host.killSessions()).toBeGreaterThan(0);
    const result = await run.result;
    const expected = numbered("out", 50);
    expect(result.outcome).toMatchObject({ kind: "exited", exitCode: 3 });
    expect(result.stdout.toString()).toBe(expected);
    expect(sha256(result.stdout)).toBe(sha256(expected));
    expect(result.stderr.toString()).toBe(numbered("err", 50));
    expect(kinds(result.events)).toEqual(["dropped", "reattached"]);
    expectResumedWhereDropped("sessions killed", result);
    await releaseAndExpectGone(run.execution, run.operationId);
  });

  it("resumes after two cuts in one run, and the resumed output is live", async () => {
    const run = start({ command: numberedCommand(50, 0.05, 3) }, proxied());
    await run.until("line 10", () => run.stdout().includes("out 10\n"));
    proxy.cut();
    await run.until(
      "reattached, then line 30",
      () => run.events.length === 2 && run.stdout().includes("out 30\n"),
    );
    // Line 30 came through the attach while the command still had 20 lines to go: the host's copy
    // follows the output as it is printed, not a buffer's worth (or the whole run) later.
    expect(existsSync(`${hostDirs(run.operationId).trim()}/exit`)).toBe(false);
    proxy.cut();
    const result = await run.result;
    const expected = numbered("out", 50);
    expect(result.outcome).toMatchObject({ kind: "exited", exitCode: 3 });
    expect(result.stdout.toString()).toBe(expected);
    expect(sha256(result.stdout)).toBe(sha256(expected));
    expect(result.stderr.toString()).toBe(numbered("err", 50));
    expect(kinds(result.events)).toEqual(["dropped", "reattached", "dropped", "reattached"]);
    expectResumedWhereDropped("two proxy cuts", result);
    await releaseAndExpectGone(run.execution, run.operationId);
  });

  it("delivers output past the host's copy cap only while connected: no duplicates, the exit code right", async () => {
    // `seq -w 1 4096` prints 20 KiB at once; the host keeps 4 KiB of it. The cut comes once all 20 KiB are here.
    const run = start(
      { command: "seq -w 1 4096; sleep 1; echo end", reattach: { boundMs: 30_000, copyCapBytes: 4096 } },
      proxied(),
    );
    await run.until("20 KiB", () => run.stdout().length >= 20_480);
    proxy.cut();
    const result = await run.result;
    const printedBeforeCut = Array.from(
      { length: 4096 },
      (_, i) => `${String(i + 1).padStart(4, "0")}\n`,
    ).join("");
    expect(result.outcome).toMatchObject({ kind: "exited", exitCode: 0 });
    expect(kinds(result.events)).toEqual(["dropped", "reattached"]);
    expect(result.events[1]).toMatchObject({ from: { stdout: 20_480, stderr: 0 } });
    // The resumed stream is the host's copy, which ends at 4 KiB, long before where this resumed: nothing
    // of it is sent again. "end", printed a second later (after the reattach, too), went to the channel
    // that died with the connection and is past the copy: it is missing, and nothing else is.
    expect(result.stdout.length).toBe(20_480);
    expect(sha256(result.stdout)).toBe(sha256(printedBeforeCut));
    expect(result.stderr.toString()).toBe("");
    expectResumedWhereDropped("cut past the copy cap", result);
    expect(statSync(`${hostDirs(run.operationId).trim()}/out`).size).toBe(4096); // the host kept its cap
    await releaseAndExpectGone(run.execution, run.operationId);
  });

  it("without reattach, a cut still ends the run lost at once, and the host cleans up after the command", async () => {
    const run = start({ command: "echo started; sleep 1; echo more", reattach: undefined }, proxied());
    await run.until("started", () => run.stdout().includes("started"));
    const cutAt = performance.now();
    proxy.cut();
    const { outcome, events } = await run.result;
    expect(lostReason(outcome)).toMatch(/closed before the command reported an exit status/);
    expect(performance.now() - cutAt).toBeLessThan(1_000);
    expect(events).toEqual([]);
    await expect.poll(() => hostDirs(run.operationId) + pgrep(run.operationId), { timeout: 5_000 }).toBe("");
  });
});

describe("runRemote with reattach: the host unreachable", () => {
  it("ends lost after the bound, and the host's keeper has killed the command and removed its directory", async () => {
    const child = uniqueSleep();
    const grace = 1;
    const boundMs = 8_000;
    expect(hostKeepSeconds(boundMs, grace)).toBe(4);
    const run = start(
      {
        command: `echo started; sleep ${child}`,
        killGraceSeconds: grace,
        reattach: { boundMs, copyCapBytes: 4096 },
      },
      proxied(),
    );
    await run.until("started", () => run.stdout().includes("started"));
    expect(pgrep(`sleep ${child}`)).not.toBe("");
    proxy.partition();
    const { outcome, events } = await run.result;
    expect(lostReason(outcome)).toMatch(/could not be reached again within 8 s of/);
    expect(kinds(events)).toEqual(["dropped"]);
    // The host gives up 4 s after it last heard from the service, which is before the service gives up.
    expect(pgrep(`sleep ${child}`)).toBe("");
    proxy.heal();
    await expect
      .poll(() => pgrep(run.operationId) + pgrep(`sleep ${child}`) + hostDirs(run.operationId), {
        timeout: 5_000,
      })
      .toBe("");
  });

  it("cancel() while the host is unreachable is carried out once it is reachable again", async () => {
    const child = uniqueSleep();
    const run = start(
      {
        command: `echo started; sleep ${child}`,
        killGraceSeconds: 1,
        reattach: { boundMs: 60_000, copyCapBytes: 4096 },
      },
      proxied(),
    );
    await run.until("started", () => run.stdout().includes("started"));
    proxy.partition();
    await run.until("dropped", () => run.events.length === 1);
    const refusedBefore = proxy.accepted;
    run.execution.cancel();
    // An attach attempt was turned away while the cancel waited: it really was pending across the partition.
    await expect.poll(() => proxy.accepted, { timeout: 5_000 }).toBeGreaterThan(refusedBefore);
    expect(pgrep(`sleep ${child}`)).not.toBe("");
    proxy.heal();
    const { outcome, events } = await run.result;
    expect(outcome.kind).toBe("cancelled");
    expect(kinds(events)).toEqual(["dropped", "reattached"]);
    await expect
      .poll(() => pgrep(`sleep ${child}`) + commandOf(run.operationId), { timeout: 3_000 })
      .toBe("");
    await releaseAndExpectGone(run.execution, run.operationId);
  });

  it("a timeout that passes while the host is unreachable is carried out once it is reachable again", async () => {
    const child = uniqueSleep();
    const startedAt = performance.now();
    const run = start(
      {
        command: `echo started; sleep ${child}`,
        timeoutSeconds: 2,
        killGraceSeconds: 1,
        reattach: { boundMs: 60_000, copyCapBytes: 4096 },
      },
      proxied(),
    );
    await run.until("started", () => run.stdout().includes("started"));
    proxy.partition();
    await run.until("dropped", () => run.events.length === 1);
    // A real wait on purpose: the partition has to last past the 2 s timeout.
    await delay(startedAt + 3_000 - performance.now());
    expect(pgrep(`sleep ${child}`)).not.toBe(""); // the host has not been told yet
    proxy.heal();
    const { outcome, events } = await run.result;
    expect(outcome.kind).toBe("timeout");
    expect(kinds(events)).toEqual(["dropped", "reattached"]);
    await expect
      .poll(() => pgrep(`sleep ${child}`) + commandOf(run.operationId), { timeout: 3_000 })
      .toBe("");
    await releaseAndExpectGone(run.execution, run.operationId);
  });
});

describe("detach, attachRemote and release", () => {
  it("detach() leaves the command running; another instance's attachRemote gets the rest, exactly", async () => {
    const startedAt = Date.now();
    const first = start({ command: numberedCommand(40, 0.05, 5) }, targetFor(host));
    await first.until("line 10", () => first.stdout().includes("out 10\n"));
    first.execution.detach();
    // What the first instance hands over: the offsets and the output as they stand at the detach.
    const from = { ...first.execution.received };
    const handedOver = { stdout: first.stdout(), stderr: first.stderr() };
    expect(from).toEqual({ stdout: handedOver.stdout.length, stderr: handedOver.stderr.length });
    expect((await first.result).outcome).toEqual({ kind: "detached" });
    expect(commandOf(first.operationId)).not.toBe(""); // it runs on without anyone following it

    const other = new SshPool();
    try {
      const second = attach(
        {
          operationId: first.operationId,
          from,
          startedAt,
          timeoutAt: startedAt + 30_000,
          silentSince: Date.now(),
          reattach: LONG,
        },
        targetFor(host),
        other,
      );
      const result = await second.result;
      expect(result.outcome).toMatchObject({ kind: "exited", exitCode: 5 });
      expect(result.events).toMatchObject([{ kind: "reattached", from }]);
      const stdout = Buffer.concat([handedOver.stdout, result.stdout]);
      expect(stdout.toString()).toBe(numbered("out", 40));
      expect(sha256(stdout)).toBe(sha256(numbered("out", 40)));
      expect(Buffer.concat([handedOver.stderr, result.stderr]).toString()).toBe(numbered("err", 40));
      // Nothing reached the first instance's handlers after its detach.
      expect({ stdout: first.stdout().length, stderr: first.stderr().length }).toEqual(from);
      await releaseAndExpectGone(second.execution, first.operationId);
    } finally {
      await other.close();
    }
  });

  it("a taker whose timeout has passed keeps the exit status of a command that had already ended, and kills one still running", async () => {
    // Ended on its own while nobody followed it: the late kill changes nothing, the status stands.
    const startedAt = Date.now();
    const ended = start({ command: `echo first; sleep 0.5; echo second; exit 4` }, targetFor(host));
    await ended.until("first", () => ended.stdout().includes("first\n"));
    ended.execution.detach();
    const from = { ...ended.execution.received };
    await expect.poll(() => commandOf(ended.operationId), { timeout: 10_000 }).toBe("");
    const late = attach(
      {
        operationId: ended.operationId,
        from,
        startedAt,
        timeoutAt: Date.now() - 1,
        silentSince: Date.now(),
        reattach: LONG,
      },
      targetFor(host),
    );
    const settled = await late.result;
    expect(settled.outcome).toMatchObject({ kind: "exited", exitCode: 4 });
    expect(settled.stdout.toString()).toBe("second\n");
    await releaseAndExpectGone(late.execution, ended.operationId);

    // Still running when the taker comes after its timeout: killed, and the outcome says timeout.
    const child = uniqueSleep();
    const running = start({ command: `echo up; sleep ${child}`, killGraceSeconds: 1 }, targetFor(host));
    await running.until("up", () => running.stdout().includes("up\n"));
    running.execution.detach();
    const taker = attach(
      {
        operationId: running.operationId,
        from: { ...running.execution.received },
        startedAt,
        timeoutAt: Date.now() - 1,
        silentSince: Date.now(),
        reattach: LONG,
        killGraceSeconds: 1,
      },
      targetFor(host),
    );
    expect((await taker.result).outcome).toMatchObject({ kind: "timeout" });
    await expect.poll(() => pgrep(`sleep ${child}`), { timeout: 10_000 }).toBe("");
    await releaseAndExpectGone(taker.execution, running.operationId);
  });

  it("release() lets the host remove the directory; until then it stays after the run", async () => {
    const run = start({ command: "echo done" }, targetFor(host));
    const { outcome, stdout } = await run.result;
    expect(outcome).toMatchObject({ kind: "exited", exitCode: 0 });
    expect(stdout.toString()).toBe("done\n");
    const dir = hostDirs(run.operationId).trim();
    expect(dir).not.toBe(""); // kept for an attach that may still come, until released (or the keep passes)
    expect(existsSync(`${dir}/exit`)).toBe(true);
    const releasedAt = performance.now();
    await releaseAndExpectGone(run.execution, run.operationId);
    expect(performance.now() - releasedAt).toBeLessThan(4_000); // 1 s to be sent, about 1 s for the keeper
  });

  it("attachRemote to an operation the host never saw ends lost: the host has no record of it", async () => {
    const now = Date.now();
    const run = attach(
      {
        operationId: randomUUID(),
        from: { stdout: 0, stderr: 0 },
        startedAt: now,
        timeoutAt: now + 30_000,
        silentSince: now,
        reattach: LONG,
      },
      targetFor(host),
    );
    const { outcome, stdout, stderr } = await run.result;
    expect(lostReason(outcome)).toMatch(/has no record of it/);
    expect(stdout.length + stderr.length).toBe(0);
    expect(hostDirs(run.operationId)).toBe("");
  });
});
