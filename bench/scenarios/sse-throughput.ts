import type { Client } from "ssh2";
import type { TestHost } from "@reoclo/testbed/sshd";
import { closeSsh, connectSsh } from "../../service/src/ssh/connect";
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

const NAME = "sse";
const MiB = 1024 * 1024;

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

async function measure(svc: Service, raw: Client, quick: boolean): Promise<Row> {
  const size = quick ? 256 * MiB : 1024 * MiB;
  const warmSize = quick ? 32 * MiB : 128 * MiB;
  const runs = quick ? 1 : 5;
  const command = (bytes: number) => `head -c ${bytes} /dev/zero | tr '\\0' x`;
  const ours: number[] = [];
  const ref: number[] = [];
  const cpu = { server: 0, client: 0, wall: 0, rawClient: 0, rawWall: 0 };
  let cutOffs = 0;
  for (let run = 0; run <= runs; run++) {
    const bytes = run === 0 ? warmSize : size;
    const sse = await sseRun(svc, command(bytes));
    cutOffs += sse.cutOffs;
    const got = sse.got;
    const oursMs = sse.ms;
    if (run > 0) {
      cpu.server += sse.cpu.server;
      cpu.client += sse.cpu.client;
      cpu.wall += oursMs / 1000;
    }
    if (got.stdout !== bytes || got.end.exit_code !== 0) {
      const stderr = JSON.stringify(got.end.stderr?.slice(-200));
      throw new Error(
        `SSE delivered ${got.stdout} of ${bytes} bytes, exit code ${got.end.exit_code}, stderr ${stderr}`,
      );
    }
    if (got.stderr > 0) {
      note(
        NAME,
        `the SSE run also streamed ${got.stderr} bytes of stderr: ${JSON.stringify(got.end.stderr?.slice(-200))}`,
      );
    }
    const rawBefore = cpuSeconds();
    const t = process.hrtime.bigint();
    const r = await rawExec(raw, command(bytes));
    const refMs = ms(t);
    if (run > 0) {
      cpu.rawClient += cpuSeconds() - rawBefore;
      cpu.rawWall += refMs / 1000;
    }
    if (r.bytes !== bytes || r.code !== 0) throw new Error(`raw ssh2 delivered ${r.bytes} of ${bytes} bytes`);
    if (run === 0) continue;
    ours.push(bytes / 1e6 / (oursMs / 1000));
    ref.push(bytes / 1e6 / (refMs / 1000));
  }
  const stats = await serverStats(svc);
  // CPU seconds per GiB delivered, and the share of one core while streaming.
  const gib = (runs * size) / (1024 * MiB);
  const use = (s: number, wall: number) =>
    `${(s / gib).toFixed(1)} s/GiB (${((100 * s) / wall).toFixed(0)}% of a core)`;
  note(
    NAME,
    `CPU: service process ${use(cpu.server, cpu.wall)}, SSE reader ${use(cpu.client, cpu.wall)}; ` +
      `raw ssh2 reader ${use(cpu.rawClient, cpu.rawWall)}; ` +
      `service rss ${stats.rssMiB.toFixed(0)} MiB, peak ${stats.maxRssMiB.toFixed(0)} MiB`,
  );
  return {
    scenario:
      `${size >= 1024 * MiB ? `${size / (1024 * MiB)} GiB` : `${size / MiB} MiB`} of output through SSE` +
      (cutOffs > 0 ? ` (reader cut off ${cutOffs}× as too slow, those runs repeated)` : ""),
    ours: summarise(ours, "MB/s"),
    reference: summarise(ref, "MB/s"),
    referenceName: "raw ssh2 channel read in Node",
    higherIsBetter: true,
  };
}

export const sseThroughput: Scenario = {
  name: NAME,
  async run({ quick }) {
    const bed = await startTestBed({ name: NAME, hosts: 1, outputCapBytes: MiB });
    try {
      const raw = await connectSsh(bed.hosts[0] as TestHost);
      bed.defer(() => closeSsh(raw));
      return [await measure(bed.service, raw, quick)];
    } finally {
      await bed.close();
    }
  },
};
