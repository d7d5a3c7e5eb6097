import { HEADERS, isUuid, RUN_ID_MAX_CHARS, zodIssuesToFields, type OperationType } from "@reoclo/protocol";
import { eq } from "drizzle-orm";
import type { Context, MiddlewareHandler } from "hono";
import type { RequestIdVariables } from "hono/request-id";
import type { z } from "zod";
import type { Database } from "../db/database";
import { automationKeys } from "../db/schema";
import { ServiceError } from "../errors";
import type { AutomationKeyRow } from "../keys/lookup";
import type { Logger } from "../logger";
import { describeDatabaseError } from "../db/errors";
import type { AuditEvent, AuditWriter } from "./audit-writer";
import { parseBearer, verifyAutomationKey } from "./authenticate";
import { authBudgetKey, ipInCidrs, parseCidrs, resolveClientIp, type ParsedCidr } from "./client-ip";
import type { KeyWatch } from "./key-watch";
import type { AuthFailureLimiter, KeyRateLimiter } from "./rate-limit";
import { requireApplication, requireCredential, requireServer } from "./scope";

// The access pipeline of spec §2, in its order; the first failure answers, and every decision
// is audited before any work starts.

export interface AccessDeps {
  readonly db: Database;
  readonly limiter: KeyRateLimiter;
  readonly authFailures: AuthFailureLimiter;
  readonly audit: AuditWriter;
  /** A key is checked once per request; this ends its event streams that outlive a revocation. */
  readonly keyWatch: KeyWatch;
  readonly trustedProxies: readonly ParsedCidr[];
  readonly now: () => Date;
  readonly logger: Logger;
}

export interface Access {
  readonly key: AutomationKeyRow;
  readonly clientIp: string | undefined;
  readonly auditId: number;
  readonly serverId: string | undefined;
}

export type AccessEnv<T> = { Variables: RequestIdVariables & { access: Access; input: T } };

export interface AccessRule<T> {
  /** Operation scope checked at step 5; null for reads, which any key of the organisation may do. */
  readonly operation: OperationType | null;
  /** Body schema for step 7; absent for requests without a body. */
  readonly body?: z.ZodType<T>;
}

const UNAUTHORIZED =
  "Missing or invalid automation key: send Authorization: Bearer rca_… with an active key.";
const LAST_USED_WRITE_INTERVAL_MS = 60_000;

type Bindings = { incoming?: { socket?: { remoteAddress?: string } } };

export function automationAccess<T = undefined>(
  deps: AccessDeps,
  rule: AccessRule<T>,
): MiddlewareHandler<AccessEnv<T>> {
  return async function accessPipeline(c, next) {
    const peerText = (c.env as Bindings | undefined)?.incoming?.socket?.remoteAddress;
    const address = resolveClientIp(peerText, c.req.header(HEADERS.forwardedFor), deps.trustedProxies);
    const clientIp = address.client?.toString();
    const event: AuditEvent = {
      outcome: "denied",
      reason: "",
      operation: rule.operation,
      method: c.req.method,
      path: rawPath(c.req.url),
      peerIp: address.peer ?? null,
      clientIp: clientIp ?? null,
      userAgent: c.req.header(HEADERS.userAgent)?.slice(0, 512) ?? null,
      requestId: c.get("requestId"),
    };
    const budgetKey = authBudgetKey(address.client) ?? address.peer ?? "unknown";

    // Steps 1–2: the key. Malformed keys cost no database work at all.
    const bearer = parseBearer(c.req.header(HEADERS.authorization));
    if ("reason" in bearer) {
      deps.audit.recordDeferred({ ...event, reason: bearer.reason });
      throw new ServiceError("unauthorized", UNAUTHORIZED);
    }
    // Only well-formed keys cost a lookup, so only their failures are budgeted per address. The
    // budget is checked before the lookup and charged on failure: a burst can overdraw it by what
    // is in flight, but valid keys are never refused because others are busy from the same address.
    await refuseWhileAuthBudgetSpent(deps, c, budgetKey, event);
    const auth = await orUnavailable(() => verifyAutomationKey(deps.db, bearer.key, deps.now()));
    if (!auth.ok) {
      await deps.authFailures.recordFailure(budgetKey);
      await denyAudited(deps, { ...event, reason: auth.reason, keyId: auth.key?.id, orgId: auth.key?.orgId });
      throw new ServiceError("unauthorized", UNAUTHORIZED);
    }
    const key = auth.key;
    // A key minted from an OIDC token (spec §12): its verified claims go on every row, beside what the body claims.
    Object.assign(event, { keyId: key.id, orgId: key.orgId, runContextVerified: key.runContextVerified });

    // Step 3: IP allowlist.
    if (key.allowedCidrs.length > 0 && !ipInCidrs(address.client, parseCidrs(key.allowedCidrs))) {
      await deps.authFailures.recordFailure(budgetKey);
      await denyAudited(deps, { ...event, reason: "ip_not_allowed" });
      throw new ServiceError(
        "ip_not_allowed",
        `Requests from ${clientIp ?? "this address"} are not allowed for this automation key.`,
      );
    }

    // Step 4: rate limit; the headers go on every authenticated answer from here on.
    const rate = await orUnavailable(() =>
      deps.limiter.countRequest(key.id, { perMinute: key.rateLimitPerMinute, perHour: key.rateLimitPerHour }),
    );
    c.header(HEADERS.rateLimitLimit, String(rate.limit));
    c.header(HEADERS.rateLimitRemaining, String(rate.remaining));
    c.header(HEADERS.rateLimitReset, String(rate.resetSeconds));
    if (!rate.allowed) {
      c.header(HEADERS.retryAfter, String(rate.resetSeconds));
      await denyAudited(deps, { ...event, reason: "rate_limited" });
      throw new ServiceError(
        "rate_limited",
        `Rate limit of ${rate.limit} requests reached for this key; retry in ${rate.resetSeconds} s.`,
      );
    }

    // Step 5: operation scope.
    if (rule.operation && !key.operations.includes(rule.operation)) {
      await denyAudited(deps, { ...event, reason: "operation_not_allowed" });
      throw new ServiceError(
        "operation_not_allowed",
        `This automation key is not allowed to run "${rule.operation}".`,
      );
    }

    // Steps 6–7: targets named in the body, then the body itself.
    let input: unknown = undefined;
    let serverId: string | undefined;
    if (rule.body) {
      const raw = await readJson(c);
      if (raw === MALFORMED) {
        await denyAudited(deps, { ...event, reason: "malformed_json" });
        throw new ServiceError("malformed_json", "The request body is not valid JSON.");
      }
      if (raw === TOO_DEEP) {
        await denyAudited(deps, { ...event, reason: "validation" });
        throw new ServiceError(
          "validation",
          `The request body is nested more than ${MAX_JSON_DEPTH} levels deep; no field of this API needs that.`,
          { body: [`is nested more than ${MAX_JSON_DEPTH} levels deep`] },
        );
      }
      const body = (raw && typeof raw === "object" && !Array.isArray(raw) ? raw : {}) as Record<
        string,
        unknown
      >;
      Object.assign(event, claimedRunInfo(body));
      try {
        if (isUuid(body.server_id)) {
          const id = body.server_id.toLowerCase();
          event.serverId = serverId = id;
          await orUnavailable(() => requireServer(deps.db, key, id));
        }
        if (isUuid(body.credential_id)) {
          const id = body.credential_id.toLowerCase();
          event.credentialId = id;
          await orUnavailable(() => requireCredential(deps.db, key, id));
        }
        if (isUuid(body.application_id)) {
          const id = body.application_id.toLowerCase();
          event.applicationId = id;
          event.serverId = serverId = await orUnavailable(() => requireApplication(deps.db, key, id));
        }
      } catch (err) {
        if (err instanceof ServiceError) await denyAudited(deps, { ...event, reason: err.code });
        throw err;
      }
      const parsed = rule.body.safeParse(raw);
      if (!parsed.success) {
        await denyAudited(deps, { ...event, reason: "validation" });
        const fields = zodIssuesToFields(parsed.error);
        const [field, problems] = Object.entries(fields)[0] ?? ["body", ["is invalid"]];
        throw new ServiceError("validation", `Invalid ${field}: ${problems[0] ?? "is invalid"}`, fields);
      }
      input = parsed.data;
    }

    // Allowed: the audit row must exist before any work starts.
    let auditId: number;
    try {
      auditId = await deps.audit.record({ ...event, outcome: "allowed", reason: "allowed" });
    } catch (err) {
      deps.logger.error("audit write failed; request refused", {
        request_id: event.requestId,
        error: describeDatabaseError(err),
      });
      // The refusal itself is recorded once the database answers again.
      await deps.audit.recordOrRetain({ ...event, reason: "audit_unavailable" });
      throw new ServiceError(
        "audit_unavailable",
        "The audit log cannot be written, so nothing was run; retry shortly.",
      );
    }
    await touchLastUsed(deps, key, clientIp);
    c.set("access", { key, clientIp, auditId, serverId });
    c.set("input", input as T);
    await next();
  };
}

/**
 * 429 (audited, folded) while the client address has spent its budget of failed authentications;
 * shared by both APIs, whose keys cost a lookup only when they are well formed.
 */
export async function refuseWhileAuthBudgetSpent(
  deps: Pick<AccessDeps, "authFailures" | "audit">,
  c: Context,
  budgetKey: string,
  event: AuditEvent,
): Promise<void> {
  const blocked = await deps.authFailures.blockedFor(budgetKey);
  if (blocked === 0) return;
  deps.audit.recordDeferred({ ...event, reason: "auth_rate_limited" });
  c.header(HEADERS.retryAfter, String(blocked));
  throw new ServiceError(
    "rate_limited",
    `Too many failed authentications from this address; retry in ${blocked} s.`,
  );
}

/** A database that fails mid-request is a dependency that is down (503), never a 500. */
export async function orUnavailable<R>(fn: () => Promise<R>): Promise<R> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ServiceError) throw err;
    throw new ServiceError("database_unavailable", "The database does not answer; retry shortly.");
  }
}

/** The request is refused anyway; a database that is down only delays the row. */
async function denyAudited(deps: AccessDeps, event: AuditEvent): Promise<void> {
  await deps.audit.recordOrRetain(event);
}

/** A JSON request body as an object (empty: `{}`), or the 400/422 a bad one deserves. */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  const raw = await readJson(c);
  if (raw === MALFORMED) throw new ServiceError("malformed_json", "The request body is not valid JSON.");
  if (raw === TOO_DEEP)
    throw new ServiceError(
      "validation",
      `The request body is nested more than ${MAX_JSON_DEPTH} levels deep.`,
      {
        body: [`is nested more than ${MAX_JSON_DEPTH} levels deep`],
      },
    );
  if (!raw || typeof raw !== "object" || Array.isArray(raw))
    throw new ServiceError("validation", "The request body must be a JSON object.", {
      body: ["must be a JSON object"],
    });
  return raw as Record<string, unknown>;
}

const MALFORMED = Symbol("malformed");
const TOO_DEEP = Symbol("too deep");
/** Far deeper than any body of this API; deeper ones would only cost stack in whatever walks them. */
const MAX_JSON_DEPTH = 32;

async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") return {};
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) return TOO_DEEP;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return MALFORMED;
  }
}

/** Nesting of `[` and `{` outside strings, counted in one pass without parsing. */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c)
        i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) {
      if (++depth > max) return true;
    } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return false;
}

/** The path as the client sent it (still percent-encoded: `%00` stays text), without the query. */
function rawPath(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start === -1) return "/";
  const query = url.indexOf("?", start);
  return query === -1 ? url.slice(start) : url.slice(start, query);
}

/** run_id and run_context as claimed by the client, kept for the audit only (made storable there). */
function claimedRunInfo(body: Record<string, unknown>): Partial<AuditEvent> {
  const runId =
    typeof body.run_id === "string" || typeof body.run_id === "number"
      ? String(body.run_id).slice(0, RUN_ID_MAX_CHARS)
      : null;
  const ctx = body.run_context && typeof body.run_context === "object" ? body.run_context : null;
  return { runId, runContextClaimed: ctx };
}

/** last_used_at/last_used_ip are written at most once a minute per key (or when the IP changes). */
async function touchLastUsed(deps: AccessDeps, key: AutomationKeyRow, ip: string | undefined): Promise<void> {
  const now = deps.now();
  const fresh = key.lastUsedAt && now.getTime() - key.lastUsedAt.getTime() < LAST_USED_WRITE_INTERVAL_MS;
  if (fresh && key.lastUsedIp === (ip ?? null)) return;
  try {
    await deps.db
      .update(automationKeys)
      .set({ lastUsedAt: now, lastUsedIp: ip ?? null })
      .where(eq(automationKeys.id, key.id));
  } catch (err) {
    deps.logger.warn("could not record key use", { key_id: key.id, error: String(err) });
  }
}
