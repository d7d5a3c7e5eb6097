import http from "node:http";
import { StringDecoder } from "node:string_decoder";
import { setTimeout as delay } from "node:timers/promises";
import { API_BASE_PATH } from "@reoclo/protocol";
import type { Client } from "ssh2";
import { closeSsh, connectSsh } from "../../service/src/ssh/connect";
import type { TestHost } from "../../service/test/fixtures/sshd";
import { summarise, type Row, type Scenario } from "../lib";
import { openssh, startTestBed, type Service } from "../testbed";

// POST /exec end to end (HTTP, access pipeline, operation rows, pooled SSH, the remote wrapper)
// next to what a caller could do without the service, all in one run on real sshd hosts:
//  1. latency of `true` on a warm pool vs a raw ssh2 exec on an open connection and a cold
//     OpenSSH `ssh host true`;
//  2. throughput of 1 GiB of output streamed as SSE vs the same command on a raw ssh2 channel;
//  3. wall time of 100 concurrent operations over 4 hosts vs 100 OpenSSH processes, 50 at a time.
// The service runs in its own process (bench/testbed.ts) on a fresh PostgreSQL database with a
// 1 MiB output cap, so storing output is not what the SSE figure measures.

const HOSTS = 4;
const OUTPUT_CAP_BYTES = 1024 * 1024;
const MiB = 1024 * 1024;

interface Json {
  status: number;
  body: Record<string, unknown>;
}

const agent = () => new http.Agent({ keepAlive: true });

/** One HTTP request on a keep-alive agent; resolves once the whole JSON answer is read. */
function call(
  svc: Service,
  ag: http.Agent,
  method: "GET" | "POST",
  route: string,
  body?: unknown,
): Promise<Json> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<Json>((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: svc.port,
        method,
        path: `${API_BASE_PATH}${route}`,
        agent: ag,
        headers: {
          authorization: `Bearer ${svc.key}`,
          ...(payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
          } catch {
            reject(new Error(`${method} ${route}: ${res.statusCode} with a body that is not JSON: ${text}`));
          }
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const postExec = (svc: Service, ag: http.Agent, serverId: string, command: string, timeout = 60) =>
  call(svc, ag, "POST", "/exec", { server_id: serverId, command, timeout_seconds: timeout });

interface Final {
  operationId: string;
  status: unknown;
  exit_code?: unknown;
  stdout?: unknown;
  stderr?: unknown;
  duration_ms?: unknown;
  /** True when the POST answered `running` (the sync window ran out) and GET had to be polled. */
  polled: boolean;
}

/** POST /exec, then, if the answer is still `running`, poll GET /operations/{id} until final. */
async function execToFinal(svc: Service, ag: http.Agent, serverId: string, command: string): Promise<Final> {
  const res = await postExec(svc, ag, serverId, command);
  if (res.status !== 200) throw new Error(`POST /exec answered ${res.status} ${JSON.stringify(res.body)}`);
  const operationId = String(res.body.operation_id);
  if (res.body.status !== "running")
    return { ...res.body, operationId, status: res.body.status, polled: false };
  const deadline = Date.now() + 120_000;
  for (;;) {
    await delay(100);
    const got = await call(svc, ag, "GET", `/operations/${operationId}`);
    if (got.body.status !== "running") {
      const result = got.body.result as Record<string, unknown> | undefined;
      return { ...result, operationId, status: got.body.status, polled: true };
    }
    if (Date.now() > deadline) throw new Error(`operation ${operationId} still running after 2 minutes`);
  }
}

/** Nearest-rank percentile. */
function percentile(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? 0;
}

const ms = (started: bigint) => Number(process.hrtime.bigint() - started) / 1e6;

/** Runs `command` on an open ssh2 connection; resolves with its exit code and stdout byte count. */
function rawExec(client: Client, command: string): Promise<{ code: number | null; bytes: number }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, ch) => {
      if (err) return reject(err);
      let bytes = 0;
      let code: number | null = null;
      ch.on("data", (b: Buffer) => (bytes += b.length));
      ch.stderr.resume();
      ch.once("exit", (c: number | null) => (code = c));
      ch.once("close", () => resolve({ code, bytes }));
    });
  });
}

// ---- 1. latency of `true` ------------------------------------------------------------------

async function latency(
  svc: Service,
  host: TestHost,
  keyFile: string,
  raw: Client,
  quick: boolean,
): Promise<Row[]> {
  const rounds = quick ? 2 : 3;
  const n = quick ? 30 : 200;
  const coldN = quick ? 3 : 10;
  const ag = agent();
  const ours = { p50: [] as number[], p99: [] as number[] };
  const ref = { p50: [] as number[], p99: [] as number[] };
  const cold: number[] = [];
  const slow: string[] = [];
  // Not thrown: the latency a caller saw is kept in the samples, and the count is in the row's name.
  const failed: string[] = [];
  try {
    // Round 0 is a shorter warm-up (JIT, the pool's connection, page cache), discarded.
    for (let round = 0; round <= rounds; round++) {
      const count = round === 0 ? 20 : n;
      const o: number[] = [];
      for (let i = 0; i < count; i++) {
        const t = process.hrtime.bigint();
        const final = await execToFinal(svc, ag, svc.serverIds[0] ?? "", "true");
        o.push(ms(t));
        if (final.status !== "completed" || final.exit_code !== 0) {
          failed.push(
            `${final.operationId} ended ${String(final.status)} after ${(o.at(-1) ?? 0).toFixed(0)} ms`,
          );
        } else if (final.polled) {
          slow.push(
            `${final.operationId} took ${(o.at(-1) ?? 0).toFixed(0)} ms (host-side ${String(final.duration_ms)} ms)`,
          );
        }
      }
      const r: number[] = [];
      for (let i = 0; i < count; i++) {
        const t = process.hrtime.bigint();
        const { code } = await rawExec(raw, "true");
        r.push(ms(t));
        if (code !== 0) throw new Error(`raw ssh2 exec of true exited with ${code}`);
      }
      const c: number[] = [];
      for (let i = 0; i < (round === 0 ? 1 : coldN); i++) {
        const t = process.hrtime.bigint();
        await openssh(host, keyFile, "true");
        c.push(ms(t));
      }
      if (round === 0) continue;
      ours.p50.push(percentile(o, 0.5));
      ours.p99.push(percentile(o, 0.99));
      ref.p50.push(percentile(r, 0.5));
      ref.p99.push(percentile(r, 0.99));
      cold.push(percentile(c, 0.5));
    }
  } finally {
    ag.destroy();
  }
  if (failed.length > 0) {
    process.stderr.write(
      `bench: exec: note: ${failed.length} /exec of true did not complete: ${failed.join("; ")}\n`,
    );
  }
  if (slow.length > 0) {
    process.stderr.write(
      `bench: exec: note: ${slow.length} /exec of true outlasted the sync window: ${slow.join("; ")}\n`,
    );
  }
  const lost = failed.length > 0 ? `, ${failed.length} failed` : "";
  const p50 = summarise(ours.p50, "ms");
  return [
    {
      scenario: `/exec of true, p50 (warm pool${lost})`,
      ours: p50,
      reference: summarise(ref.p50, "ms"),
      referenceName: "raw ssh2 exec, warm",
      higherIsBetter: false,
    },
    {
      scenario: `/exec of true, p99 (warm pool${lost})`,
      ours: summarise(ours.p99, "ms"),
      reference: summarise(ref.p99, "ms"),
      referenceName: "raw ssh2 exec p99, warm",
      higherIsBetter: false,
    },
    {
      scenario: `/exec of true, p50 (warm pool${lost})`,
      ours: p50,
      reference: summarise(cold, "ms"),
      referenceName: "cold OpenSSH ssh host true",
      higherIsBetter: false,
    },
  ];
}

// ---- 2. output throughput through SSE --------------------------------------------------------

interface SseResult {
  /** Bytes of the decoded `output` data, per stream. */
  stdout: number;
  stderr: number;
  end: { exit_code?: number; stderr?: string };
}

/** POSTs /exec as SSE and counts the bytes of the decoded `output` data until `end`. */
function sseExec(svc: Service, serverId: string, command: string): Promise<SseResult> {
  const payload = JSON.stringify({ server_id: serverId, command, timeout_seconds: 600 });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: svc.port,
        method: "POST",
        path: `${API_BASE_PATH}/exec`,
        agent: false,
        headers: {
          authorization: `Bearer ${svc.key}`,
          accept: "text/event-stream",
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
        },
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`SSE /exec answered ${res.statusCode}`));
        }
        const decoder = new StringDecoder("utf8");
        let buf = "";
        const bytes = { stdout: 0, stderr: 0 };
        let end: SseResult["end"] | undefined;
        const parse = (text: string) => {
          buf += text;
          let from = 0;
          for (let idx = buf.indexOf("\n\n"); idx !== -1; idx = buf.indexOf("\n\n", from)) {
            const block = buf.slice(from, idx);
            from = idx + 2;
            let event = "message";
            let data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) event = line.slice(7);
              else if (line.startsWith("data: ")) data = line.slice(6);
            }
            if (event === "output") {
              const out = JSON.parse(data) as { stream: "stdout" | "stderr"; data: string };
              bytes[out.stream] += Buffer.byteLength(out.data, "utf8");
            } else if (event === "end") {
              end = JSON.parse(data) as SseResult["end"];
              res.destroy();
              return resolve({ ...bytes, end });
            }
          }
          buf = buf.slice(from);
        };
        res.on("data", (chunk: Buffer) => parse(decoder.write(chunk)));
        res.on("error", reject);
        res.on(
          "close",
          () => end === undefined && reject(new Error(`SSE ended without "end" after ${bytes.stdout} bytes`)),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

interface ServerStats {
  rssMiB: number;
  maxRssMiB: number;
  /** CPU time of the service process so far, user + system, in seconds. */
  cpuSeconds: number;
}

async function serverStats(svc: Service): Promise<ServerStats> {
  const res = await fetch(`http://127.0.0.1:${svc.statsPort}/`);
  return (await res.json()) as ServerStats;
}

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function sseThroughput(svc: Service, raw: Client, quick: boolean): Promise<Row> {
  const size = quick ? 256 * MiB : 1024 * MiB;
  const warmSize = quick ? 32 * MiB : 128 * MiB;
  const runs = quick ? 1 : 3;
  const command = (bytes: number) => `head -c ${bytes} /dev/zero | tr '\\0' x`;
  const ours: number[] = [];
  const ref: number[] = [];
  const cpu = { server: 0, client: 0, wall: 0, rawClient: 0, rawWall: 0 };
  for (let run = 0; run <= runs; run++) {
    const bytes = run === 0 ? warmSize : size; // a smaller warm-up, discarded
    const before = { server: (await serverStats(svc)).cpuSeconds, client: cpuSeconds() };
    let t = process.hrtime.bigint();
    const got = await sseExec(svc, svc.serverIds[0] ?? "", command(bytes));
    const oursMs = ms(t);
    if (run > 0) {
      cpu.server += (await serverStats(svc)).cpuSeconds - before.server;
      cpu.client += cpuSeconds() - before.client;
      cpu.wall += oursMs / 1000;
    }
    if (got.stdout !== bytes || got.end.exit_code !== 0) {
      const stderr = JSON.stringify(got.end.stderr?.slice(-200));
      throw new Error(
        `SSE delivered ${got.stdout} of ${bytes} bytes, exit code ${got.end.exit_code}, stderr ${stderr}`,
      );
    }
    if (got.stderr > 0) {
      const stderr = JSON.stringify(got.end.stderr?.slice(-200));
      process.stderr.write(
        `bench: exec: note: the SSE run also streamed ${got.stderr} bytes of stderr: ${stderr}\n`,
      );
    }
    const rawBefore = cpuSeconds();
    t = process.hrtime.bigint();
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
  process.stderr.write(
    `bench: exec: SSE CPU: service process ${use(cpu.server, cpu.wall)}, SSE reader ${use(cpu.client, cpu.wall)}; ` +
      `raw ssh2 reader ${use(cpu.rawClient, cpu.rawWall)}; ` +
      `service rss ${stats.rssMiB.toFixed(0)} MiB, peak ${stats.maxRssMiB.toFixed(0)} MiB\n`,
  );
  return {
    scenario: `${size / MiB >= 1024 ? `${size / (1024 * MiB)} GiB` : `${size / MiB} MiB`} output through SSE`,
    ours: summarise(ours, "MB/s"),
    reference: summarise(ref, "MB/s"),
    referenceName: "raw ssh2 exec channel, read in Node",
    higherIsBetter: true,
  };
}

// ---- 3. 100 concurrent operations across 4 hosts -------------------------------------------

const SLEEP_COMMAND = "sleep 0.5; echo done";
const OPS = 100;

/** All POSTed at once; an answer still `running` is polled until final. Returns the failures. */
async function concurrentOps(svc: Service): Promise<{ seconds: number; failures: string[] }> {
  const ag = agent();
  const failures: string[] = [];
  const t = process.hrtime.bigint();
  try {
    await Promise.all(
      Array.from({ length: OPS }, async (_, i) => {
        const serverId = svc.serverIds[i % HOSTS] ?? "";
        try {
          const final = await execToFinal(svc, ag, serverId, SLEEP_COMMAND);
          if (final.status !== "completed" || final.stdout !== "done\n") failures.push(JSON.stringify(final));
        } catch (err) {
          failures.push(String(err));
        }
      }),
    );
  } finally {
    ag.destroy();
  }
  return { seconds: ms(t) / 1000, failures };
}

/** The same work as 100 OpenSSH processes, at most 50 at a time. */
async function concurrentOpenssh(hosts: TestHost[], keyFiles: string[]): Promise<number> {
  let next = 0;
  const t = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      for (let i = next++; i < OPS; i = next++) {
        const out = await openssh(hosts[i % HOSTS] as TestHost, keyFiles[i % HOSTS] ?? "", SLEEP_COMMAND);
        if (out !== "done\n") throw new Error(`ssh ${SLEEP_COMMAND} printed ${JSON.stringify(out)}`);
      }
    }),
  );
  return ms(t) / 1000;
}

async function concurrency(
  svc: Service,
  hosts: TestHost[],
  keyFiles: string[],
  quick: boolean,
): Promise<Row> {
  const runs = quick ? 1 : 3;
  const ours: number[] = [];
  const ref: number[] = [];
  let failed = 0;
  // Run 0 warms up the service (it also opens the pool's connections to hosts 1–3) and is
  // discarded. The OpenSSH reference keeps no state between runs, and its binaries were already
  // exercised by the cold `ssh host true` runs; at ~20 s a run on 2 cores it gets no warm-up.
  for (let run = 0; run <= runs; run++) {
    const o = await concurrentOps(svc);
    failed += o.failures.length;
    process.stderr.write(
      `bench: exec: ${run === 0 ? "warm-up: " : ""}${OPS} operations in ${o.seconds.toFixed(2)} s, ${o.failures.length} failed\n`,
    );
    if (o.failures.length > 0) {
      throw new Error(
        `${o.failures.length} of ${OPS} operations failed, e.g. ${o.failures.slice(0, 3).join("; ")}`,
      );
    }
    if (run === 0) continue;
    ours.push(o.seconds);
    ref.push(await concurrentOpenssh(hosts, keyFiles));
  }
  return {
    scenario: `${OPS} concurrent operations across ${HOSTS} hosts (${failed} failed)`,
    ours: summarise(ours, "s"),
    reference: summarise(ref, "s"),
    referenceName: `${OPS} × OpenSSH ssh, 50 at a time`,
    higherIsBetter: false,
  };
}

export const exec: Scenario = {
  name: "exec",
  async run({ quick }) {
    const bed = await startTestBed({ name: "exec", hosts: HOSTS, outputCapBytes: OUTPUT_CAP_BYTES });
    try {
      const { hosts, keyFiles, service: svc } = bed;
      const host0 = hosts[0] as TestHost;
      const raw = await connectSsh(host0);
      bed.defer(() => closeSsh(raw));

      const began = performance.now();
      const note = (what: string) =>
        process.stderr.write(`bench: exec: ${what} (${((performance.now() - began) / 1000).toFixed(1)} s)\n`);
      note("latency of true…");
      const rows = await latency(svc, host0, keyFiles[0] ?? "", raw, quick);
      note("output through SSE…");
      rows.push(await sseThroughput(svc, raw, quick));
      note("concurrent operations…");
      rows.push(await concurrency(svc, hosts, keyFiles, quick));
      note("done");
      return rows;
    } finally {
      // In reverse: the ssh2 connection, then the test bed (service, database, key files, hosts).
      await bed.close();
    }
  },
};
