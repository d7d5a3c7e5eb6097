// `POST /oidc/exchange` (spec §12): a CI job's OpenID Connect ID token for a short-lived
// automation key, under a trust policy. Refusals are 401 with the usual envelope; 503 when the
// service cannot reach the token's issuer.
import { z } from "zod";
import { KEY_PREFIX } from "./limits.js";

export const oidcExchangeRequestSchema = z.object({ token: z.string().min(1) });
export type OidcExchangeRequest = z.infer<typeof oidcExchangeRequestSchema>;

export const oidcExchangeResponseSchema = z.object({
  /** An ordinary automation key, bound to the policy's scope; never logged. */
  key: z.string().startsWith(KEY_PREFIX),
  /** ISO 8601: the policy's lifetime from now (15 min by default, at most 1 h). */
  expires_at: z.string().min(1),
  policy_id: z.string().min(1),
});
export type OidcExchangeResponse = z.infer<typeof oidcExchangeResponseSchema>;
