import { HEADERS, oidcExchangeRequestSchema, zodIssuesToFields } from "@reoclo/protocol";
import type { Context } from "hono";
import { ServiceError } from "../errors";
import { IssuerUnavailable } from "../trust/issuer-keys";
import type { Minted, TokenExchange } from "../trust/exchange";
import type { AuditEvent } from "./audit-writer";
import { authBudgetKey, resolveClientIp } from "./client-ip";
import { orUnavailable, readJsonObject, refuseWhileAuthBudgetSpent, type AccessDeps } from "./pipeline";

// The exchange's side of the access rules (spec §12): the client address's budget of failed
// authentications (shared with both APIs' keys), one 401 body for every refusal, and an audit row
// naming the exact reason. The token itself is never logged, audited or echoed.

/** One sentence for every refusal, so a caller learns nothing about which check failed. */
export const OIDC_REFUSED =
  "The OIDC token was refused: it is invalid, expired or already used, or no trust policy accepts it (several that do: name one with policy_id); the organisation's audit log says why.";

type Bindings = { incoming?: { socket?: { remoteAddress?: string } } };

export interface OidcExchangeDeps extends AccessDeps {
  readonly exchange: TokenExchange;
}

export async function oidcExchange(deps: OidcExchangeDeps, c: Context): Promise<Minted> {
  const peerText = (c.env as Bindings | undefined)?.incoming?.socket?.remoteAddress;
  const address = resolveClientIp(peerText, c.req.header(HEADERS.forwardedFor), deps.trustedProxies);
  const clientIp = address.client?.toString();
  const userAgent = c.req.header(HEADERS.userAgent)?.slice(0, 512);
  const requestId = c.get("requestId") as string | undefined;
  const event: AuditEvent = {
    outcome: "denied",
    reason: "",
    method: c.req.method,
    path: c.req.path,
    peerIp: address.peer ?? null,
    clientIp: clientIp ?? null,
    userAgent: userAgent ?? null,
    requestId,
  };
  const budgetKey = authBudgetKey(address.client) ?? address.peer ?? "unknown";
  await refuseWhileAuthBudgetSpent(deps, c, budgetKey, event);

  const parsed = oidcExchangeRequestSchema.safeParse(await readJsonObject(c));
  if (!parsed.success) {
    const fields = zodIssuesToFields(parsed.error);
    const [field, problems] = Object.entries(fields)[0] ?? ["body", ["is invalid"]];
    throw new ServiceError("validation", `Invalid ${field}: ${problems[0] ?? "is invalid"}`, fields);
  }

  // The issuer being down is passed through orUnavailable (which makes other failures a database 503).
  const result = await orUnavailable(() =>
    deps.exchange
      .exchange({
        token: parsed.data.token,
        policyId: parsed.data.policy_id,
        client: { ip: clientIp, userAgent, requestId },
      })
      .catch((err: unknown) => {
        if (err instanceof IssuerUnavailable) return err;
        throw err;
      }),
  );
  if (result instanceof IssuerUnavailable) {
    deps.logger.warn("OIDC issuer unavailable", { request_id: requestId, error: result.message });
    await deps.audit.recordOrRetain({
      ...event,
      reason: "oidc_issuer_unavailable",
      details: { issuer: result.issuer.slice(0, 500) },
    });
    throw new ServiceError(
      "oidc_issuer_unavailable",
      "The token's issuer could not be reached to read its signing keys; retry shortly.",
    );
  }
  if (result.ok) return result;
  await deps.authFailures.recordFailure(budgetKey);
  await deps.audit.recordOrRetain({
    ...event,
    reason: result.reason,
    orgId: result.orgId ?? null,
    runContextVerified: result.verified ?? null,
    details: {
      ...(result.issuer === undefined ? {} : { issuer: result.issuer }),
      ...(result.policyId === undefined ? {} : { policy_id: result.policyId }),
    },
  });
  throw new ServiceError("unauthorized", OIDC_REFUSED);
}
