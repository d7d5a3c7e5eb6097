// Header names and route paths typed once, so a typo is a compile error, not a silent miss.
import { z } from "zod";
import { API_BASE_PATH, IDEMPOTENCY_KEY_MAX_CHARS } from "./limits.js";
import { OIDC_EXCHANGE_PATH } from "./oidc.js";

export const HEADERS = {
  authorization: "Authorization",
  accept: "Accept",
  contentType: "Content-Type",
  requestId: "X-Request-Id",
  /** draft-ietf-httpapi-idempotency-key-header */
  idempotencyKey: "Idempotency-Key",
  idempotentReplayed: "Idempotent-Replayed",
  /** draft-ietf-httpapi-ratelimit-headers */
  rateLimitLimit: "RateLimit-Limit",
  rateLimitRemaining: "RateLimit-Remaining",
  rateLimitReset: "RateLimit-Reset",
  retryAfter: "Retry-After",
  /** SSE reconnection, per the WHATWG HTML server-sent events section. */
  lastEventId: "Last-Event-ID",
  /** Ours: the operation an /exec answer (JSON or event stream) belongs to, sent before any event. */
  operationId: "X-Operation-Id",
  userAgent: "User-Agent",
  /** Believed only from the service's trusted proxies (spec §2). */
  forwardedFor: "X-Forwarded-For",
  /** Believed only from trusted proxies: the session cookie is `Secure` behind https. */
  forwardedProto: "X-Forwarded-Proto",
  /** The management API also takes an integration key here (seed 000). */
  apiKey: "X-API-Key",
  origin: "Origin",
  secFetchSite: "Sec-Fetch-Site",
} as const;

/** Prefix of the management API's routes (spec §11). */
export const MANAGEMENT_BASE_PATH = "/api";

export const CONTENT_TYPE_JSON = "application/json";
export const CONTENT_TYPE_EVENT_STREAM = "text/event-stream";

/** `User-Agent` values of the published v1 actions (spec §7); the audit log keeps them. */
export const PUBLISHED_USER_AGENTS = {
  run: "reoclo-github-action",
  checkout: "reoclo-github-action-checkout",
  dockerAuth: "reoclo-docker-auth-action",
} as const;

/** Route paths relative to {@link API_BASE_PATH}. */
export const ROUTES = {
  exec: "/exec",
  deploy: "/deploy",
  restart: "/restart",
  reboot: "/reboot",
  registryLogin: "/registry-auth/login",
  registryLogout: "/registry-auth/logout",
  operations: "/operations",
  operation: "/operations/:operation_id",
  operationEvents: "/operations/:operation_id/events",
  operationCancel: "/operations/:operation_id/cancel",
  oidcExchange: OIDC_EXCHANGE_PATH,
} as const;

/** Absolute path of one operation's resource; the id is URL-encoded because it is caller data. */
export function operationPath(operationId: string, suffix: "" | "/events" | "/cancel" = ""): string {
  return `${API_BASE_PATH}/operations/${encodeURIComponent(operationId)}${suffix}`;
}

/** Printable ASCII without spaces: keys are echoed in logs and stored as-is. */
export const idempotencyKeySchema = z
  .string()
  .min(1, { error: "The Idempotency-Key header must not be empty." })
  .max(IDEMPOTENCY_KEY_MAX_CHARS, {
    error: `The Idempotency-Key header must be at most ${IDEMPOTENCY_KEY_MAX_CHARS} characters long.`,
  })
  .regex(/^[\x21-\x7e]+$/, {
    error: "The Idempotency-Key header may contain only printable ASCII characters without spaces.",
  });
