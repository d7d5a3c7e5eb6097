import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import type { Client } from "ssh2";
import { testConfig } from "@reoclo/service/testing";
import type { TestHost } from "@reoclo/testbed/sshd";
import { closeSsh, connectSsh } from "../../service/src/ssh/connect";
import { hostKeepSeconds } from "../../service/src/ssh/remote-exec";
import { EXEC_REQUEST, encodeHeader, encodeRelease } from "../../service/src/ssh/wrapper";
import { agent, execToFinal } from "../http";
import { ms, note, percentile, summarise, type Row, type Scenario } from "../lib";
import { openssh, rawExec, startTestBed, type Service, type TestBed } from "../testbed";

// Latency of `POST /exec` of `true` on a warm pool, end to end (HTTP, access pipeline with its
// audit row, operation rows, pooled SSH channel, the remote wrapper, the JSON answer), one
// request at a time, next to, in the same rounds:
//  - a raw ssh2 exec of `true` on an already open connection (the floor for any SSH client);
//  - the same raw exec of the service's own remote wrapper running `true`, with the request as
//    the service sends it by default (keep and output copy, below) (what the host does for us:
//    it splits our figure into the host's part and the service's part);
//  - a cold OpenSSH `ssh host true` (what a CI job holding an SSH key would do).
// On PostgreSQL and on the embedded PGlite, each with its own service process and host. Every
// round gives one p50 and one p99 per path; the table shows the median over rounds with min and
// max. Round 0 is a shorter warm-up (JIT, the pool's connection, page cache), discarded.
//
// What reattach costs (the default: every command survives a dropped connection; the host copies
// its output into the operation's directory through `tee -p` and `head -c cap`, and leaves a
// keeper process that lingers until the service's release of the operation rides on a later
// request, and then up to a second more): on PostgreSQL the same rounds also time
//  - `/exec` of `true` on a second service process with reattach off
//    (REOCLO_REATTACH_BOUND_SECONDS=0: output straight to the channel, no copy, no keeper
//    linger), on its own database and host, the whole cost as a caller sees it;
//  - the raw ssh2 exec of the wrapper as the service sends it (keep = hostKeepSeconds of the
//    default bound, copy cap = output cap + 64 KiB, the previous operation's release riding on
//    the header) next to the same with keep 0: the host's part alone, without the service.
// Each pair alternates request by request (which goes first alternating too), so drift in the
// machine's load hits both alike. The keepers the reattach-on requests leave then run during both
// (each wakes once a second; some 1–2 s of requests' worth are alive at a time), so the pair's
// difference is the per-request cost (the copy's set-up: two FIFOs, a tee and a head per stream;
// the keeper's start; the wait for the copies), and the keepers' background CPU is shared by both.
// After each such block a pause of KEEPERS_GONE_MS lets its keepers go (its releases go out, the
// keepers see them within a second) before the next block, so the other references run without
// them.

const NAME = "exec-latency";
const OUTPUT_CAP_BYTES = 1024 * 1024;
/** Long enough for the last releases of a block to go out (the service waits up to 1 s for a request to carry them) and its keepers (1 s ticks) to act on them. */
const KEEPERS_GONE_MS = 2_500;
/** The wrapper's keep as the service sends it with the default REOCLO_REATTACH_BOUND_SECONDS and a 5 s kill grace. */
const KEEP_SECONDS = hostKeepSeconds(testConfig().reattachBoundSeconds * 1000, 5);
/** The runner's copy cap: its output cap plus a 64 KiB margin (HOST_COPY_MARGIN_BYTES in service/src/operations/runner.ts). */
const copyCap = (outputCapBytes: number) => outputCapBytes + 64 * 1024;

/** Runs the wrapper on `raw` as `true`'s request, with or without keep and copy; resolves with its time in ms. */
async function wrapperRun(
  raw: Client,
  keep: boolean,
  release: string[],
): Promise<{ ms: number; id: string }> {
  const id = randomUUID();
  const input = encodeHeader({
    operationId: id,
    command: "true",
    env: {},
    timeoutSeconds: 60,
    graceSeconds: 5,
    keepSeconds: keep ? KEEP_SECONDS : 0,
    copyCapBytes: keep ? copyCap(OUTPUT_CAP_BYTES) : undefined,
    release,
  });
  const t = process.hrtime.bigint();
  const { code } = await rawExec(raw, EXEC_REQUEST, { input });
  const elapsed = ms(t);
  if (code !== 0) throw new Error(`raw ssh2 exec of the wrapper running true exited with ${code}`);
  return { ms: elapsed, id };
}

/**
 * `count` pairs of wrapper runs, with keep and without, in alternating order; each run with keep
 * carries the release of the one before, and the last is released on its own.
 */
async function wrapperBlock(raw: Client, count: number): Promise<{ keep: number[]; noKeep: number[] }> {
  const keep: number[] = [];
  const noKeep: number[] = [];
  let previous: string | undefined;
  for (let i = 0; i < count; i++) {
    for (const withKeep of i % 2 === 0 ? [true, false] : [false, true]) {
      if (!withKeep) {
        noKeep.push((await wrapperRun(raw, false, [])).ms);
        continue;
      }
      const r = await wrapperRun(raw, true, previous ? [previous] : []);
      keep.push(r.ms);
      previous = r.id;
    }
  }
  if (previous) await rawExec(raw, EXEC_REQUEST, { input: encodeRelease([previous]) });
  await delay(KEEPERS_GONE_MS);
  return { keep, noKeep };
}

interface Samples {
  p50: number[];
  p99: number[];
}
const samples = (): Samples => ({ p50: [], p99: [] });
const add = (s: Samples, xs: number[]) => {
  s.p50.push(percentile(xs, 0.5));
  s.p99.push(percentile(xs, 0.99));
};

async function rounds(
  svc: Service,
  host: TestHost,
  keyFile: string,
  raw: Client,
  quick: boolean,
  /** On PostgreSQL: the same service with reattach off. */
  off: Service | undefined,
): Promise<Row[]> {
  const measured = quick ? 2 : 3;
  const n = quick ? 30 : 200;
  const coldN = quick ? 3 : 10;
  const withExtras = svc.driver === "postgres";
  const ag = agent();
  const ours = samples();
  const oursOff = samples();
  const ref = samples();
  const wrapper = samples();
  const wrapperNoKeep = samples();
  const cold: number[] = [];
  const slow: string[] = [];
  // Not thrown: the latency a caller saw is kept in the samples, and the count is in the row's name.
  const failed = { on: [] as string[], off: [] as string[] };
  /** One `/exec` of true; resolves with its time in ms. */
  const execOnce = async (s: Service, which: "on" | "off") => {
    const t = process.hrtime.bigint();
    const final = await execToFinal(s, ag, s.serverIds[0] ?? "", "true");
    const elapsed = ms(t);
    const what = `${final.operationId}${which === "off" ? " (reattach off)" : ""}`;
    if (final.status !== "completed" || final.exit_code !== 0) {
      failed[which].push(`${what} ended ${String(final.status)} after ${elapsed.toFixed(0)} ms`);
    } else if (final.polled) {
      slow.push(`${what} took ${elapsed.toFixed(0)} ms`);
    }
    return elapsed;
  };
  /** `count` × `/exec` of true, one at a time, alternating with the reattach-off service when there is one. */
  const execBlock = async (count: number) => {
    const on: number[] = [];
    const offTimes: number[] = [];
    for (let i = 0; i < count; i++) {
      for (const which of i % 2 === 0 ? (["on", "off"] as const) : (["off", "on"] as const)) {
        if (which === "on") on.push(await execOnce(svc, "on"));
        else if (off) offTimes.push(await execOnce(off, "off"));
      }
    }
    // Its keepers go before the next block.
    await delay(KEEPERS_GONE_MS);
    return { on, off: offTimes };
  };
  try {
    for (let round = 0; round <= measured; round++) {
      const count = round === 0 ? 20 : n;
      const exec = await execBlock(count);
      const r: number[] = [];
      for (let i = 0; i < count; i++) {
        const t = process.hrtime.bigint();
        const { code } = await rawExec(raw, "true");
        r.push(ms(t));
        if (code !== 0) throw new Error(`raw ssh2 exec of true exited with ${code}`);
      }
      const c: number[] = [];
      const w = withExtras ? await wrapperBlock(raw, count) : undefined;
      if (withExtras) {
        for (let i = 0; i < (round === 0 ? 1 : coldN); i++) {
          const t = process.hrtime.bigint();
          await openssh(host, keyFile, "true");
          c.push(ms(t));
        }
      }
      if (round === 0) continue;
      add(ours, exec.on);
      add(ref, r);
      if (off) add(oursOff, exec.off);
      if (w) {
        add(wrapper, w.keep);
        add(wrapperNoKeep, w.noKeep);
        cold.push(percentile(c, 0.5));
      }
    }
  } finally {
    ag.destroy();
  }
  const all = [...failed.on, ...failed.off];
  if (all.length > 0) note(NAME, `${all.length} /exec of true did not complete: ${all.join("; ")}`);
  if (slow.length > 0)
    note(NAME, `${slow.length} /exec of true outlasted the sync window: ${slow.join("; ")}`);
  const tag = `${svc.driver}${failed.on.length > 0 ? `, ${failed.on.length} failed` : ""}`;
  const offTag = failed.off.length > 0 ? `, ${failed.off.length} failed` : "";
  const p50 = summarise(ours.p50, "ms");
  const rows: Row[] = [
    {
      scenario: `/exec of true, p50, warm pool (${tag})`,
      ours: p50,
      reference: summarise(ref.p50, "ms"),
      referenceName: "raw ssh2 exec of true, open connection",
      higherIsBetter: false,
    },
    {
      scenario: `/exec of true, p99, warm pool (${tag})`,
      ours: summarise(ours.p99, "ms"),
      reference: summarise(ref.p99, "ms"),
      referenceName: "raw ssh2 exec of true p99, open connection",
      higherIsBetter: false,
    },
  ];
  if (withExtras) {
    rows.push(
      {
        scenario: `/exec of true, p50, warm pool (${tag})`,
        ours: p50,
        reference: summarise(cold, "ms"),
        referenceName: "cold OpenSSH ssh host true",
        higherIsBetter: false,
      },
      {
        scenario: `/exec of true, p50, warm pool (${tag}), for the split`,
        ours: p50,
        reference: summarise(wrapper.p50, "ms"),
        referenceName: "raw ssh2 exec of the service's wrapper running true, as the service sends it",
        higherIsBetter: false,
      },
    );
  }
  if (off) {
    for (const p of ["p50", "p99"] as const) {
      rows.push({
        scenario: `/exec of true, ${p}, warm pool (${tag}), reattach on (the default)`,
        ours: summarise(ours[p], "ms"),
        reference: summarise(oursOff[p], "ms"),
        referenceName: `the same with reattach off (REOCLO_REATTACH_BOUND_SECONDS=0)${offTag}`,
        higherIsBetter: false,
      });
    }
  }
  if (withExtras) {
    for (const p of ["p50", "p99"] as const) {
      rows.push({
        scenario: `raw ssh2 exec of the wrapper running true, ${p}, with keep ${KEEP_SECONDS} s and the output copy`,
        ours: summarise(wrapper[p], "ms"),
        reference: summarise(wrapperNoKeep[p], "ms"),
        referenceName: "the same with keep 0 (no copy, no keeper linger)",
        higherIsBetter: false,
      });
    }
  }
  return rows;
}

export const execLatency: Scenario = {
  name: NAME,
  async run({ quick }) {
    const rows: Row[] = [];
    for (const driver of ["postgres", "pglite"] as const) {
      const bed = await startTestBed({ name: NAME, hosts: 1, outputCapBytes: OUTPUT_CAP_BYTES, driver });
      try {
        const host = bed.hosts[0] as TestHost;
        const raw = await connectSsh(host);
        bed.defer(() => closeSsh(raw));
        // On PostgreSQL, a second service with reattach off, on its own database and host.
        let off: TestBed | undefined;
        if (driver === "postgres") {
          off = await startTestBed({
            name: `${NAME} (reattach off)`,
            hosts: 1,
            outputCapBytes: OUTPUT_CAP_BYTES,
            driver,
            reattachBoundSeconds: 0,
          });
          bed.defer(() => (off as TestBed).close());
        }
        const began = performance.now();
        rows.push(...(await rounds(bed.service, host, bed.keyFiles[0] ?? "", raw, quick, off?.service)));
        note(NAME, `${driver} done (${((performance.now() - began) / 1000).toFixed(1)} s)`);
      } finally {
        await bed.close();
      }
    }
    return rows;
  },
};
