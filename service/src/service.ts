import type { Server } from "node:http";
import { createAdminSocketApp } from "./admin/socket-api";
import { AuditWriter } from "./access/audit-writer";
import { KeyWatch } from "./access/key-watch";
import { AuthFailureLimiter, KeyRateLimiter, SignInLimiter } from "./access/rate-limit";
import { createApp, type AppDeps } from "./app";
import type { Config } from "./config";
import type { Logger } from "./logger";
import { OperationRunner, type RunnerOptions } from "./operations/runner";
import type { OperationServices } from "./operations/start";
import { maskSealer } from "./secrets/mask-sealer";
import { sshTargetFor } from "./servers/servers";
import { SshPool } from "./ssh/pool";
import { flushAllReleases } from "./ssh/remote-exec";
import type { Storage } from "./storage";

// The composition root: the one place the service's parts are built from config and storage,
// and the one place they are stopped, in order. main.ts, the tests and the benchmarks all build
// the service here.

export interface ServiceOptions {
  now?: () => Date;
  /** How often the audit buffer is written; tests flush it themselves. */
  auditFlushMs?: number;
  /** How often open event streams' keys are checked for a revocation. */
  keyWatchMs?: number;
  runner?: Partial<RunnerOptions>;
  /** How long close() lets running operations finish before it cancels them; default the config's. */
  shutdownGraceMs?: number;
  authFailures?: AuthFailureLimiter;
}

export interface Service {
  /** The HTTP app (health, readiness and the automation API). */
  readonly app: ReturnType<typeof createApp>;
  /** The admin socket's app, which reoclo-admin talks to. */
  readonly adminApp: ReturnType<typeof createAdminSocketApp>;
  readonly runner: OperationRunner;
  /** What the verbs run with (the admin socket's, and tests' calls of verbs). */
  readonly svc: OperationServices;
  readonly pool: SshPool;
  readonly deps: AppDeps;
  /**
   * A server whose connections close() takes care of: an `api` server stops accepting first and
   * its answers about operations settled at shutdown still go out; an `admin` server's
   * connections are cut before storage closes.
   */
  attach(server: Server, role: "api" | "admin"): void;
  /** Stops everything, once: see the order in the body. */
  close(): Promise<void>;
}

/** How long answers may still go out after running operations were settled at shutdown. */
const RESPONSE_DRAIN_MS = 3_000;

export function createService(
  config: Config,
  storage: Storage,
  logger: Logger,
  opts: ServiceOptions = {},
): Service {
  const { database, secrets } = storage;
  const now = opts.now ?? (() => new Date());
  const pool = new SshPool();
  const ctx = { config, db: database.db, secrets, now };
  // The runner keeps the real clock (heartbeats, the reconciler) even when a test moves `now`.
  const runner = new OperationRunner(database.db, pool, logger, {
    outputCapBytes: config.outputCapBytes,
    reattachBoundMs: config.reattachBoundSeconds * 1000,
    staleAfterMs: config.takeoverAfterSeconds * 1000,
    heartbeatMs: Math.min(5_000, (config.takeoverAfterSeconds * 1000) / 3),
    cancelOnShutdown: config.cancelOnShutdown,
    targets: (serverId) => sshTargetFor(ctx, serverId),
    sealer: maskSealer(secrets),
    ...opts.runner,
  });
  const deps: AppDeps = {
    config,
    database,
    secrets,
    logger,
    // Counters in the database when several instances may share it (postgres), in process memory
    // for the single embedded instance.
    limiter: new KeyRateLimiter(database, database.driver === "postgres" ? "database" : "memory"),
    audit: new AuditWriter(database, logger, opts.auditFlushMs),
    keyWatch: new KeyWatch(database, logger, { intervalMs: opts.keyWatchMs, now: opts.now }),
    authFailures: opts.authFailures ?? new AuthFailureLimiter(),
    signIn: new SignInLimiter(database, database.driver === "postgres" ? "database" : "memory"),
    runner,
    now,
  };
  const app = createApp(deps);
  const svc: OperationServices = { ctx, runner };
  const adminApp = createAdminSocketApp(svc, logger);
  const servers: { server: Server; role: "api" | "admin" }[] = [];
  const graceMs = opts.shutdownGraceMs ?? config.shutdownGraceSeconds * 1000;

  let closing: Promise<void> | undefined;
  const close = async () => {
    const api = servers.filter((s) => s.role === "api").map((s) => s.server);
    // 1. Stop accepting requests; idle keep-alive connections go now.
    const closed = Promise.all(api.map((s) => new Promise((resolve) => s.close(resolve))));
    for (const s of api) s.closeIdleConnections();
    // 2. Let running operations finish within the grace; cancel and settle the rest.
    await runner.shutdown(graceMs);
    // 3. Answers about the operations just settled still go out; then whatever is left is cut.
    await Promise.race([closed, new Promise((r) => setTimeout(r, RESPONSE_DRAIN_MS).unref())]);
    for (const s of api) s.closeAllConnections();
    await closed;
    for (const s of servers) if (s.role === "admin") s.server.closeAllConnections();
    // 4. The parts that write: rate counters, key watch, the audit buffer (flushed), SSH, storage.
    deps.limiter.close();
    await deps.keyWatch.close();
    await deps.audit.close();
    await flushAllReleases(pool); // hosts may drop the copies of operations that ended here
    await pool.close();
    await storage.close();
  };

  return {
    app,
    adminApp,
    runner,
    svc,
    pool,
    deps,
    attach: (server, role) => void servers.push({ server, role }),
    close: () => (closing ??= close()),
  };
}
