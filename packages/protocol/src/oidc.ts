// Keyless CI (spec §12): a CI job's OIDC ID token exchanged for a short-lived automation key, and
// the verified claims that then stand for the run in operations and audit rows.
import { z } from "zod";
import { KEY_PREFIX } from "./limits.js";

/** Path of the exchange under the automation API's base path. */
export const OIDC_EXCHANGE_PATH = "/oidc/exchange";

/** A minted key lives this long unless its policy says otherwise (spec §12: 15 min)… */
export const DEFAULT_TRUST_LIFETIME_SECONDS = 900;
/** …and never less than this or more than an hour. */
export const MIN_TRUST_LIFETIME_SECONDS = 60;
export const MAX_TRUST_LIFETIME_SECONDS = 3600;

/** The claims of a verified token kept as the run's context (those present; GitHub's and GitLab's names). */
export const VERIFIED_CLAIM_NAMES = [
  "sub",
  "repository",
  "repository_owner",
  "ref",
  "ref_type",
  "environment",
  "workflow",
  "workflow_ref",
  "job_workflow_ref",
  "event_name",
  "run_id",
  "run_attempt",
  "actor",
  "sha",
] as const;
export type VerifiedClaimName = (typeof VERIFIED_CLAIM_NAMES)[number];

/**
 * An operation's `run_context` when its key was minted from an OIDC token: the claims the issuer
 * signed, `verified: true`, and the issuer. Never taken from a request body.
 */
export const verifiedRunContextSchema = z.object({
  verified: z.literal(true),
  issuer: z.string(),
  provider: z.string().optional(),
  trigger: z.string().optional(),
  ...Object.fromEntries(VERIFIED_CLAIM_NAMES.map((name) => [name, z.string().optional()])),
}) as z.ZodType<VerifiedRunContext>;

export type VerifiedRunContext = {
  verified: true;
  issuer: string;
  /** `github_actions` for GitHub's issuer, else `oidc`. */
  provider?: string | undefined;
  /** The run's event (`event_name`), as the claimed run context names it. */
  trigger?: string | undefined;
} & Partial<Record<VerifiedClaimName, string>>;

/** `POST /oidc/exchange` body. */
export const oidcExchangeRequestSchema = z.object({
  token: z
    .string({ error: "token is required: the CI's OIDC ID token (a JWT)." })
    .min(1, { error: "token is required: the CI's OIDC ID token (a JWT)." })
    .max(16_384, { error: "token must be at most 16384 characters long." })
    .describe("The CI job's OIDC ID token (a JWT)."),
  policy_id: z
    .uuid({ error: "policy_id must be a trust policy's id." })
    .optional()
    .describe("The trust policy to use when several of the organisation's policies match the token."),
});
export type OidcExchangeRequest = z.infer<typeof oidcExchangeRequestSchema>;

/** `POST /oidc/exchange` answer: an ordinary automation key, shown this once. */
export const oidcExchangeResponseSchema = z.object({
  key: z.string().startsWith(KEY_PREFIX).describe("The short-lived automation key (`rca_…`)."),
  expires_at: z.string().describe("When the key stops working (ISO-8601 UTC)."),
  policy_id: z.string().describe("The trust policy that granted it."),
});
export type OidcExchangeResponse = z.infer<typeof oidcExchangeResponseSchema>;
