// A child process for the access bench: the real app (real pipeline, real database) and a bare
// Hono route, each on its own loopback port. Prints {"ours", "bare", "key"} once listening.
import type { Server } from "node:http";
import { Hono } from "hono";
import { testConfig } from "@reoclo/service/testing";
import { openDatabase } from "../../service/src/db/database";
import { automationKeys } from "../../service/src/db/schema";
import { createHttpServer, listen } from "../../service/src/http/server";
import { createKey } from "../../service/src/keys/keys";
import { silentLogger } from "../../service/src/logger";
import { SecretBox } from "../../service/src/secrets/secret-box";
import { createService } from "../../service/src/service";

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
const service = createService(config, { database, secrets, close: () => database.close() }, silentLogger, {
  shutdownGraceMs: 0,
});
const app = service.app;
const bare = new Hono().get("/noop", (c) => c.json({ ok: true }));

const listenOn = (server: Server) => listen(server, 0, "127.0.0.1");
const oursServer = createHttpServer(app.fetch);
service.attach(oursServer, "api");
const ours = await listenOn(oursServer);
const bareServer = await listenOn(createHttpServer(bare.fetch));
process.stdout.write(JSON.stringify({ ours, bare: bareServer, key }) + "\n");
process.on("SIGTERM", () => {
  void service.close().then(() => process.exit(0));
});
