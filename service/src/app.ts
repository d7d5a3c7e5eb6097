import { API_BASE_PATH, MANAGEMENT_BASE_PATH } from "@reoclo/protocol";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { RequestIdVariables } from "hono/request-id";
import { assignRequestId } from "./http/request-id";
import type { AuditWriter } from "./access/audit-writer";
import { parseCidrs } from "./access/client-ip";
import type { KeyWatch } from "./access/key-watch";
import type { AccessDeps } from "./access/pipeline";
import type { AuthFailureLimiter, KeyRateLimiter, SignInLimiter } from "./access/rate-limit";
import { keyRoutes } from "./api/key";
import { oidcRoutes } from "./api/oidc";
import { applicationRoutes } from "./api/applications";
import { operationRoutes } from "./api/operations";
import { registryRoutes } from "./api/registry";
import { MANAGEMENT_ROUTES } from "./api/management";
import { managementRouter } from "./api/management/router";
import { docsRoutes } from "./api/docs";
import { dashboardRoutes } from "./dashboard";
import { buildOpenApiDocument } from "./openapi/document";
import type { OperationRunner } from "./operations/runner";
import type { Config } from "./config";
import type { DatabaseHandle } from "./db/database";
import { errorResponse, onServiceError } from "./http/error-envelope";
import type { Logger } from "./logger";
import type { SecretBox } from "./secrets/secret-box";
import { TokenExchange } from "./trust/exchange";
import { IssuerKeys } from "./trust/issuer-keys";

export interface AppDeps {
  readonly config: Config;
  readonly database: DatabaseHandle;
  readonly secrets: SecretBox;
  readonly logger: Logger;
  readonly limiter: KeyRateLimiter;
  readonly audit: AuditWriter;
  /** Ends the event streams of keys revoked or expired while they are open. */
  readonly keyWatch: KeyWatch;
  readonly authFailures: AuthFailureLimiter;
  /** Sign-in attempts per client address (spec §11), shared by instances on one PostgreSQL. */
  readonly signIn: SignInLimiter;
  /** Runs operations on hosts; shared by every route that starts one. */
  readonly runner: OperationRunner;
  readonly now: () => Date;
  /** OIDC issuers' signing keys, cached (spec §12); a fresh cache when absent. */
  readonly issuerKeys?: IssuerKeys;
}

export type AppEnv = { Variables: RequestIdVariables };

/** Larger than any valid request (an 8 KiB command plus 64 KiB of env), small enough to refuse floods. */
export const MAX_BODY_BYTES = 256 * 1024;
const READY_TIMEOUT_MS = 2_000;

export function createAccessDeps(deps: AppDeps): AccessDeps {
  return {
    db: deps.database.db,
    limiter: deps.limiter,
    audit: deps.audit,
    keyWatch: deps.keyWatch,
    authFailures: deps.authFailures,
    trustedProxies: parseCidrs(deps.config.trustedProxies),
    now: deps.now,
    logger: deps.logger,
  };
}

/** Builds the HTTP app from its dependencies (createService in service.ts builds those). */
export function createApp(deps: AppDeps) {
  const access = createAccessDeps(deps);
  const app = new Hono<AppEnv>();
  app.use(assignRequestId);
  app.onError(onServiceError(deps.logger));
  // Its own code, so a wrong base URL is not mistaken for an unknown server or operation (issue 14).
  app.notFound((c) => {
    const asked = `No route for ${c.req.method} ${c.req.path}`;
    const automation = `the automation API lives under ${API_BASE_PATH} (e.g. POST ${API_BASE_PATH}/exec)`;
    // Under /api but not the automation API: the management API, whose routes its description lists.
    const management =
      c.req.path.startsWith(`${MANAGEMENT_BASE_PATH}/`) && !c.req.path.startsWith(`${API_BASE_PATH}/`)
        ? `: the management API's routes are listed at ${MANAGEMENT_BASE_PATH}/docs, and ${automation}.`
        : `: ${automation}.`;
    return errorResponse(c, 404, "route_not_found", asked + management);
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    try {
      await withTimeout(deps.database.ping(), READY_TIMEOUT_MS);
    } catch {
      return errorResponse(c, 503, "database_unavailable", "The database does not answer.");
    }
    // Without a master key every secret-using request fails: keep the load balancer away. The
    // answer is unauthenticated, so it says no more than that (the start-up log says why).
    if (!deps.secrets.available) return errorResponse(c, 503, "service_unavailable", "not ready");
    return c.json({ status: "ready", database: deps.database.driver });
  });

  const api = new Hono<AppEnv>();
  const limitBody = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) =>
      errorResponse(
        c,
        413,
        "payload_too_large",
        `The request body is larger than ${MAX_BODY_BYTES / 1024} KiB.`,
      ),
  });
  // GET and HEAD carry no body; skipping them keeps the adapter's lightweight request object.
  api.use((c, next) => (c.req.method === "GET" || c.req.method === "HEAD" ? next() : limitBody(c, next)));
  api.route("/", keyRoutes(access));
  const svc = {
    ctx: { config: deps.config, db: deps.database.db, secrets: deps.secrets, now: access.now },
    runner: deps.runner,
  };
  api.route(
    "/",
    oidcRoutes({ ...access, exchange: new TokenExchange(svc.ctx, deps.issuerKeys ?? new IssuerKeys()) }),
  );
  api.route("/", operationRoutes({ access, svc }));
  api.route("/", applicationRoutes({ access, svc }));
  api.route("/", registryRoutes({ access, svc }));
  app.route(API_BASE_PATH, api);

  // The management API (spec §11): people and integration keys, through the same verbs.
  const management = new Hono<AppEnv>();
  management.use((c, next) =>
    c.req.method === "GET" || c.req.method === "HEAD" ? next() : limitBody(c, next),
  );
  management.route(
    "/",
    managementRouter(
      { access: { ...access, config: deps.config }, svc: { ...svc, signIn: deps.signIn } },
      MANAGEMENT_ROUTES,
    ),
  );
  app.route(MANAGEMENT_BASE_PATH, management);

  // The contract of both APIs (spec §11), from the schemas the routes above validate with.
  app.route(
    MANAGEMENT_BASE_PATH,
    docsRoutes(() =>
      buildOpenApiDocument({
        managementRoutes: MANAGEMENT_ROUTES,
        maxTimeoutSeconds: deps.config.maxTimeoutSeconds,
      }),
    ),
  );

  // The dashboard (spec §11), last: its pages call the same verbs as the management API above.
  const dashboard = new Hono<AppEnv>();
  dashboard.use((c, next) =>
    c.req.method === "GET" || c.req.method === "HEAD" ? next() : limitBody(c, next),
  );
  dashboard.route(
    "/",
    dashboardRoutes({ access: { ...access, config: deps.config }, svc: { ...svc, signIn: deps.signIn } }),
  );
  app.route("/", dashboard);
  return app;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timeout")), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
