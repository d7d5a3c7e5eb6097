import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import autocannon from "autocannon";
import { createPostgresDatabase } from "@reoclo/testbed/postgres-database";
import { note, summarise, type Row, type Scenario } from "../lib";

// Requests/s through the whole access pipeline (key lookup, rate limit, audit row) and of
// rejected requests (bad key), next to a bare Hono route on the same HTTP server, in one run.
// The server runs in its own process; autocannon drives it over loopback, from this process (on
// this 2-core machine the two share the CPU). The server's CPU time per request on each path is
// noted for context, from /proc.

const REPO = new URL("../../", import.meta.url).pathname;
const SERVER = new URL("../servers/access-server.ts", import.meta.url).pathname;

/** CPU seconds a process has used (user + system), from /proc/<pid>/stat; USER_HZ is 100 on Linux. */
function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Requests/s over `seconds`, and the server's CPU microseconds per request meanwhile. */
async function rps(
  pid: number,
  url: string,
  headers: Record<string, string>,
  seconds: number,
  expect: "2xx" | "non2xx",
) {
  const before = cpuSecondsOf(pid);
  const result = await autocannon({ url, headers, connections: 32, duration: seconds });
  const cpu = cpuSecondsOf(pid) - before;
  const wrong = expect === "2xx" ? result.non2xx : result["2xx"];
  if (wrong > 0 || result.errors > 0) {
    throw new Error(`${url}: ${wrong} answers were not ${expect}, ${result.errors} errors`);
  }
  return { rps: result.requests.average, cpuMicros: (1e6 * cpu) / Math.max(1, result.requests.total) };
}

async function measure(driver: string, databaseUrl: string | undefined, quick: boolean): Promise<Row[]> {
  // node itself (not the tsx launcher, which would run it in a child) so `child.pid` is the server.
  const child = spawn(process.execPath, ["--import", "tsx", SERVER, databaseUrl ?? ""], {
    cwd: REPO,
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`bench server exited with ${code}`)));
    });
    const { ours, bare, key } = JSON.parse(line) as { ours: number; bare: number; key: string };
    const base = `http://127.0.0.1:${ours}/api/automation/v1`;
    const seconds = quick ? 1 : 3;
    const runs = quick ? 2 : 5;
    const pid = child.pid ?? 0;
    const authed: number[] = [];
    const rejected: number[] = [];
    const reference: number[] = [];
    const cpu = { bare: [] as number[], authed: [] as number[], rejected: [] as number[] };
    for (let i = 0; i <= runs; i++) {
      const b = await rps(pid, `http://127.0.0.1:${bare}/noop`, {}, seconds, "2xx");
      const a = await rps(pid, `${base}/key`, { authorization: `Bearer ${key}` }, seconds, "2xx");
      const r = await rps(pid, `${base}/key`, { authorization: "Bearer rca_invalid" }, seconds, "non2xx");
      if (i === 0) continue; // warm-up
      reference.push(b.rps);
      authed.push(a.rps);
      rejected.push(r.rps);
      cpu.bare.push(b.cpuMicros);
      cpu.authed.push(a.cpuMicros);
      cpu.rejected.push(r.cpuMicros);
    }
    const us = (xs: number[]) => `${summarise(xs, "").median.toFixed(0)} µs`;
    note(
      "access",
      `${driver}: server CPU per request (medians): bare Hono route ${us(cpu.bare)}, ` +
        `authenticated ${us(cpu.authed)}, rejected ${us(cpu.rejected)}`,
    );
    const ref = summarise(reference, "req/s");
    return [
      {
        scenario: `authenticated no-op (GET /key), ${driver}`,
        ours: summarise(authed, "req/s"),
        reference: ref,
        referenceName: "bare Hono route",
        higherIsBetter: true,
      },
      {
        scenario: `rejected request (bad key), ${driver}`,
        ours: summarise(rejected, "req/s"),
        reference: ref,
        referenceName: "bare Hono route",
        higherIsBetter: true,
      },
    ];
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => (child.exitCode === null ? child.once("exit", resolve) : resolve(null)));
  }
}

export const access: Scenario = {
  name: "access",
  async run({ quick }) {
    const pg = await createPostgresDatabase();
    try {
      const rows = await measure("postgres", pg.url, quick);
      return [...rows, ...(await measure("pglite", undefined, quick))];
    } finally {
      await pg.drop();
    }
  },
};
