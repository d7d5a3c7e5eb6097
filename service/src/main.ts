import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { HEADERS } from "@reoclo/protocol";
import { createHttpServer, listen } from "./http/server";
import {
  ConfigError,
  databaseProblem,
  hostPort,
  listenProblem,
  maskDatabaseUrl,
  parseConfig,
  type Config,
} from "./config";
import { adminSocketPath, socketIsLive } from "./db/data-dir";
import { ServiceError } from "./errors";
import { jsonLogger as logger } from "./logger";
import { createService } from "./service";
import { openStorage } from "./storage";

// Parses config, listens, opens storage, builds the service (createService) and stops it on a
// signal; everything else lives in the service.

type Fetch = Parameters<typeof createHttpServer>[0];

/** Until storage is open: /healthz says the process is up, everything else is 503 in the envelope. */
const answerWhileStarting: Fetch = (req: Request) => {
  const requestId = randomUUID();
  if (new URL(req.url).pathname === "/healthz") {
    return Response.json({ status: "starting" }, { headers: { [HEADERS.requestId]: requestId } });
  }
  return Response.json(
    {
      error: "service_unavailable",
      detail: "The service is starting: its storage is not open yet.",
      request_id: requestId,
    },
    { status: 503, headers: { [HEADERS.requestId]: requestId, [HEADERS.retryAfter]: "1" } },
  );
};

/** One line for a failed start, naming the setting to change where there is one; never a password. */
function startupProblem(err: unknown, config: Config): string {
  if (err instanceof ServiceError) return err.detail;
  const described = config.databaseUrl ? databaseProblem(err, config.databaseUrl) : undefined;
  if (described) return described;
  const message = err instanceof Error ? err.message : String(err);
  return config.databaseUrl
    ? message.split(config.databaseUrl).join(maskDatabaseUrl(config.databaseUrl))
    : message;
}

/** Listens on HOST:PORT and resolves with the port; when it cannot, prints why as the setting to change. */
async function listenOrSayWhy(server: Server, config: Config): Promise<number | undefined> {
  try {
    return await listen(server, config.port, config.host);
  } catch (err) {
    let problem = listenProblem(err, config) ?? `cannot listen: ${(err as Error).message}`;
    // `npm start` twice: say what holds the port, since that is what to stop.
    if (!config.databaseUrl && (await socketIsLive(adminSocketPath(config.dataDir)))) {
      problem += `; a reoclo service already runs on the data directory ${config.dataDir}: stop it first`;
    }
    process.stderr.write(`reoclo: ${problem}\n`);
    return undefined;
  }
}

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

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

  // The HTTP port before the data directory: a port in use stops the start with nothing created.
  let serve: Fetch = answerWhileStarting;
  const server = createHttpServer((req, env) => serve(req, env));
  const port = await listenOrSayWhy(server, config);
  if (port === undefined) {
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

  let storage;
  try {
    storage = await openStorage(config, { role: "reoclo service", lockServer: adminServer, logger });
  } catch (err) {
    await closeServer(server);
    process.stderr.write(`reoclo: ${startupProblem(err, config)}\n`);
    process.exitCode = 1;
    return;
  }
  const service = createService(config, storage, logger);
  service.attach(server, "api");
  service.attach(adminServer, "admin");
  admin.fetch = service.adminApp.fetch;
  serve = (req, env) => service.app.fetch(req, env);

  // SIGTERM: stop accepting, let running operations finish within the grace, settle the rest.
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal, grace_seconds: config.shutdownGraceSeconds });
    await service.close();
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
  logger.info("listening", {
    url: `http://${hostPort(config.host, port)}`,
    database: storage.database.driver === "pglite" ? `embedded (${config.dataDir})` : "postgres",
  });
}

await main();
