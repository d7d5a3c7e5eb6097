import { OIDC_EXCHANGE_PATH, type OidcExchangeResponse } from "@reoclo/protocol";
import { Hono } from "hono";
import { oidcExchange, type OidcExchangeDeps } from "../access/oidc-exchange";

// POST /oidc/exchange (spec §12): a CI job's OIDC ID token for a short-lived automation key. The
// answer holds the key this once; like any token response it must not be cached (RFC 6749 §5.1).

export function oidcRoutes(deps: OidcExchangeDeps) {
  return new Hono().post(OIDC_EXCHANGE_PATH, async (c) => {
    const minted = await oidcExchange(deps, c);
    c.header("Cache-Control", "no-store");
    const body: OidcExchangeResponse = {
      key: minted.key,
      expires_at: minted.expiresAt.toISOString(),
      policy_id: minted.policyId,
    };
    return c.json(body);
  });
}
