import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import { printTable, type Row, type Scenario } from "./lib";
import { access } from "./scenarios/access";
import { checkout } from "./scenarios/checkout";
import { exec } from "./scenarios/exec";
import { keyLookup } from "./scenarios/key-lookup";
import { runAction } from "./scenarios/run-action";

// `npm run bench [-- --quick] [-- --only <name>]`: prints one table and writes bench/results/latest.json.

const scenarios: Scenario[] = [keyLookup, access, exec, runAction, checkout];

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;

const rows: Row[] = [];
for (const s of scenarios.filter((sc) => !only || sc.name === only)) {
  process.stderr.write(`bench: ${s.name}${quick ? " (quick)" : ""}…\n`);
  rows.push(...(await s.run({ quick })));
}
const table = printTable(rows);
process.stdout.write(table + "\n");

const result = {
  date: new Date().toISOString(),
  quick,
  machine: {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? "unknown",
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
  },
  rows,
};
const dir = new URL("./results/", import.meta.url);
await mkdir(dir, { recursive: true });
await writeFile(
  new URL(quick ? "latest-quick.json" : "latest.json", dir),
  JSON.stringify(result, null, 2) + "\n",
);
