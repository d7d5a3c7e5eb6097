import { API_BASE_PATH } from "@reoclo/protocol";
import { Hono } from "hono";
import { requestId, type RequestIdVariables } from "hono/request-id";
import type { Config } from "./config";
import type { ServiceContext } from "./context";
import type { DatabaseHandle } from "./db/database";
import { errorResponse, onAppError } from "./http/error-envelope";
import type { Logger } from "./logger";
import type { SecretBox } from "./secrets/secret-box";

export interface AppDeps {
  readonly config: Config;
  readonly database: DatabaseHandle;
  readonly secrets: SecretBox;
  readonly logger: Logger;
  readonly now?: () => Date;
}

export type AppEnv = { Variables: RequestIdVariables };

const READY_TIMEOUT_MS = 2_000;

/** Builds the HTTP app from its dependencies; main.ts only parses config, builds deps and listens. */
export function createApp(deps: AppDeps) {
  const ctx: ServiceContext = {
    config: deps.config,
    db: deps.database.db,
    secrets: deps.secrets,
    now: deps.now ?? (() => new Date()),
  };
  const app = new Hono<AppEnv>();
  app.use(requestId({ headerName: "X-Request-Id" }));
  app.onError(onAppError(deps.logger));
  app.notFound((c) => errorResponse(c, 404, "not_found", `No route for ${c.req.method} ${c.req.path}.`));

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    try {
      await withTimeout(deps.database.ping(), READY_TIMEOUT_MS);
      return c.json({ status: "ready", database: deps.database.driver, secrets: ctx.secrets.available });
    } catch {
      return errorResponse(c, 503, "database_unavailable", "The database does not answer.");
    }
  });

  // The automation API routes mount here (access pipeline, exec, operations…).
  app.route(API_BASE_PATH, new Hono<AppEnv>());
  return app;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timeout")), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
