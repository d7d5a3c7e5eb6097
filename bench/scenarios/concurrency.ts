import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { text } from "node:stream/consumers";
import type { TestHost } from "@reoclo/testbed/sshd";
import { agent, execToFinal, serverStats } from "../http";
import { ms, note, percentile, summarise, type Figure, type Row, type Scenario } from "../lib";
import { opensshArgs, startTestBed, type Service } from "../testbed";

// Many operations submitted at once across 10 sshd hosts, each `sleep 0.5; echo done`:
//  - ours: every one POSTed to /exec at the same moment by one client process (one HTTP
//    connection per request, all in flight together; an answer still `running` after the sync
//    window would be polled with GET /operations/{id}). The service's SSH pool does the rest:
//    at most 8 channels per connection and 4 connections per host, so 32 run per host at a time
//    and the others wait in its FIFO queue.
//  - the reference: the same work as that many OpenSSH `ssh host 'sleep 0.5; echo done'`
//    processes, at most 50 at a time, started by a small process of its own
//    (bench/servers/ssh-fanout.ts, like `xargs -P 50`).
// Figures per run: wall time (submission to the last answer); p99 of each operation's completion
// time counted from the moment all were submitted (for both, since all were submitted at once);
// peak RSS (ours: the service process, VmHWM reset before the run; the reference: the summed RSS
// of the ssh processes alive at once, sampled every 20 ms; RSS counts the pages each shares with the
// others, libcrypto and the like, once per process); failures (anything but exit code 0
// with "done" as stdout). The table shows the median over runs with min and max.
//
// The full run submits 1,000 operations; --quick 100. The service runs on PostgreSQL and, in a
// second test bed, on the embedded PGlite; the reference is measured once. Our runs follow one
// another after a discarded full-size warm-up that opens the pool's connections (its wall time is
// printed: a burst on a cold pool); the reference gets a short discarded warm-up.

const NAME = "concurrency";
const HOSTS = 10;
const COMMAND = "sleep 0.5; echo done";
const PARALLEL_SSH = 50;

interface RunResult {
  seconds: number;
  /** CPU seconds used meanwhile by the service process (ours only) and by the whole machine. */
  serviceCpu?: number;
  /** The longest the service's event loop was blocked during the run (ours only), in ms. */
  eventLoopMaxMs?: number;
  machineCpu: number;
  /** Completion time of each operation since submission, in seconds. */
  completions: number[];
  peakRssMiB: number;
  failures: string[];
}

/** CPU seconds the whole machine has spent busy (not idle or waiting on I/O), from /proc/stat. */
function machineCpuSeconds(): number {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return (fields.reduce((a, b) => a + b, 0) - idle) / 100; // USER_HZ is 100 on Linux
}

/** Resident memory of a process in MiB from /proc (VmHWM: the peak, or VmRSS: now); 0 once it is gone. */
function procMemMiB(pid: number, field: "VmHWM" | "VmRSS"): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return Number(m?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/**
 * Peak RSS of one process over a stretch of time: resets its high-water mark (clear_refs 5, Linux
 * ≥ 4.0) and reads VmHWM at the end; where the reset is refused, samples VmRSS every 50 ms instead.
 */
function peakRssOf(pid: number): () => number {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return () => procMemMiB(pid, "VmHWM");
  } catch {
    let peak = procMemMiB(pid, "VmRSS");
    const timer = setInterval(() => (peak = Math.max(peak, procMemMiB(pid, "VmRSS"))), 50);
    return () => {
      clearInterval(timer);
      return Math.max(peak, procMemMiB(pid, "VmRSS"));
    };
  }
}

async function oursRun(svc: Service, ops: number): Promise<RunResult> {
  const ag = agent(); // no socket limit: one connection per request in flight
  const failures: string[] = [];
  const completions: number[] = [];
  const cpuBefore = { service: (await serverStats(svc)).cpuSeconds, machine: machineCpuSeconds() };
  const peak = peakRssOf(svc.pid);
  const t = process.hrtime.bigint();
  try {
    await Promise.all(
      Array.from({ length: ops }, async (_, i) => {
        try {
          const final = await execToFinal(svc, ag, svc.serverIds[i % HOSTS] ?? "", COMMAND);
          if (final.status !== "completed" || final.exit_code !== 0 || final.stdout !== "done\n") {
            failures.push(
              `${final.operationId}: ${String(final.status)}, exit ${String(final.exit_code)}, stderr ${JSON.stringify(final.stderr)}`,
            );
          }
        } catch (err) {
          failures.push(String(err));
        } finally {
          completions.push(ms(t) / 1000);
        }
      }),
    );
  } finally {
    ag.destroy();
  }
  const seconds = ms(t) / 1000;
  const peakRssMiB = peak();
  const machineCpu = machineCpuSeconds() - cpuBefore.machine;
  const after = await serverStats(svc);
  const serviceCpu = after.cpuSeconds - cpuBefore.service;
  return {
    seconds,
    completions,
    peakRssMiB,
    failures,
    machineCpu,
    serviceCpu,
    eventLoopMaxMs: after.eventLoopMaxMs,
  };
}

/** The same work as `ops` OpenSSH processes, at most PARALLEL_SSH at a time, round robin over the hosts. */
const FANOUT = new URL("../servers/ssh-fanout.ts", import.meta.url).pathname;
const REPO = new URL("../../", import.meta.url).pathname;

/**
 * The same work as `ops` OpenSSH processes, at most PARALLEL_SSH at a time, round robin over the
 * hosts, run by bench/servers/ssh-fanout.ts in a process of its own (its start-up is not timed).
 */
async function opensshRun(hosts: TestHost[], keyFiles: string[], ops: number): Promise<RunResult> {
  const jobs = Array.from({ length: ops }, (_, i) =>
    opensshArgs(hosts[i % hosts.length] as TestHost, keyFiles[i % hosts.length] ?? "", COMMAND),
  );
  const child = spawn(process.execPath, ["--import", "tsx", FANOUT], {
    cwd: REPO,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const [out, code] = await Promise.all([
    text(child.stdout),
    new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", resolve);
    }),
    new Promise<void>((resolve, reject) =>
      child.stdin.end(
        JSON.stringify({ parallel: PARALLEL_SSH, expect: "done\n", jobs }),
        (err?: Error | null) => (err ? reject(err) : resolve()),
      ),
    ),
  ]);
  if (code !== 0) throw new Error(`ssh-fanout exited with ${code}: ${out.slice(-500)}`);
  return JSON.parse(out) as RunResult;
}

function describe(who: string, r: RunResult, ops: number): string {
  // Failures grouped by what they say, ids left out, so a burst of one kind reads as one line.
  const kinds = new Map<string, number>();
  for (const text of r.failures) {
    const kind = text.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "<id>").replace(/:\d{2,5}\b/g, ":<port>");
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  const f = [...kinds].map(([kind, n]) => `; ${n} × ${kind}`).join("");
  const at = (p: number) => percentile(r.completions, p).toFixed(2);
  const cores = os.cpus().length;
  const service = r.serviceCpu === undefined ? "" : `service process ${r.serviceCpu.toFixed(1)} s, `;
  const loop =
    r.eventLoopMaxMs === undefined ? "" : `, service event loop blocked ≤ ${r.eventLoopMaxMs.toFixed(0)} ms`;
  return (
    `${who}: ${ops} in ${r.seconds.toFixed(2)} s, completions p10 ${at(0.1)} p50 ${at(0.5)} p99 ${at(0.99)} s, ` +
    `peak RSS ${r.peakRssMiB.toFixed(0)} MiB, CPU: ${service}machine ${r.machineCpu.toFixed(1)} s ` +
    `(${((100 * r.machineCpu) / (r.seconds * cores)).toFixed(0)}% of ${cores} cores)${loop}, ${r.failures.length} failed${f}`
  );
}

interface Figures {
  wall: Figure;
  p99: Figure;
  rss: Figure;
  failures: Figure;
}

function figures(runs: RunResult[]): Figures {
  return {
    wall: summarise(
      runs.map((r) => r.seconds),
      "s",
    ),
    p99: summarise(
      runs.map((r) => percentile(r.completions, 0.99)),
      "s",
    ),
    rss: summarise(
      runs.map((r) => r.peakRssMiB),
      "MiB",
    ),
    failures: summarise(
      runs.map((r) => r.failures.length),
      "failed",
    ),
  };
}

async function oursRuns(svc: Service, ops: number, runs: number): Promise<Figures> {
  const results: RunResult[] = [];
  for (let run = 0; run <= runs; run++) {
    const r = await oursRun(svc, ops);
    note(NAME, describe(`${svc.driver}${run === 0 ? " warm-up (cold pool), discarded" : ""}`, r, ops));
    if (run === 0) {
      const pool = (await serverStats(svc)).pool;
      note(NAME, `${svc.driver}: the pool holds ${pool.connections} connections to ${HOSTS} hosts`);
      continue;
    }
    results.push(r);
  }
  return figures(results);
}

async function referenceRuns(hosts: TestHost[], keyFiles: string[], ops: number, runs: number) {
  const results: RunResult[] = [];
  const warm = await opensshRun(hosts, keyFiles, 20);
  note(NAME, describe("OpenSSH warm-up, discarded", warm, 20));
  for (let run = 1; run <= runs; run++) {
    const r = await opensshRun(hosts, keyFiles, ops);
    note(NAME, describe(`OpenSSH, ${PARALLEL_SSH} at a time`, r, ops));
    results.push(r);
  }
  return figures(results);
}

function rows(ops: number, driver: string, ours: Figures, ref: Figures): Row[] {
  const what = `${ops} × ${COMMAND} submitted at once, ${HOSTS} hosts, ${driver}`;
  const refName = `${ops} × OpenSSH ssh, ${PARALLEL_SSH} at a time`;
  return [
    {
      scenario: `${what}: wall time`,
      ours: ours.wall,
      reference: ref.wall,
      referenceName: refName,
      higherIsBetter: false,
    },
    {
      scenario: `${what}: p99 completion since submission`,
      ours: ours.p99,
      reference: ref.p99,
      referenceName: refName,
      higherIsBetter: false,
    },
    {
      scenario: `${what}: peak RSS`,
      ours: ours.rss,
      reference: ref.rss,
      referenceName: `${refName}, summed RSS of the ssh processes`,
      higherIsBetter: false,
    },
    {
      scenario: `${what}: failures (must be 0)`,
      ours: ours.failures,
      reference: ref.failures,
      referenceName: refName,
      higherIsBetter: false,
    },
  ];
}

export const concurrency: Scenario = {
  name: NAME,
  async run({ quick }) {
    const ops = quick ? 100 : 1000;
    const runs = quick ? 1 : 3;
    const out: Row[] = [];
    let reference: Figures | undefined;
    for (const driver of ["postgres", "pglite"] as const) {
      const bed = await startTestBed({ name: NAME, hosts: HOSTS, outputCapBytes: 1024 * 1024, driver });
      try {
        const began = performance.now();
        const ours = await oursRuns(bed.service, ops, runs);
        reference ??= await referenceRuns(bed.hosts, bed.keyFiles, ops, runs);
        out.push(...rows(ops, driver, ours, reference));
        note(NAME, `${driver} done (${((performance.now() - began) / 1000).toFixed(1)} s)`);
      } finally {
        await bed.close();
      }
    }
    return out;
  },
};

// For bench/concurrency-loop.ts, which repeats our side of this scenario to count rare failures.
export { HOSTS, oursRun, describe as describeRun, type RunResult };
