import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import autocannon from "autocannon";
import { createPostgresDatabase } from "../../service/test/fixtures/db";
import { summarise, type Row, type Scenario } from "../lib";

// Requests/s through the whole access pipeline (key lookup, rate limit, audit row) and of
// rejected requests (bad key), next to a bare Hono route on the same HTTP server, in one run.
// The server runs in its own process; autocannon drives it over loopback.

const TSX = new URL("../../node_modules/.bin/tsx", import.meta.url).pathname;
const SERVER = new URL("../servers/access-server.ts", import.meta.url).pathname;

async function rps(url: string, headers: Record<string, string>, seconds: number, expect: "2xx" | "non2xx") {
  const result = await autocannon({ url, headers, connections: 32, duration: seconds });
  const wrong = expect === "2xx" ? result.non2xx : result["2xx"];
  if (wrong > 0 || result.errors > 0) {
    throw new Error(`${url}: ${wrong} answers were not ${expect}, ${result.errors} errors`);
  }
  return result.requests.average;
}

async function measure(driver: string, databaseUrl: string | undefined, quick: boolean): Promise<Row[]> {
  const child = spawn(TSX, [SERVER, databaseUrl ?? ""], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`bench server exited with ${code}`)));
    });
    const { ours, bare, key } = JSON.parse(line) as { ours: number; bare: number; key: string };
    const base = `http://127.0.0.1:${ours}/api/automation/v1`;
    const seconds = quick ? 1 : 3;
    const runs = quick ? 2 : 5;
    const authed: number[] = [];
    const rejected: number[] = [];
    const reference: number[] = [];
    for (let i = 0; i <= runs; i++) {
      const b = await rps(`http://127.0.0.1:${bare}/noop`, {}, seconds, "2xx");
      const a = await rps(`${base}/key`, { authorization: `Bearer ${key}` }, seconds, "2xx");
      const r = await rps(`${base}/key`, { authorization: "Bearer rca_invalid" }, seconds, "non2xx");
      if (i === 0) continue; // warm-up
      reference.push(b);
      authed.push(a);
      rejected.push(r);
    }
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
