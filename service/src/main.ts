import type { Server } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { createHttpServer, listen } from "./http/server";
import { OperationRunner } from "./operations/runner";
import { SshPool } from "./ssh/pool";
import { createAdminSocketApp } from "./admin/socket-api";
import { createAccessState, createApp } from "./app";
import { ConfigError, parseConfig } from "./config";
import { AppError } from "./errors";
import { jsonLogger as logger } from "./logger";
import { openRuntime } from "./runtime";

// Parses config, builds the dependencies, listens; everything else lives in createApp().

const RESPONSE_DRAIN_MS = 3_000;

async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`reoclo: ${err.message}\n`);
    process.exitCode = 1;
    return;
  }

  // Until storage is open the admin socket only holds the lock; then it serves reoclo-admin.
  const admin: { fetch?: (req: Request) => Response | Promise<Response> } = {};
  const adminServer = createAdaptorServer({
    fetch: (req: Request) =>
      admin.fetch
        ? admin.fetch(req)
        : Response.json(
            { error: "service_unavailable", detail: "The service is starting." },
            { status: 503 },
          ),
  }) as Server;

  let runtime;
  try {
    runtime = await openRuntime(config, { role: "reoclo service", lockServer: adminServer, logger });
  } catch (err) {
    process.stderr.write(`reoclo: ${err instanceof AppError ? err.detail : (err as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  const accessState = createAccessState(runtime.database, logger);
  const pool = new SshPool();
  const runner = new OperationRunner(runtime.database.db, pool, logger, {
    outputCapBytes: config.outputCapBytes,
  });
  const app = createApp({
    config,
    database: runtime.database,
    secrets: runtime.secrets,
    logger,
    runner,
    ...accessState,
  });
  admin.fetch = createAdminSocketApp(
    { config, db: runtime.database.db, secrets: runtime.secrets, now: () => new Date() },
    logger,
  ).fetch;

  const server = createHttpServer(app.fetch);
  await listen(server, config.port, config.host);
  // SIGTERM: stop accepting, let running operations finish within the grace, settle the rest.
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal, grace_seconds: config.shutdownGraceSeconds });
    const closed = new Promise((resolve) => server.close(resolve));
    server.closeIdleConnections();
    await runner.shutdown(config.shutdownGraceSeconds * 1000);
    // Answers about the operations just settled still go out; then whatever is left is cut.
    await Promise.race([closed, new Promise((r) => setTimeout(r, RESPONSE_DRAIN_MS).unref())]);
    server.closeAllConnections();
    await closed;
    adminServer.closeAllConnections();
    accessState.limiter.close();
    await accessState.keyWatch.close();
    await accessState.audit.close();
    await pool.close();
    await runtime.close();
    logger.info("stopped");
  };
  const onSignal = (signal: string) => {
    shutdown(signal).catch((err: unknown) => {
      logger.error("shutdown failed", { error: String(err) });
      process.exitCode = 1;
    });
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));

  // Only once a signal would be handled: a supervisor may send one as soon as it reads this line.
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  logger.info("listening", {
    url: `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`,
    database: runtime.database.driver === "pglite" ? `embedded (${config.dataDir})` : "postgres",
  });
}

await main();
