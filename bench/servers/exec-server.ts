// A child process for the exec bench: the real service app (access pipeline, operation runner,
// SSH pool) on PostgreSQL, built by the service's createService and served by the service's
// HTTP server. The parent has already migrated the database and registered the servers and the
// key; the master key comes in REOCLO_MASTER_KEY. Settings are read from the same variables as
// the service: DATABASE_URL, REOCLO_MASTER_KEY, REOCLO_OUTPUT_CAP_BYTES, REOCLO_SYNC_WAIT_SECONDS,
// REOCLO_REATTACH_BOUND_SECONDS; without DATABASE_URL it opens the embedded PGlite database in REOCLO_BENCH_PGLITE_DIR (the
// service's own pgdata directory, here a temporary one the parent has migrated and filled).
// Prints {"port", "statsPort"} once listening; the stats port answers the process's memory
// figures and the SSH pool's state as JSON (not part of what is measured). Its log goes to stderr:
// warnings and errors, and info lines too with REOCLO_BENCH_LOG_INFO=1.
import { createServer, type Server } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { testConfig } from "@reoclo/service/testing";
import { openDatabase } from "../../service/src/db/database";
import { createHttpServer, listen } from "../../service/src/http/server";
import { jsonLogger, type Logger } from "../../service/src/logger";
import { SecretBox } from "../../service/src/secrets/secret-box";
import { createService } from "../../service/src/service";

const settings = Object.fromEntries(
  [
    "DATABASE_URL",
    "REOCLO_MASTER_KEY",
    "REOCLO_OUTPUT_CAP_BYTES",
    "REOCLO_SYNC_WAIT_SECONDS",
    "REOCLO_REATTACH_BOUND_SECONDS",
  ].flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
) as Record<string, string>;
const config = testConfig(settings);
const pgliteDir = process.env.REOCLO_BENCH_PGLITE_DIR || undefined;
if (!(config.databaseUrl || pgliteDir) || !config.masterKey)
  throw new Error("exec-server needs DATABASE_URL or REOCLO_BENCH_PGLITE_DIR, and REOCLO_MASTER_KEY");

// Warnings and errors go to stderr (the bench shows them): a failure should say why. Info lines
// (one per reattach, for instance) only when a scenario reads them.
const logInfo = process.env.REOCLO_BENCH_LOG_INFO === "1";
const logger: Logger = {
  info: (msg, fields) => (logInfo ? jsonLogger.info(msg, fields) : undefined),
  warn: (msg, fields) => jsonLogger.warn(msg, fields),
  error: (msg, fields) => jsonLogger.error(msg, fields),
};
const database = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir });
const secrets = new SecretBox(config.masterKey);
const service = createService(config, { database, secrets, close: () => database.close() }, logger, {
  shutdownGraceMs: 0,
});
const { app, pool } = service;

const listenOn = (server: Server) => listen(server, 0, "127.0.0.1");
const server = createHttpServer(app.fetch);
service.attach(server, "api");
// The longest the event loop was blocked since the last stats read: a stall shows here.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const stats = createServer((_req, res) => {
  const eventLoopMaxMs = loopDelay.max / 1e6;
  loopDelay.reset();
  const mem = process.memoryUsage();
  res.setHeader("content-type", "application/json");
  res.end(
    JSON.stringify({
      rssMiB: mem.rss / 2 ** 20,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
      cpuSeconds: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
      pool: pool.stats(),
      eventLoopMaxMs,
    }),
  );
});
process.stdout.write(
  JSON.stringify({ port: await listenOn(server), statsPort: await listenOn(stats) }) + "\n",
);

let stopping = false;
process.on("SIGTERM", () => {
  if (stopping) return;
  stopping = true;
  server.closeAllConnections();
  stats.close();
  service
    .close()
    .catch((err: unknown) => {
      process.stderr.write(`exec-server: shutdown failed: ${String(err)}\n`);
      process.exitCode = 1;
    })
    .finally(() => process.exit());
});
