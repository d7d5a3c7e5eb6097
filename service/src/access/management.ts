import { HEADERS, INTEGRATION_KEY_PREFIX, KEY_PREFIX } from "@reoclo/protocol";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { RequestIdVariables } from "hono/request-id";
import type { Config } from "../config";
import { ServiceError } from "../errors";
import { isWellFormedIntegrationKey } from "../keys/key-format";
import { touchIntegrationKey, verifyIntegrationKey } from "../keys/integration-lookup";
import { findSession, SESSION_COOKIE } from "../people/sessions";
import type { AuditEvent } from "./audit-writer";
import { authBudgetKey, resolveClientIp } from "./client-ip";
import { orUnavailable, refuseWhileAuthBudgetSpent, type AccessDeps } from "./pipeline";
import type { Principal, UserPrincipal } from "./principal";

// Who calls the management API (spec §11): an integration key (`Authorization: Bearer rk_t_…`
// or `X-API-Key: rk_t_…`) or a signed-in person (the session cookie). Automation keys never work
// here. Writes made with the cookie must come from the service's own pages (the Origin check).

export interface ManagementAccessDeps extends AccessDeps {
  readonly config: Pick<Config, "sessionIdleMinutes" | "sessionMaxHours">;
}

/** What a route of the management API knows of its caller. */
export interface Caller {
  readonly principal: Principal;
  readonly clientIp: string | undefined;
  readonly userAgent: string | undefined;
  readonly requestId: string;
}

export type ManagementEnv = { Variables: RequestIdVariables & { caller: Caller } };

const UNAUTHORIZED =
  "Sign in, or send an integration key as Authorization: Bearer rk_t_… or X-API-Key: rk_t_….";
const AUTOMATION_KEY_HERE = `Automation keys (${KEY_PREFIX}…) work only on the automation API (/api/automation/v1); the management API takes an integration key (${INTEGRATION_KEY_PREFIX}…) or a signed-in session.`;

type Bindings = { incoming?: { socket?: { remoteAddress?: string } } };

/** The client's address as the access pipeline resolves it (trusted proxies, IPv4-mapped). */
export function clientAddress(c: Context, deps: Pick<AccessDeps, "trustedProxies">) {
  const peerText = (c.env as Bindings | undefined)?.incoming?.socket?.remoteAddress;
  return resolveClientIp(peerText, c.req.header(HEADERS.forwardedFor), deps.trustedProxies);
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Refuses a browser write that does not come from this service's own pages: an `Origin` of
 * another host, `null`, or a `Sec-Fetch-Site` that says cross-site. Requests without either
 * header are not from a browser's cross-site form or fetch.
 */
export function checkSameOrigin(c: Context): void {
  const origin = c.req.header(HEADERS.origin);
  const site = c.req.header(HEADERS.secFetchSite);
  let sameHost = true;
  if (origin !== undefined) {
    try {
      sameHost = origin !== "null" && new URL(origin).host === (c.req.header("host") ?? "");
    } catch {
      sameHost = false;
    }
  }
  if (!sameHost || (site !== undefined && site !== "same-origin" && site !== "none"))
    throw new ServiceError(
      "forbidden",
      "This request comes from another site's page; the service accepts browser writes only from its own pages.",
    );
}

/** Sets `caller` for the routes after it, or answers 401. */
export function managementAccess(deps: ManagementAccessDeps): MiddlewareHandler<ManagementEnv> {
  return async function managementCaller(c, next) {
    const address = clientAddress(c, deps);
    const clientIp = address.client?.toString();
    const userAgent = c.req.header(HEADERS.userAgent)?.slice(0, 512);
    const requestId = c.get("requestId");
    const event: AuditEvent = {
      outcome: "denied",
      reason: "",
      method: c.req.method,
      path: c.req.path.slice(0, 2048),
      peerIp: address.peer ?? null,
      clientIp: clientIp ?? null,
      userAgent: userAgent ?? null,
      requestId,
    };
    const budgetKey = authBudgetKey(address.client) ?? address.peer ?? "unknown";
    const refuse = (reason: string, extra: Partial<AuditEvent> = {}, detail = UNAUTHORIZED): never => {
      deps.audit.recordDeferred({ ...event, ...extra, reason });
      throw new ServiceError("unauthorized", detail);
    };

    const presented = presentedKey(c);
    if (presented !== undefined) {
      if (presented.startsWith(KEY_PREFIX))
        return refuse("automation_key_on_management_api", {}, AUTOMATION_KEY_HERE);
      if (!isWellFormedIntegrationKey(presented)) return refuse("malformed_key");
      await refuseWhileAuthBudgetSpent(deps, c, budgetKey, event);
      const now = deps.now();
      const auth = await orUnavailable(() => verifyIntegrationKey(deps.db, presented, now));
      if (!auth.ok) {
        await deps.authFailures.recordFailure(budgetKey);
        return refuse(auth.reason, {
          orgId: auth.orgId ?? null,
          actor: auth.keyId ? `integration_key:${auth.keyId}` : null,
        });
      }
      await touchIntegrationKey(deps.db, auth, clientIp, now).catch((err: unknown) =>
        deps.logger.warn("could not record key use", { key_id: auth.principal.keyId, error: String(err) }),
      );
      c.set("caller", { principal: auth.principal, clientIp, userAgent, requestId });
      return next();
    }

    const token = getCookie(c, SESSION_COOKIE);
    if (token === undefined) return refuse("missing_credentials");
    const principal = await sessionPrincipal(deps, token);
    if (!principal) return refuse("unknown_or_ended_session");
    if (!SAFE_METHODS.has(c.req.method)) {
      try {
        checkSameOrigin(c);
      } catch (err) {
        deps.audit.recordDeferred({
          ...event,
          reason: "cross_site_request",
          orgId: principal.orgId,
          actor: `user:${principal.userId}`,
        });
        throw err;
      }
    }
    c.set("caller", { principal, clientIp, userAgent, requestId });
    return next();
  };
}

/** The signed-in person of a session cookie's token (the management API's and the dashboard's). */
export async function sessionPrincipal(
  deps: Pick<ManagementAccessDeps, "db" | "config" | "now">,
  token: string,
): Promise<UserPrincipal | undefined> {
  const session = await orUnavailable(() => findSession(deps.db, token, deps.config, deps.now()));
  if (!session) return undefined;
  return {
    kind: "user",
    orgId: session.orgId,
    userId: session.userId,
    email: session.email,
    role: session.role,
    sessionId: session.sessionId,
    mustChangePassword: session.mustChangePassword,
  };
}

/** The key of `X-API-Key` or `Authorization: Bearer`, if the request carries one. */
function presentedKey(c: Context): string | undefined {
  const apiKey = c.req.header(HEADERS.apiKey)?.trim();
  if (apiKey) return apiKey;
  const auth = c.req.header(HEADERS.authorization)?.trim();
  if (!auth) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(auth);
  return m?.[1] ?? "";
}
