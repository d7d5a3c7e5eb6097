import net from "node:net";
import { ConfigError, parseConfig } from "../config";
import { adminSocketPath, socketIsLive } from "../db/data-dir";
import { ServiceError } from "../errors";
import { silentLogger, type Logger } from "../logger";
import { openStorage } from "../storage";
import { parseCommand, usage, UsageError } from "./argv";
import { adminCommands } from "./commands";
import { formatHuman } from "./format";
import { callAdminSocket } from "./socket-api";

export interface AdminIo {
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
}

const stderrLogger = (io: AdminIo): Logger => ({
  ...silentLogger,
  warn: (msg) => io.stderr(`warning: ${msg}\n`),
});

/** Runs one admin command; returns the process exit code (0 ok, 1 failed, 2 usage). */
export async function runAdmin(argv: string[], io: AdminIo): Promise<number> {
  if (argv.length === 0 || argv.includes("--help") || argv.includes("-h")) {
    (argv.length === 0 ? io.stderr : io.stdout)(usage() + "\n");
    return argv.length === 0 ? 2 : 0;
  }
  let json = argv.includes("--json");
  try {
    const config = parseConfig(io.env);
    const parsed = await parseCommand(argv, io.readStdin);
    json = parsed.json;
    const result = await execute(config, parsed.command, parsed.params, io);
    io.stdout((json ? JSON.stringify(result, null, 2) : formatHuman(parsed.command, result)) + "\n");
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`reoclo-admin: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.stderr(`reoclo-admin: ${err.message}\n`);
      return 1;
    }
    if (err instanceof ServiceError) {
      io.stderr(
        json
          ? JSON.stringify({
              error: err.code,
              detail: err.detail,
              ...(err.fields ? { fields: err.fields } : {}),
            }) + "\n"
          : `reoclo-admin: ${err.code}: ${err.detail}\n`,
      );
      return 1;
    }
    io.stderr(`reoclo-admin: unexpected error: ${(err as Error).message}\n`);
    return 1;
  }
}

async function execute(
  config: ReturnType<typeof parseConfig>,
  command: string,
  params: unknown,
  io: AdminIo,
) {
  const run = Object.hasOwn(adminCommands, command) ? adminCommands[command] : undefined;
  if (!run) throw new UsageError(`unknown command ${command}`);
  // A running service owns the embedded database: talk to it through its socket.
  if (!config.databaseUrl && (await socketIsLive(adminSocketPath(config.dataDir)))) {
    return callAdminSocket(adminSocketPath(config.dataDir), command, params);
  }
  // No service answers: open the storage the service created, and never create any (issue 14).
  const lockServer = net.createServer((s) => s.end());
  const storage = await openStorage(config, {
    role: "reoclo-admin",
    lockServer,
    logger: stderrLogger(io),
    existingOnly: true,
  });
  try {
    return await run(
      { config, db: storage.database.db, secrets: storage.secrets, now: () => new Date() },
      params,
    );
  } finally {
    await storage.close();
  }
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function main(argv: string[]): Promise<number> {
  return runAdmin(argv, {
    env: process.env,
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    readStdin: readAllStdin,
  });
}
