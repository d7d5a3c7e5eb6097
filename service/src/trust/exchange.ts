import { and, asc, eq, isNull, lt } from "drizzle-orm";
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from "jose";
import { VERIFIED_CLAIM_NAMES, type VerifiedRunContext } from "@reoclo/protocol";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import { hasErrorCode } from "../db/errors";
import { automationKeys, oidcTokenUses, trustPolicies } from "../db/schema";
import { generateAutomationKey } from "../keys/key-format";
import { failingClaim } from "./conditions";
import type { IssuerKeys } from "./issuer-keys";
import type { PolicyRow } from "./policies";

// The exchange of spec §12: a CI job's OIDC ID token for a short-lived automation key. The token's
// unverified `iss` only picks the candidate policies; everything else is checked on the verified
// token: signature (RS256/ES256 from the issuer's JWKS), issuer, audience, times with 60 s of skew,
// the policy's claim conditions, and its `jti`, which is accepted once.

/** RFC 8725 §3.1: an allowlist of asymmetric algorithms, never `none`, never HMAC. */
export const ALLOWED_ALGORITHMS = ["RS256", "ES256"];
const CLOCK_SKEW_SECONDS = 60;
const PRUNE_INTERVAL_MS = 60_000;

/** Why a token was refused, as the audit row's reason says it (`oidc_…`). */
export type RefusalReason =
  | "oidc_malformed_token"
  | "oidc_alg_not_allowed"
  | "oidc_unknown_issuer"
  | "oidc_unknown_kid"
  | "oidc_bad_signature"
  | "oidc_wrong_audience"
  | "oidc_expired"
  | "oidc_not_yet_valid"
  | `oidc_missing_claim:${string}`
  | `oidc_no_policy_matched:${string}`
  | `oidc_ambiguous_policy:${number}`
  | "oidc_replayed";

export interface Refusal {
  readonly ok: false;
  readonly reason: RefusalReason;
  /** The issuer the token named (unverified until the signature held), for the audit row. */
  readonly issuer?: string | undefined;
  /** The organisation when every candidate policy is of one. */
  readonly orgId?: string | undefined;
  /** The claims, once the signature was verified. */
  readonly verified?: VerifiedRunContext | undefined;
  readonly policyId?: string | undefined;
}

export interface Minted {
  readonly ok: true;
  readonly key: string;
  readonly keyId: string;
  readonly orgId: string;
  readonly expiresAt: Date;
  readonly policyId: string;
  readonly verified: VerifiedRunContext;
}

export interface ExchangeRequest {
  readonly token: string;
  readonly policyId?: string | undefined;
  readonly client: {
    ip?: string | undefined;
    userAgent?: string | undefined;
    requestId?: string | undefined;
  };
}

const GITHUB_ISSUER = "https://token.actions.githubusercontent.com";

/** The claims kept as the run's context: strings only, cut short. */
export function verifiedContext(issuer: string, claims: JWTPayload): VerifiedRunContext {
  const out: VerifiedRunContext = {
    verified: true,
    issuer,
    provider: issuer === GITHUB_ISSUER ? "github_actions" : "oidc",
  };
  for (const name of VERIFIED_CLAIM_NAMES) {
    const value = claims[name];
    if (typeof value === "string" || typeof value === "number") out[name] = String(value).slice(0, 1024);
  }
  if (out.event_name !== undefined) out.trigger = out.event_name;
  return out;
}

function refusalOfJoseError(err: unknown): RefusalReason | undefined {
  if (err instanceof errors.JOSEAlgNotAllowed) return "oidc_alg_not_allowed";
  if (err instanceof errors.JWKSNoMatchingKey) return "oidc_unknown_kid";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "oidc_bad_signature";
  if (err instanceof errors.JWKSMultipleMatchingKeys) return "oidc_bad_signature";
  if (err instanceof errors.JWTExpired) return "oidc_expired";
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === "aud") return "oidc_wrong_audience";
    if (err.claim === "iss") return "oidc_unknown_issuer";
    if (err.claim === "nbf" || err.claim === "iat") return "oidc_not_yet_valid";
    if (err.reason === "missing") return `oidc_missing_claim:${err.claim}`;
    return "oidc_malformed_token";
  }
  if (err instanceof errors.JOSEError) return "oidc_malformed_token";
  return undefined;
}

export class TokenExchange {
  private lastPrune = 0;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly issuerKeys: IssuerKeys,
  ) {}

  /** Verifies the token and mints a key, or says why not; throws IssuerUnavailable when its issuer is down. */
  async exchange(req: ExchangeRequest): Promise<Minted | Refusal> {
    let issuer: string;
    try {
      const header = decodeProtectedHeader(req.token);
      // Refused before any lookup or fetch; jwtVerify checks the same allowlist again.
      if (typeof header.alg !== "string" || !ALLOWED_ALGORITHMS.includes(header.alg))
        return { ok: false, reason: "oidc_alg_not_allowed" };
      const unverified = decodeJwt(req.token);
      if (typeof unverified.iss !== "string") return { ok: false, reason: "oidc_missing_claim:iss" };
      issuer = unverified.iss;
    } catch {
      return { ok: false, reason: "oidc_malformed_token" };
    }
    const shortIssuer = issuer.slice(0, 500);

    const candidates = await this.ctx.db
      .select()
      .from(trustPolicies)
      .where(and(eq(trustPolicies.issuer, issuer), isNull(trustPolicies.deletedAt)))
      .orderBy(asc(trustPolicies.createdAt), asc(trustPolicies.id));
    if (candidates.length === 0) return { ok: false, reason: "oidc_unknown_issuer", issuer: shortIssuer };
    const orgs = new Set(candidates.map((p) => p.orgId));
    const orgId = orgs.size === 1 ? candidates[0]!.orgId : undefined;
    const refuse = (reason: RefusalReason, extra: Partial<Refusal> = {}): Refusal => ({
      ok: false,
      reason,
      issuer: shortIssuer,
      orgId,
      ...extra,
    });

    const now = this.ctx.now();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(req.token, this.issuerKeys.resolverFor(issuer), {
        algorithms: ALLOWED_ALGORITHMS,
        issuer,
        audience: [...new Set(candidates.map((p) => p.audience))],
        clockTolerance: CLOCK_SKEW_SECONDS,
        requiredClaims: ["exp", "iat", "jti"],
        currentDate: now,
      }));
    } catch (err) {
      const reason = refusalOfJoseError(err);
      if (reason === undefined) throw err;
      return refuse(reason);
    }
    const verified = verifiedContext(issuer, payload);
    const nowSeconds = Math.floor(now.getTime() / 1000);
    // jose checks `iat` only with maxTokenAge; a token issued in the future is not valid yet either.
    if (typeof payload.iat === "number" && payload.iat > nowSeconds + CLOCK_SKEW_SECONDS)
      return refuse("oidc_not_yet_valid", { verified });
    if (typeof payload.jti !== "string" || payload.jti.length === 0 || payload.jti.length > 256)
      return refuse("oidc_missing_claim:jti", { verified });

    const policy = this.choosePolicy(candidates, payload, req.policyId);
    if ("reason" in policy) return refuse(policy.reason, { verified, policyId: policy.policyId });
    return this.mint(policy, payload, verified, issuer, req, now);
  }

  /** The one policy the token meets: the named one, or the only one; several without a name is refused. */
  private choosePolicy(
    candidates: PolicyRow[],
    payload: JWTPayload,
    named: string | undefined,
  ): PolicyRow | { reason: RefusalReason; policyId?: string | undefined } {
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    const pool = candidates.filter(
      (p) => aud.includes(p.audience) && (named === undefined || p.id === named.toLowerCase()),
    );
    if (pool.length === 0)
      return named === undefined
        ? { reason: "oidc_wrong_audience" }
        : { reason: "oidc_no_policy_matched:policy_id" };
    const matching = pool.filter((p) => failingClaim(payload, p.conditions) === undefined);
    if (matching.length === 1) return matching[0]!;
    if (matching.length > 1) return { reason: `oidc_ambiguous_policy:${matching.length}` };
    const first = pool[0]!;
    return {
      reason: `oidc_no_policy_matched:${failingClaim(payload, first.conditions)}`,
      policyId: first.id,
    };
  }

  private async mint(
    policy: PolicyRow,
    payload: JWTPayload,
    verified: VerifiedRunContext,
    issuer: string,
    req: ExchangeRequest,
    now: Date,
  ): Promise<Minted | Refusal> {
    await this.pruneUsedTokens(now);
    const generated = generateAutomationKey();
    // The policy's lifetime decides, not the token's exp: a CI token often lives 5–10 minutes,
    // shorter than the deploy it authenticates (spec §12: default 15 min, at most 1 h).
    const expiresAt = new Date(now.getTime() + policy.lifetimeSeconds * 1000);
    const who = verified.repository ?? verified.sub ?? "unknown";
    const tokenExp = new Date(((payload.exp ?? 0) + CLOCK_SKEW_SECONDS) * 1000);
    const ctx = { ...this.ctx, actor: `trust_policy:${policy.id}` };
    try {
      return await this.ctx.db.transaction(async (tx) => {
        // The jti is accepted once: a second insert of it conflicts, and this whole exchange with it.
        await tx.insert(oidcTokenUses).values({ issuer, jti: payload.jti!, expiresAt: tokenExp });
        const [row] = await tx
          .insert(automationKeys)
          .values({
            orgId: policy.orgId,
            name: `oidc:${policy.name}:${who}`.slice(0, 200),
            keyHash: generated.hash,
            prefix: generated.prefix,
            operations: policy.operations,
            allServers: policy.allServers,
            serverIds: policy.serverIds,
            allCredentials: policy.allCredentials,
            credentialIds: policy.credentialIds,
            allowedCidrs: policy.allowedCidrs,
            rateLimitPerMinute: policy.rateLimitPerMinute,
            rateLimitPerHour: policy.rateLimitPerHour,
            expiresAt,
            createdAt: now,
            trustPolicyId: policy.id,
            runContextVerified: verified,
          })
          .returning({ id: automationKeys.id });
        await recordChange(ctx, tx, {
          action: "key.oidc_exchange",
          orgId: policy.orgId,
          keyId: row!.id,
          runContextVerified: verified,
          details: {
            policy_id: policy.id,
            policy_name: policy.name,
            prefix: generated.prefix,
            expires_at: expiresAt.toISOString(),
          },
          client: req.client,
        });
        return {
          ok: true as const,
          key: generated.key,
          keyId: row!.id,
          orgId: policy.orgId,
          expiresAt,
          policyId: policy.id,
          verified,
        };
      });
    } catch (err) {
      if (hasErrorCode(err, "23505"))
        return {
          ok: false,
          reason: "oidc_replayed",
          issuer,
          orgId: policy.orgId,
          verified,
          policyId: policy.id,
        };
      throw err;
    }
  }

  /** Used jtis past their token's expiry can go: such a token is refused as expired anyway. */
  private async pruneUsedTokens(now: Date): Promise<void> {
    if (now.getTime() - this.lastPrune < PRUNE_INTERVAL_MS) return;
    this.lastPrune = now.getTime();
    try {
      await this.ctx.db.delete(oidcTokenUses).where(lt(oidcTokenUses.expiresAt, now));
    } catch {
      // Best effort: the next exchange tries again.
    }
  }
}
