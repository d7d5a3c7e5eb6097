// A child process for the access bench: the real app (real pipeline, real database) and a bare
// Hono route, each on its own loopback port. Prints {"ours", "bare", "key"} once listening.
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { Hono } from "hono";
import { testConfig } from "@reoclo/service/testing";
import { createAccessState, createApp } from "../../service/src/app";
import { openDatabase } from "../../service/src/db/database";
import { automationKeys } from "../../service/src/db/schema";
import { createHttpServer, listen } from "../../service/src/http/server";
import { createKey } from "../../service/src/keys/keys";
import { silentLogger } from "../../service/src/logger";
import { OperationRunner } from "../../service/src/operations/runner";
import { SshPool } from "../../service/src/ssh/pool";
import { SecretBox } from "../../service/src/secrets/secret-box";

const databaseUrl = process.argv[2] || undefined;
const database = await openDatabase({ databaseUrl, maxConnections: 10 });
await database.migrate();
const config = testConfig();
const secrets = new SecretBox(undefined);
const ctx = { config, db: database.db, secrets, now: () => new Date() };
const { key } = await createKey(ctx, {
  name: "bench",
  operations: ["exec"],
  all_servers: true,
  rate_limit_per_minute: 100_000,
  rate_limit_per_hour: 1_000_000,
});
// Far above what the bench can send, so every authenticated request takes the full allowed path.
await database.db.update(automationKeys).set({ rateLimitPerMinute: 1e9, rateLimitPerHour: 1e9 });
const state = createAccessState(database, silentLogger);
const runner = new OperationRunner(database.db, new SshPool(), silentLogger, {
  outputCapBytes: config.outputCapBytes,
});
const app = createApp({ config, database, secrets, logger: silentLogger, runner, ...state });
const bare = new Hono().get("/noop", (c) => c.json({ ok: true }));

const listenOn = async (server: Server) => {
  await listen(server, 0, "127.0.0.1");
  return (server.address() as AddressInfo).port;
};
const ours = await listenOn(createHttpServer(app.fetch));
const bareServer = await listenOn(createHttpServer(bare.fetch));
process.stdout.write(JSON.stringify({ ours, bare: bareServer, key }) + "\n");
process.on("SIGTERM", () => {
  void state.keyWatch
    .close()
    .then(() => state.audit.close())
    .then(() => database.close())
    .then(() => process.exit(0));
});
