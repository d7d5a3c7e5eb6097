import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { addCommands } from "./commands";
import {
  addUsageHints,
  reportError,
  rootCommand,
  Invocation,
  type AdminIo,
  type AdminOptions,
} from "./program";

// reoclo-admin's entry: bin/reoclo-admin.js runs main(), from the bundle (dist/reoclo-admin.mjs,
// scripts/build-admin.ts) or from these sources through tsx.

export type { AdminIo, AdminOptions };

/** Runs one admin command; returns the process exit code (0 ok, 1 refused or failed, 2 wrongly called). */
export async function runAdmin(argv: string[], io: AdminIo, opts: AdminOptions = {}): Promise<number> {
  const invocation = new Invocation(io, opts);
  const program = rootCommand(io);
  addCommands(program, invocation);
  addUsageHints(program);
  let code = 0;
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    code = reportError(err, io, argv.includes("--json"));
  }
  try {
    await invocation.close();
  } catch (err) {
    code = Math.max(code, reportError(err, io, argv.includes("--json")));
  }
  return code;
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export function main(argv: string[]): Promise<number> {
  return runAdmin(argv, {
    env: process.env,
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    readStdin: readAllStdin,
  });
}

// `node dist/reoclo-admin.mjs …` runs a command itself (the admin tests run the bundle so).
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href)
  process.exitCode = await main(process.argv.slice(2));
