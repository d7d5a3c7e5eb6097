import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { closeSync, constants, openSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import type { Client } from "ssh2";
import type { TestHost } from "@reoclo/testbed/sshd";
import { closeSsh, connectSsh } from "../../service/src/ssh/connect";
import { sseExec } from "../http";
import { note, percentile, summarise, type Row, type Scenario } from "../lib";
import { rawExec, startTestBed, type Service } from "../testbed";

// Time from a command's first print to the client receiving it: through the service as SSE
// (`POST /exec` with `Accept: text/event-stream`), next to the same command on a raw ssh2
// channel read in Node, alternating, in one run.
//
// The command, `read -r x < FIFO; echo printed`, prints nothing until it is released. The bench
// waits until it is blocked on the FIFO (an O_NONBLOCK open for writing fails with ENXIO until
// a reader is there), notes the moment, and writes the line that wakes it; `read` and `echo`
// are shell built-ins, so the print follows the release by microseconds, with no process start
// in between. The figure is release → the client parsing the output (for SSE, the decoded
// `output` event). The hosts are on this machine, so both ends share one clock. Two cases:
//  - at start: released as soon as the command waits (about 12 ms after the channel opened, the
//    wrapper's start-up), as a command that prints at once would;
//  - after quiet: released 50 ms after that, as any print after a silence (the first line of a
//    build step): the stream is idle, so this is the full cost of the service's 20 ms batching.
// Round 0 is a shorter warm-up, discarded; every round gives a p50 and a p99 per path and case.

const NAME = "first-output";
const execFileAsync = promisify(execFile);

type Case = "start" | "quiet";
const QUIET_MS = 50;

/**
 * Waits until a reader is blocked opening `fifo` (opening it for writing then lets the reader's
 * open return, and it blocks in read), waits `quietMs` more, then writes the line that releases
 * it. Resolves with the moment just before that write and the still open write end: the command
 * keeps running until it is closed (an exiting command would flush the SSE batch with its end).
 */
async function release(
  fifo: string,
  quietMs: number,
  gaveUp: () => boolean,
): Promise<{ at: bigint; fd: number }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    let fd: number;
    try {
      fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENXIO") throw err;
      if (gaveUp())
        throw new Error(`the command reading ${fifo} ended before it was released`, { cause: err });
      if (Date.now() > deadline) {
        throw new Error(`nothing opened ${fifo} for reading within 15 s`, { cause: err });
      }
      await delay(1);
      continue;
    }
    try {
      if (quietMs > 0) await delay(quietMs);
      const at = process.hrtime.bigint();
      writeSync(fd, "go\n");
      return { at, fd };
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }
}

/** Prints `printed` once released, then runs until the FIFO's write end closes; exits 0 only if it printed. */
const commandFor = (fifo: string) => `{ read -r x && echo printed && { read -r x; true; }; } < '${fifo}'`;

/**
 * One sample: `run` starts the command on one path and calls `printed` when the client has the
 * line; resolves with release → receipt in ms. `run` resolves with a failure, or undefined.
 */
async function sample(
  fifo: string,
  quietMs: number,
  run: (printed: () => void) => Promise<string | undefined>,
): Promise<number> {
  let received: bigint | undefined;
  let seen!: () => void;
  const seenOrEnded = new Promise<void>((resolve) => (seen = resolve));
  let ended = false;
  const done = run(() => {
    received ??= process.hrtime.bigint();
    seen();
  }).finally(() => {
    ended = true;
    seen();
  });
  let released: { at: bigint; fd: number } | undefined;
  try {
    released = await release(fifo, quietMs, () => ended);
    await Promise.race([seenOrEnded, delay(15_000, undefined, { ref: false })]);
  } catch (err) {
    done.catch(() => undefined); // it may never end if it never got to open the FIFO
    throw err;
  } finally {
    if (released) closeSync(released.fd);
  }
  const failure = await done;
  if (failure !== undefined) throw new Error(failure);
  if (received === undefined) throw new Error(`the client never received "printed"`);
  return Number(received - released.at) / 1e6;
}

const viaSse = (svc: Service, fifo: string, quietMs: number) =>
  sample(fifo, quietMs, async (printed) => {
    const res = await sseExec(svc, svc.serverIds[0] ?? "", commandFor(fifo), (stream, data) => {
      if (stream === "stdout" && data.includes("printed")) printed();
    });
    if (res.end.exit_code === 0) return undefined;
    return `SSE: exit code ${res.end.exit_code}, stderr ${JSON.stringify(res.end.stderr)}`;
  });

const viaRaw = (raw: Client, fifo: string, quietMs: number) =>
  sample(fifo, quietMs, async (printed) => {
    const res = await rawExec(raw, commandFor(fifo), {
      onData: (b) => {
        if (b.includes("printed")) printed();
      },
    });
    return res.code === 0 ? undefined : `raw ssh2: exit code ${res.code}`;
  });

interface Samples {
  p50: number[];
  p99: number[];
}

async function measure(svc: Service, raw: Client, quick: boolean): Promise<Row[]> {
  const rounds = quick ? 2 : 5;
  const n = quick ? 6 : 20;
  const cases: Record<Case, number> = { start: 0, quiet: QUIET_MS };
  const fresh = () => ({ start: { p50: [], p99: [] }, quiet: { p50: [], p99: [] } });
  const ours: Record<Case, Samples> = fresh();
  const ref: Record<Case, Samples> = fresh();
  // The host's user (another account when this runs as root) opens the FIFOs, so 0755 / 0666.
  const dir = await mkdtemp(path.join(os.tmpdir(), "reoclo-bench-fifo-"));
  try {
    await chmod(dir, 0o755);
    for (let round = 0; round <= rounds; round++) {
      const count = round === 0 ? 4 : n;
      let made = 0;
      const fifos = Array.from({ length: 4 * count }, (_, i) => path.join(dir, `r${round}-${i}`));
      await execFileAsync("mkfifo", ["-m", "0666", ...fifos]);
      const fifo = () => fifos[made++] ?? "";
      const o = { start: [] as number[], quiet: [] as number[] };
      const r = { start: [] as number[], quiet: [] as number[] };
      for (let i = 0; i < count; i++) {
        for (const c of ["start", "quiet"] as const) {
          // Alternate which path goes first.
          if (i % 2 === 0) {
            o[c].push(await viaSse(svc, fifo(), cases[c]));
            r[c].push(await viaRaw(raw, fifo(), cases[c]));
          } else {
            r[c].push(await viaRaw(raw, fifo(), cases[c]));
            o[c].push(await viaSse(svc, fifo(), cases[c]));
          }
        }
      }
      await Promise.all(fifos.map((f) => rm(f, { force: true })));
      if (round === 0) continue;
      for (const c of ["start", "quiet"] as const) {
        ours[c].p50.push(percentile(o[c], 0.5));
        ours[c].p99.push(percentile(o[c], 0.99));
        ref[c].p50.push(percentile(r[c], 0.5));
        ref[c].p99.push(percentile(r[c], 0.99));
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const what: Record<Case, string> = {
    start: "printed as the command starts",
    quiet: `printed after ${QUIET_MS} ms of quiet`,
  };
  return (["start", "quiet"] as const).flatMap((c) =>
    (["p50", "p99"] as const).map((p): Row => ({
      scenario: `first print → SSE client receives it, ${what[c]}, ${p}`,
      ours: summarise(ours[c][p], "ms"),
      reference: summarise(ref[c][p], "ms"),
      referenceName: `raw ssh2 channel read in Node, ${p}`,
      higherIsBetter: false,
    })),
  );
}

export const firstOutput: Scenario = {
  name: NAME,
  async run({ quick }) {
    const bed = await startTestBed({ name: NAME, hosts: 1, outputCapBytes: 1024 * 1024 });
    try {
      const raw = await connectSsh(bed.hosts[0] as TestHost);
      bed.defer(() => closeSsh(raw));
      const began = performance.now();
      const rows = await measure(bed.service, raw, quick);
      note(NAME, `done (${((performance.now() - began) / 1000).toFixed(1)} s)`);
      return rows;
    } finally {
      await bed.close();
    }
  },
};
