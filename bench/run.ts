import { execFile } from "node:child_process";
import { readFile, mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import { promisify } from "node:util";
import postgres from "postgres";
import { TEST_POSTGRES_URL } from "@reoclo/testbed/postgres-database";
import { notes, printTable, type Row, type Scenario } from "./lib";
import { access } from "./scenarios/access";
import { checkout } from "./scenarios/checkout";
import { concurrency } from "./scenarios/concurrency";
import { execLatency } from "./scenarios/exec-latency";
import { firstOutput } from "./scenarios/first-output";
import { keyLookup } from "./scenarios/key-lookup";
import { oidcExchange } from "./scenarios/oidc-exchange";
import { reattach } from "./scenarios/reattach";
import { runAction } from "./scenarios/run-action";
import { sseThroughput } from "./scenarios/sse-throughput";

// `npm run bench [-- --quick] [-- --only <name>[,<name>…]]`: runs every scenario against real
// sshd hosts and a real PostgreSQL (PGlite too where it differs), prints one table (scenario,
// ours, reference, ratio) and writes bench/results/latest.json (latest-quick.json for --quick,
// latest[-quick]-partial.json for --only).

const scenarios: Scenario[] = [
  keyLookup,
  access,
  oidcExchange,
  execLatency,
  firstOutput,
  sseThroughput,
  reattach,
  concurrency,
  runAction,
  checkout,
];

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const only = args.includes("--only") ? (args[args.indexOf("--only") + 1] ?? "").split(",") : undefined;
const unknown = only?.filter((name) => !scenarios.some((s) => s.name === name)) ?? [];
if (unknown.length > 0) {
  process.stderr.write(
    `bench: no scenario ${unknown.join(", ")}; there are ${scenarios.map((s) => s.name).join(", ")}\n`,
  );
  process.exit(2);
}

const execFileAsync = promisify(execFile);
/** The first line a tool prints about its version, or "unknown". */
async function versionOf(command: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync(command, args, { encoding: "utf8" });
    return (stderr + stdout).trim().split("\n")[0] ?? "unknown";
  } catch {
    return "unknown";
  }
}
async function packageVersion(name: string): Promise<string> {
  const url = new URL(`../node_modules/${name}/package.json`, import.meta.url);
  return ((JSON.parse(await readFile(url, "utf8")) as { version?: string }).version ?? "unknown").trim();
}
async function postgresVersion(): Promise<string> {
  const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
  try {
    const [row] = await sql<{ version: string }[]>`select version()`;
    return row?.version ?? "unknown";
  } catch {
    return "unknown";
  } finally {
    await sql.end();
  }
}

const began = performance.now();
const date = new Date().toISOString();
const rows: Row[] = [];
// A scenario that fails is reported and the others still run; the exit status is then 1.
const failed: { scenario: string; error: string }[] = [];
for (const s of scenarios.filter((sc) => !only || only.includes(sc.name))) {
  process.stderr.write(`bench: ${s.name}${quick ? " (quick)" : ""}…\n`);
  const t = performance.now();
  try {
    rows.push(...(await s.run({ quick })));
  } catch (err) {
    const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    failed.push({ scenario: s.name, error });
    process.stderr.write(`bench: ${s.name} FAILED: ${error}\n`);
  }
  process.stderr.write(`bench: ${s.name}: ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
}
const seconds = (performance.now() - began) / 1000;
process.stdout.write(printTable(rows) + "\n");
process.stderr.write(`bench: ${rows.length} rows in ${seconds.toFixed(1)} s\n`);
if (failed.length > 0) {
  process.stderr.write(
    `bench: ${failed.length} scenario(s) failed: ${failed.map((f) => f.scenario).join(", ")}\n`,
  );
  process.exitCode = 1;
}

const result = {
  date,
  quick,
  only: only ?? null,
  duration_seconds: Math.round(seconds),
  machine: {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? "unknown",
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  },
  versions: {
    node: process.version,
    openssh: await versionOf("ssh", ["-V"]),
    postgresql: await postgresVersion(),
    pglite: await packageVersion("@electric-sql/pglite"),
    ssh2: await packageVersion("ssh2"),
    hono: await packageVersion("hono"),
  },
  failed,
  rows,
  notes,
};
const dir = new URL("./results/", import.meta.url);
await mkdir(dir, { recursive: true });
// A partial run (--only) never replaces the full record.
const file = `latest${quick ? "-quick" : ""}${only ? "-partial" : ""}.json`;
await writeFile(new URL(file, dir), JSON.stringify(result, null, 2) + "\n");
