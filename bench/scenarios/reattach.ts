import { setTimeout as delay } from "node:timers/promises";
import type { TcpProxy } from "@reoclo/testbed/tcp-proxy";
import { sseExec } from "../http";
import { note, summarise, type Row, type Scenario } from "../lib";
import { startTestBed, type Service } from "../testbed";

// Time from a dropped connection between the service and the host to the SSE client receiving
// output again. The host is registered behind a TCP proxy; a command prints a numbered line every
// 20 ms for about 3 s, each with the host's clock (bash's $EPOCHREALTIME; the wrapper runs
// commands with bash), and is followed as SSE (`POST /exec` with `Accept: text/event-stream`).
// Once the client has line 50, the bench waits a random 0–20 ms (so the cut falls anywhere in the
// print cycle), notes the moment and cuts every proxied connection (the proxy's cut(): both sides
// destroyed, new connections still pass). The service notices, reconnects and sends an `attach`
// request that resumes from the byte offsets it has, the host replaying what its copy holds
// beyond them.
//
// The figure is the cut → the first `output` event carrying a line printed after the cut (by the
// host's clock, on this machine the same clock as ours): only the new connection can carry that.
// The first event after the cut with any line the client had not seen is often earlier and says
// nothing about the reattach: lines the service had before the cut and had not yet flushed (its
// 20 ms batching); that figure is in a note. The reference is the same moment in a run without a
// cut (runs with and without alternate): the moment → the first line printed after it, i.e. the
// wait for the next print plus the batching, so the row shows the gap the cut adds. Each run must
// end `completed`, exit code 0, every line exactly once and in order; a run that does not is in
// the notes and counted in the row's name. The service's own figure (`after_ms` of its
// "reattached" log line: drop noticed → attach request sent) is in a note. Run 0 is a warm-up
// with a cut, discarded.

const NAME = "reattach";
const LINES = 150;
const CUT_AFTER_LINE = 50;
const EVERY_MS = 20;
/** Prints `LINES` lines `<n> <host's epoch seconds, µs>`, one every ~20 ms (plus a `sleep` start). */
const COMMAND =
  `i=1; while [ "$i" -le ${LINES} ]; do echo "$i $EPOCHREALTIME"; sleep ${EVERY_MS / 1000}; ` +
  `i=$((i + 1)); done`;
const RUN_DEADLINE_MS = 60_000;

/** Wall-clock ms now, sub-millisecond, for comparing with the host's clock. */
const wallMs = () => performance.timeOrigin + performance.now();
const sinceMs = (t: bigint, now: bigint) => Number(now - t) / 1e6;

/** Sorted numbers as ranges: 1–51, 60. */
function ranges(ns: number[]): string {
  const out: string[] = [];
  for (const n of [...ns].sort((a, b) => a - b)) {
    const prev = out.at(-1)?.split("–");
    if (prev && Number(prev.at(-1)) === n - 1) out[out.length - 1] = `${prev[0]}–${n}`;
    else out.push(String(n));
  }
  return out.join(", ");
}

interface RunResult {
  /** The moment → the first event with a line printed after it (undefined: none came). */
  toPrintedAfterMs?: number;
  /** The moment → the first event with any line the client had not seen. */
  toAnyNewMs?: number;
  /** The operation's id and what went wrong, if anything. */
  operationId: string | undefined;
  problems: string[];
  /** Proxied connections open at the cut. */
  cutConnections: number;
}

/** One run of COMMAND as SSE; with `cut`, the proxy's connections are cut once line CUT_AFTER_LINE is in. */
async function oneRun(svc: Service, proxy: TcpProxy, cut: boolean): Promise<RunResult> {
  const counts = new Map<number, number>();
  let last = 0;
  let outOfOrder = 0;
  let partial = "";
  let mark: { hr: bigint; wall: number } | undefined;
  let scheduled = false;
  let cutConnections = 0;
  let toPrintedAfterMs: number | undefined;
  let toAnyNewMs: number | undefined;
  const problems: string[] = [];

  const onStdout = (data: string) => {
    const now = process.hrtime.bigint();
    partial += data;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    if (lines.length === 0) return;
    for (const line of lines) {
      const [num, stamp] = line.split(" ");
      const n = Number(num);
      const printedAt = Number((stamp ?? "").replace(",", ".")) * 1000;
      if (!Number.isInteger(n) || !Number.isFinite(printedAt) || printedAt === 0) {
        problems.push(`a line that is not "<n> <time>": ${JSON.stringify(line.slice(0, 80))}`);
        continue;
      }
      counts.set(n, (counts.get(n) ?? 0) + 1);
      if (n !== last + 1) outOfOrder++;
      last = n;
      if (mark && toPrintedAfterMs === undefined && printedAt > mark.wall)
        toPrintedAfterMs = sinceMs(mark.hr, now);
    }
    if (mark) toAnyNewMs ??= sinceMs(mark.hr, now);
    if (!scheduled && last >= CUT_AFTER_LINE) {
      scheduled = true;
      setTimeout(() => {
        cutConnections = proxy.connections;
        mark = { hr: process.hrtime.bigint(), wall: wallMs() };
        if (cut) proxy.cut();
      }, Math.random() * EVERY_MS);
    }
  };

  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`a run did not end within ${RUN_DEADLINE_MS / 1000} s`)),
      RUN_DEADLINE_MS,
    );
  });
  try {
    const res = await Promise.race([
      sseExec(svc, svc.serverIds[0] ?? "", COMMAND, (stream, data) => {
        if (stream === "stdout") onStdout(data);
      }),
      deadline,
    ]);
    const { end } = res;
    if (end.outcome !== "completed" || end.exit_code !== 0)
      problems.push(`ended ${end.outcome} (exit code ${end.exit_code}): ${end.reason ?? ""}`);
    if (res.stderr > 0) problems.push(`stderr: ${JSON.stringify(end.stderr?.slice(-200))}`);
    if (partial !== "") problems.push(`an unterminated last line ${JSON.stringify(partial.slice(0, 80))}`);
    const missing = Array.from({ length: LINES }, (_, i) => i + 1).filter((n) => !counts.has(n));
    const repeated = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
    const extra = [...counts.keys()].filter((n) => n < 1 || n > LINES);
    if (missing.length > 0) problems.push(`lines missing: ${ranges(missing)}`);
    if (repeated.length > 0) problems.push(`lines more than once: ${ranges(repeated)}`);
    if (extra.length > 0) problems.push(`lines never printed: ${ranges(extra)}`);
    if (outOfOrder > 0 && repeated.length === 0 && missing.length === 0)
      problems.push(`${outOfOrder} lines out of order`);
    if (!mark) problems.push(`the run ended before the cut was due`);
    else if (toPrintedAfterMs === undefined) problems.push(`no line printed after the cut arrived`);
    if (cut && mark && cutConnections === 0) problems.push(`no proxied connection was open to cut`);
    return {
      toPrintedAfterMs,
      toAnyNewMs,
      operationId: res.operationId,
      problems,
      cutConnections,
    };
  } finally {
    clearTimeout(timer);
  }
}

async function measure(svc: Service, proxy: TcpProxy, afterMs: Map<string, number>, quick: boolean) {
  const runs = quick ? 3 : 10;
  const cutMs: number[] = [];
  const uncutMs: number[] = [];
  const cutAnyNew: number[] = [];
  const logged: number[] = [];
  const failed: string[] = [];
  let failedRuns = 0;
  for (let run = 0; run <= runs; run++) {
    // Alternate which goes first; run 0 is a warm-up with a cut.
    const order = run === 0 ? [true] : run % 2 ? [true, false] : [false, true];
    for (const cut of order) {
      const r = await oneRun(svc, proxy, cut);
      if (r.problems.length > 0) {
        if (run > 0) failedRuns++;
        failed.push(
          `${cut ? "with" : "without"} a cut${run === 0 ? " (warm-up)" : ""}, ${r.operationId}: ${r.problems.join("; ")}`,
        );
      }
      if (run === 0) continue;
      if (!cut) {
        if (r.toPrintedAfterMs !== undefined) uncutMs.push(r.toPrintedAfterMs);
        continue;
      }
      if (r.toPrintedAfterMs !== undefined) cutMs.push(r.toPrintedAfterMs);
      if (r.toAnyNewMs !== undefined) cutAnyNew.push(r.toAnyNewMs);
      // The log line comes through a pipe: give it a moment.
      for (let i = 0; i < 20 && r.operationId && !afterMs.has(r.operationId); i++) await delay(50);
      const a = r.operationId === undefined ? undefined : afterMs.get(r.operationId);
      if (a !== undefined) logged.push(a);
      else failed.push(`${r.operationId}: no "reattached" log line`);
    }
  }
  if (failed.length > 0) note(NAME, `${failed.length} problem(s): ${failed.join(" | ")}`);
  const fmt = (xs: number[]) => {
    const f = summarise(xs, "ms");
    return xs.length === 0 ? "none" : `${f.median.toFixed(0)} ms (${f.min.toFixed(0)}–${f.max.toFixed(0)})`;
  };
  note(
    NAME,
    `with a cut, over ${cutMs.length} runs: the service's "reattached" after_ms ${fmt(logged)}; ` +
      `cut → first event with any line the client had not seen ` +
      `(lines the service held before the cut included) ${fmt(cutAnyNew)}`,
  );
  const rows: Row[] = [
    {
      scenario:
        `dropped connection (TCP cut, service ↔ host) → first resumed line via SSE` +
        (failedRuns > 0 ? ` (${failedRuns} runs with problems, see notes)` : ""),
      ours: summarise(cutMs, "ms"),
      reference: summarise(uncutMs, "ms"),
      referenceName: "no cut: the same moment → first line printed after it",
      higherIsBetter: false,
    },
  ];
  return rows;
}

export const reattach: Scenario = {
  name: NAME,
  async run({ quick }) {
    // The service's "reattached" lines, by operation; its "lost the connection" warnings are expected here.
    const afterMs = new Map<string, number>();
    const bed = await startTestBed({
      name: NAME,
      hosts: 1,
      outputCapBytes: 1024 * 1024,
      proxied: true,
      serviceLog: (line) => {
        let entry: { msg?: unknown; operation_id?: unknown; after_ms?: unknown };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          return false;
        }
        if (entry.msg === "reattached to a running operation") {
          if (typeof entry.operation_id === "string" && typeof entry.after_ms === "number")
            afterMs.set(entry.operation_id, entry.after_ms);
          return true;
        }
        return entry.msg === "lost the connection to a running operation's host; reattaching";
      },
    });
    try {
      const began = performance.now();
      const rows = await measure(bed.service, bed.proxies[0] as TcpProxy, afterMs, quick);
      note(NAME, `done (${((performance.now() - began) / 1000).toFixed(1)} s)`);
      return rows;
    } finally {
      await bed.close();
    }
  },
};
