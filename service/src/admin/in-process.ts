import net from "node:net";
import type { Config } from "../config";
import type { Logger } from "../logger";
import { OperationRunner } from "../operations/runner";
import { SshPool } from "../ssh/pool";
import { openStorage } from "../storage";
import { runAdminVerb } from "./run-verb";
import { orgId, type Executor } from "./executor";

// reoclo-admin on the service's storage, in this process: when no service owns the embedded
// database, or always on PostgreSQL. It opens only storage that exists (issue 14), and an
// operation it starts (a deploy) runs here: close() waits for it, up to the longest timeout.

export async function inProcessExecutor(config: Config, warn: (message: string) => void): Promise<Executor> {
  const logger: Logger = {
    info: () => undefined,
    warn: (msg) => warn(msg),
    error: (msg, fields) => warn(`${msg}${fields ? ` ${JSON.stringify(fields)}` : ""}`),
  };
  const storage = await openStorage(config, {
    role: "reoclo-admin",
    lockServer: net.createServer((s) => s.end()),
    logger,
    existingOnly: true,
  });
  const pool = new SshPool();
  const db = storage.database.db;
  const runner = new OperationRunner(db, pool, logger, { outputCapBytes: config.outputCapBytes });
  const svc = { ctx: { config, db, secrets: storage.secrets, now: () => new Date() }, runner };
  const call = (verb: string, input: Record<string, unknown>) => runAdminVerb(svc, verb, input);
  return {
    call,
    tenantId: (org) => orgId(call, org),
    async close() {
      await runner.shutdown(config.maxTimeoutSeconds * 1000);
      await pool.close();
      await storage.close();
    },
  };
}
