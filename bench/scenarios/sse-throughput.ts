import { randomUUID } from "node:crypto";
import type { Client } from "ssh2";
import { testConfig } from "@reoclo/service/testing";
import type { TestHost } from "@reoclo/testbed/sshd";
import { closeSsh, connectSsh } from "../../service/src/ssh/connect";
import { hostKeepSeconds } from "../../service/src/ssh/remote-exec";
import { EXEC_REQUEST, encodeHeader, encodeRelease } from "../../service/src/ssh/wrapper";
import { serverStats, SseCutOff, sseExec, waitForOperation, type SseResult } from "../http";
import { ms, note, summarise, type Row, type Scenario } from "../lib";
import { rawExec, startTestBed, type Service } from "../testbed";

// Throughput of 1 GiB of command output (`head -c N /dev/zero | tr '\0' x`) streamed to a client
// as SSE by `POST /exec` with `Accept: text/event-stream`, decoded event by event, next to the
// same command on a raw ssh2 channel read in Node, alternating, in one run. The service has a
// 1 MiB output cap, so storing output is not what this measures (storage is the same on both
// drivers past the cap, so PostgreSQL only). Run 0 is a smaller warm-up, discarded.
//
// The service does not slow the command down for a slow SSE reader: a reader 16 MiB behind is cut
// off (to resume with Last-Event-ID). On this 2-core machine the reader shares the CPU with the
// service, sshd and the command, and at ~300 MB/s 16 MiB is ~50 ms of output, so a reader that is
// descheduled that long is cut off now and then. Such a run is repeated (at most 3 times) after the
// operation has ended, and the number of cut-offs is in the row's name.
//
// What reattach costs here (the default: the host passes each stream through `tee -p`, which
// also feeds a `head -c cap` copy in the operation's directory; past the cap of 1 MiB + 64 KiB
// the copy is full and tee only passes the output on): in the same runs, the same SSE transfer
// from a second service process with reattach off (REOCLO_REATTACH_BOUND_SECONDS=0: output
// straight to the channel), on its own database and host; and, for the host's part alone, the
// raw ssh2 exec of the service's wrapper as the service sends it (keep = hostKeepSeconds of the
// default bound, copy cap = output cap + 64 KiB) next to the same with keep 0, read in Node
// like the raw reference. Every run times all five paths, in reversed order every other run.

const NAME = "sse";
const MiB = 1024 * 1024;
const OUTPUT_CAP_BYTES = MiB;
/** The wrapper's keep as the service sends it with the default REOCLO_REATTACH_BOUND_SECONDS and a 5 s kill grace. */
const KEEP_SECONDS = hostKeepSeconds(testConfig().reattachBoundSeconds * 1000, 5);

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

interface SseRun {
  got: SseResult;
  ms: number;
  cutOffs: number;
  /** CPU seconds of the service process and of this (the reader's) process during the run. */
  cpu: { server: number; client: number };
}

/** One SSE run, repeated when the reader was cut off; figures are those of the run that completed. */
async function sseRun(svc: Service, command: string): Promise<SseRun> {
  for (let cutOffs = 0; ; cutOffs++) {
    const before = { server: (await serverStats(svc)).cpuSeconds, client: cpuSeconds() };
    const t = process.hrtime.bigint();
    try {
      const got = await sseExec(svc, svc.serverIds[0] ?? "", command);
      const elapsed = ms(t);
      const cpu = {
        server: (await serverStats(svc)).cpuSeconds - before.server,
        client: cpuSeconds() - before.client,
      };
      return { got, ms: elapsed, cutOffs, cpu };
    } catch (err) {
      if (!(err instanceof SseCutOff) || cutOffs >= 3) throw err;
      note(NAME, `${err.message} (${ms(t).toFixed(0)} ms in): cut off as a slow reader; repeating the run`);
      if (err.operationId) await waitForOperation(svc, err.operationId);
    }
  }
}

/** Checks one SSE run's delivery; throws when bytes are missing or the command failed. */
function checkSse(got: SseResult, bytes: number, which: string): void {
  if (got.stdout !== bytes || got.end.exit_code !== 0) {
    const stderr = JSON.stringify(got.end.stderr?.slice(-200));
    throw new Error(
      `SSE (${which}) delivered ${got.stdout} of ${bytes} bytes, exit code ${got.end.exit_code}, stderr ${stderr}`,
    );
  }
  if (got.stderr > 0) {
    note(
      NAME,
      `the SSE run (${which}) also streamed ${got.stderr} bytes of stderr: ${JSON.stringify(got.end.stderr?.slice(-200))}`,
    );
  }
}

/** The wrapper run directly on `raw` as the service would send `command`, with or without keep and copy. */
async function wrapperRun(
  raw: Client,
  command: string,
  keep: boolean,
): Promise<{ code: number | null; bytes: number }> {
  const operationId = randomUUID();
  const input = encodeHeader({
    operationId,
    command,
    env: {},
    timeoutSeconds: 600,
    graceSeconds: 5,
    keepSeconds: keep ? KEEP_SECONDS : 0,
    copyCapBytes: keep ? OUTPUT_CAP_BYTES + 64 * 1024 : undefined,
  });
  const r = await rawExec(raw, EXEC_REQUEST, { input });
  // The service would release it with its next request; here at once, so its keeper goes.
  if (keep) await rawExec(raw, EXEC_REQUEST, { input: encodeRelease([operationId]) });
  return r;
}

/** CPU and wall seconds summed over measured runs, for the notes. */
interface Cpu {
  server: number;
  client: number;
  wall: number;
}

async function measure(svc: Service, off: Service, raw: Client, quick: boolean): Promise<Row[]> {
  const size = quick ? 256 * MiB : 1024 * MiB;
  const warmSize = quick ? 32 * MiB : 128 * MiB;
  const runs = quick ? 1 : 5;
  const command = (bytes: number) => `head -c ${bytes} /dev/zero | tr '\\0' x`;
  const mbps = (bytes: number, elapsedMs: number) => bytes / 1e6 / (elapsedMs / 1000);
  const figures = {
    on: [] as number[],
    off: [] as number[],
    raw: [] as number[],
    wrapper: [] as number[],
    wrapperNoKeep: [] as number[],
  };
  const cpu: Record<"on" | "off", Cpu> = {
    on: { server: 0, client: 0, wall: 0 },
    off: { server: 0, client: 0, wall: 0 },
  };
  const rawCpu = { client: 0, wall: 0 };
  const cutOffs = { on: 0, off: 0 };
  for (let run = 0; run <= runs; run++) {
    const bytes = run === 0 ? warmSize : size;
    const steps: (() => Promise<void>)[] = (["on", "off"] as const).map((which) => async () => {
      const sse = await sseRun(which === "on" ? svc : off, command(bytes));
      cutOffs[which] += sse.cutOffs;
      checkSse(sse.got, bytes, `reattach ${which}`);
      if (run === 0) return;
      cpu[which].server += sse.cpu.server;
      cpu[which].client += sse.cpu.client;
      cpu[which].wall += sse.ms / 1000;
      figures[which].push(mbps(bytes, sse.ms));
    });
    steps.push(async () => {
      const rawBefore = cpuSeconds();
      const t = process.hrtime.bigint();
      const r = await rawExec(raw, command(bytes));
      const refMs = ms(t);
      if (r.bytes !== bytes || r.code !== 0)
        throw new Error(`raw ssh2 delivered ${r.bytes} of ${bytes} bytes`);
      if (run === 0) return;
      rawCpu.client += cpuSeconds() - rawBefore;
      rawCpu.wall += refMs / 1000;
      figures.raw.push(mbps(bytes, refMs));
    });
    for (const keep of [true, false]) {
      steps.push(async () => {
        const t = process.hrtime.bigint();
        const r = await wrapperRun(raw, command(bytes), keep);
        const elapsed = ms(t);
        if (r.bytes !== bytes || r.code !== 0)
          throw new Error(
            `the raw wrapper (keep ${keep}) delivered ${r.bytes} of ${bytes} bytes, exit ${r.code}`,
          );
        if (run > 0) figures[keep ? "wrapper" : "wrapperNoKeep"].push(mbps(bytes, elapsed));
      });
    }
    // Alternate the order from run to run, so drift on the machine hits every path alike.
    if (run % 2 === 1) steps.reverse();
    for (const step of steps) await step();
  }
  // CPU seconds per GiB delivered, and the share of one core while streaming.
  const gib = (runs * size) / (1024 * MiB);
  const use = (s: number, wall: number) =>
    `${(s / gib).toFixed(1)} s/GiB (${((100 * s) / wall).toFixed(0)}% of a core)`;
  for (const which of ["on", "off"] as const) {
    const stats = await serverStats(which === "on" ? svc : off);
    note(
      NAME,
      `CPU, reattach ${which}: service process ${use(cpu[which].server, cpu[which].wall)}, ` +
        `SSE reader ${use(cpu[which].client, cpu[which].wall)}; ` +
        `service rss ${stats.rssMiB.toFixed(0)} MiB, peak ${stats.maxRssMiB.toFixed(0)} MiB`,
    );
  }
  note(NAME, `CPU: raw ssh2 reader ${use(rawCpu.client, rawCpu.wall)}`);
  const what = `${size >= 1024 * MiB ? `${size / (1024 * MiB)} GiB` : `${size / MiB} MiB`} of output`;
  const cutOffTag = (n: number) => (n > 0 ? ` (reader cut off ${n}× as too slow, those runs repeated)` : "");
  return [
    {
      scenario: `${what} through SSE${cutOffTag(cutOffs.on)}`,
      ours: summarise(figures.on, "MB/s"),
      reference: summarise(figures.raw, "MB/s"),
      referenceName: "raw ssh2 channel read in Node",
      higherIsBetter: true,
    },
    {
      scenario: `${what} through SSE, reattach on (the default)${cutOffTag(cutOffs.on)}`,
      ours: summarise(figures.on, "MB/s"),
      reference: summarise(figures.off, "MB/s"),
      referenceName: `the same with reattach off (REOCLO_REATTACH_BOUND_SECONDS=0)${cutOffTag(cutOffs.off)}`,
      higherIsBetter: true,
    },
    {
      scenario: `${what}, raw ssh2 exec of the wrapper with keep ${KEEP_SECONDS} s and the output copy`,
      ours: summarise(figures.wrapper, "MB/s"),
      reference: summarise(figures.wrapperNoKeep, "MB/s"),
      referenceName: "the same with keep 0 (output straight to the channel)",
      higherIsBetter: true,
    },
  ];
}

export const sseThroughput: Scenario = {
  name: NAME,
  async run({ quick }) {
    const bed = await startTestBed({ name: NAME, hosts: 1, outputCapBytes: OUTPUT_CAP_BYTES });
    try {
      const raw = await connectSsh(bed.hosts[0] as TestHost);
      bed.defer(() => closeSsh(raw));
      // The same service with reattach off, on its own database and host.
      const off = await startTestBed({
        name: `${NAME} (reattach off)`,
        hosts: 1,
        outputCapBytes: OUTPUT_CAP_BYTES,
        reattachBoundSeconds: 0,
      });
      bed.defer(() => off.close());
      return await measure(bed.service, off.service, raw, quick);
    } finally {
      await bed.close();
    }
  },
};
