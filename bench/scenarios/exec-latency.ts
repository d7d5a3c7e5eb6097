import { randomUUID } from "node:crypto";
import type { Client } from "ssh2";
import type { TestHost } from "@reoclo/testbed/sshd";
import { closeSsh, connectSsh } from "../../service/src/ssh/connect";
import { EXEC_REQUEST, encodeHeader } from "../../service/src/ssh/wrapper";
import { agent, execToFinal } from "../http";
import { ms, note, percentile, summarise, type Row, type Scenario } from "../lib";
import { openssh, rawExec, startTestBed, type Service } from "../testbed";

// Latency of `POST /exec` of `true` on a warm pool, end to end (HTTP, access pipeline with its
// audit row, operation rows, pooled SSH channel, the remote wrapper, the JSON answer), one
// request at a time, next to, in the same rounds:
//  - a raw ssh2 exec of `true` on an already open connection (the floor for any SSH client);
//  - the same raw exec of the service's own remote wrapper running `true` (what the host does
//    for us: it splits our figure into the host's part and the service's part);
//  - a cold OpenSSH `ssh host true` (what a CI job holding an SSH key would do).
// On PostgreSQL and on the embedded PGlite, each with its own service process and host. Every
// round gives one p50 and one p99 per path; the table shows the median over rounds with min and
// max. Round 0 is a shorter warm-up (JIT, the pool's connection, page cache), discarded.

const NAME = "exec-latency";

async function rounds(
  svc: Service,
  host: TestHost,
  keyFile: string,
  raw: Client,
  quick: boolean,
): Promise<Row[]> {
  const measured = quick ? 2 : 3;
  const n = quick ? 30 : 200;
  const coldN = quick ? 3 : 10;
  const withExtras = svc.driver === "postgres";
  const ag = agent();
  const ours = { p50: [] as number[], p99: [] as number[] };
  const ref = { p50: [] as number[], p99: [] as number[] };
  const wrapper: number[] = [];
  const cold: number[] = [];
  const slow: string[] = [];
  // Not thrown: the latency a caller saw is kept in the samples, and the count is in the row's name.
  const failed: string[] = [];
  try {
    for (let round = 0; round <= measured; round++) {
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
          slow.push(`${final.operationId} took ${(o.at(-1) ?? 0).toFixed(0)} ms`);
        }
      }
      const r: number[] = [];
      for (let i = 0; i < count; i++) {
        const t = process.hrtime.bigint();
        const { code } = await rawExec(raw, "true");
        r.push(ms(t));
        if (code !== 0) throw new Error(`raw ssh2 exec of true exited with ${code}`);
      }
      const w: number[] = [];
      const c: number[] = [];
      if (withExtras) {
        for (let i = 0; i < count; i++) {
          const input = encodeHeader({
            operationId: randomUUID(),
            command: "true",
            env: {},
            timeoutSeconds: 60,
            graceSeconds: 5,
          });
          const t = process.hrtime.bigint();
          const { code } = await rawExec(raw, EXEC_REQUEST, { input });
          w.push(ms(t));
          if (code !== 0) throw new Error(`raw ssh2 exec of the wrapper running true exited with ${code}`);
        }
        for (let i = 0; i < (round === 0 ? 1 : coldN); i++) {
          const t = process.hrtime.bigint();
          await openssh(host, keyFile, "true");
          c.push(ms(t));
        }
      }
      if (round === 0) continue;
      ours.p50.push(percentile(o, 0.5));
      ours.p99.push(percentile(o, 0.99));
      ref.p50.push(percentile(r, 0.5));
      ref.p99.push(percentile(r, 0.99));
      if (withExtras) {
        wrapper.push(percentile(w, 0.5));
        cold.push(percentile(c, 0.5));
      }
    }
  } finally {
    ag.destroy();
  }
  if (failed.length > 0) note(NAME, `${failed.length} /exec of true did not complete: ${failed.join("; ")}`);
  if (slow.length > 0)
    note(NAME, `${slow.length} /exec of true outlasted the sync window: ${slow.join("; ")}`);
  const tag = `${svc.driver}${failed.length > 0 ? `, ${failed.length} failed` : ""}`;
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
        reference: summarise(wrapper, "ms"),
        referenceName: "raw ssh2 exec of the service's wrapper running true",
        higherIsBetter: false,
      },
    );
  }
  return rows;
}

export const execLatency: Scenario = {
  name: NAME,
  async run({ quick }) {
    const rows: Row[] = [];
    for (const driver of ["postgres", "pglite"] as const) {
      const bed = await startTestBed({ name: NAME, hosts: 1, outputCapBytes: 1024 * 1024, driver });
      try {
        const host = bed.hosts[0] as TestHost;
        const raw = await connectSsh(host);
        bed.defer(() => closeSsh(raw));
        const began = performance.now();
        rows.push(...(await rounds(bed.service, host, bed.keyFiles[0] ?? "", raw, quick)));
        note(NAME, `${driver} done (${((performance.now() - began) / 1000).toFixed(1)} s)`);
      } finally {
        await bed.close();
      }
    }
    return rows;
  },
};
