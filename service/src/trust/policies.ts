import { and, asc, eq, isNull } from "drizzle-orm";
import {
  DEFAULT_TRUST_LIFETIME_SECONDS,
  MAX_TRUST_LIFETIME_SECONDS,
  MIN_TRUST_LIFETIME_SECONDS,
  UUID_PATTERN,
} from "@reoclo/protocol";
import { z } from "zod";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import type { Database } from "../db/database";
import { hasErrorCode } from "../db/errors";
import { automationKeys, trustPolicies } from "../db/schema";
import { ServiceError } from "../errors";
import {
  canonicalCidrs,
  nextCredentialScope,
  nextServerScope,
  requireAllInOrg,
  scopeChangeFields,
  scopeFields,
  withScopeRules,
} from "../keys/keys";
import { resolveOrg } from "../orgs/orgs";
import { parseOrThrow } from "../validation";
import { issuerProblem } from "./conditions";

// Trust policies (spec §12): whom an organisation trusts to get a short-lived automation key
// without a secret, and what that key may do. Managed like automation keys (managers and up);
// removing or changing one revokes the keys it minted, at their next request on any instance.

/** Claims checked by the verification itself; a condition on them would be meaningless or misleading. */
const RESERVED_CLAIMS = new Set(["iss", "aud", "exp", "nbf", "iat", "jti"]);
const MAX_CONDITIONS = 32;

const claimName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/, "a claim name is letters, digits, _ . : - (at most 64)")
  .refine(
    (n) => !RESERVED_CLAIMS.has(n),
    "iss, aud, exp, nbf, iat and jti are checked by the verification itself",
  );
const conditionValue = z
  .string()
  .min(1, "a condition is a value or a * glob, never empty")
  .max(1024)
  .refine((v) => v.replaceAll("*", "") !== "", "a condition of only * would match every token");

const conditionsField = z
  .record(claimName, conditionValue)
  .refine((c) => Object.keys(c).length > 0, {
    message:
      "give at least one condition (e.g. repository or sub): without one every token of the issuer would be trusted",
  })
  .refine((c) => Object.keys(c).length <= MAX_CONDITIONS, `at most ${MAX_CONDITIONS} conditions`);

/** Compared with `iss` exactly (a trailing slash makes another issuer), so kept as given. */
const issuerField = z
  .string()
  .trim()
  .max(500)
  .superRefine((v, ctx) => {
    const problem = issuerProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });
const audienceField = z.string().trim().min(1).max(500);
const policyName = z.string().trim().min(1).max(100);
const lifetimeField = z
  .number()
  .int()
  .min(MIN_TRUST_LIFETIME_SECONDS, `at least ${MIN_TRUST_LIFETIME_SECONDS} seconds`)
  .max(MAX_TRUST_LIFETIME_SECONDS, `at most ${MAX_TRUST_LIFETIME_SECONDS} seconds (one hour)`);

export const createPolicyInput = withScopeRules(
  z.object({
    org: z.string().optional(),
    name: policyName,
    issuer: issuerField,
    /** Default: the service's public URL (REOCLO_PUBLIC_URL), when set. */
    audience: audienceField.optional(),
    conditions: conditionsField,
    ...scopeFields,
    lifetime_seconds: lifetimeField.default(DEFAULT_TRUST_LIFETIME_SECONDS),
  }),
  true,
);
export type CreatePolicyInput = z.input<typeof createPolicyInput>;

export const updatePolicyInput = withScopeRules(
  z.object({
    org: z.string().optional(),
    id: z.string().min(1, "give the trust policy's id"),
    name: policyName.optional(),
    issuer: issuerField.optional(),
    audience: audienceField.optional(),
    conditions: conditionsField.optional(),
    ...scopeChangeFields,
    lifetime_seconds: lifetimeField.optional(),
  }),
  false,
);
export type UpdatePolicyInput = z.input<typeof updatePolicyInput>;

export type PolicyRow = typeof trustPolicies.$inferSelect;

export interface PolicyView {
  id: string;
  org_id: string;
  name: string;
  issuer: string;
  audience: string;
  conditions: Record<string, string>;
  operations: string[];
  all_servers: boolean;
  server_ids: string[];
  all_credentials: boolean;
  credential_ids: string[];
  allowed_ips: string[];
  rate_limit_per_minute: number;
  rate_limit_per_hour: number;
  lifetime_seconds: number;
  created_at: string;
  created_by: string;
}

export const policyView = (p: PolicyRow): PolicyView => ({
  id: p.id,
  org_id: p.orgId,
  name: p.name,
  issuer: p.issuer,
  audience: p.audience,
  conditions: p.conditions,
  operations: p.operations,
  all_servers: p.allServers,
  server_ids: p.serverIds,
  all_credentials: p.allCredentials,
  credential_ids: p.credentialIds,
  allowed_ips: p.allowedCidrs,
  rate_limit_per_minute: p.rateLimitPerMinute,
  rate_limit_per_hour: p.rateLimitPerHour,
  lifetime_seconds: p.lifetimeSeconds,
  created_at: p.createdAt.toISOString(),
  created_by: p.createdBy,
});

/** What a policy trusts and grants, as its audit rows show it. */
function auditSummary(p: Omit<PolicyView, "id" | "org_id" | "created_at" | "created_by">) {
  const { name, issuer, audience, conditions, operations, all_servers, server_ids } = p;
  return {
    name,
    issuer,
    audience,
    conditions,
    operations,
    all_servers,
    server_ids,
    all_credentials: p.all_credentials,
    credential_ids: p.credential_ids,
    allowed_ips: p.allowed_ips,
    rate_limit_per_minute: p.rate_limit_per_minute,
    rate_limit_per_hour: p.rate_limit_per_hour,
    lifetime_seconds: p.lifetime_seconds,
  };
}

function audienceOf(ctx: ServiceContext, given: string | undefined): string {
  const audience = given ?? ctx.config.publicUrl;
  if (audience === undefined)
    throw new ServiceError(
      "validation",
      "Invalid audience: give the audience the CI requests its token for (REOCLO_PUBLIC_URL, its default, is not set).",
      { audience: ["is required when REOCLO_PUBLIC_URL is not set"] },
    );
  return audience;
}

const nameTaken = (name: string) =>
  new ServiceError("conflict", `A trust policy named "${name}" already exists in this organisation.`, {
    name: ["is taken"],
  });

export async function createPolicy(ctx: ServiceContext, raw: CreatePolicyInput): Promise<PolicyView> {
  const input = parseOrThrow(createPolicyInput, raw);
  const org = await resolveOrg(ctx, input.org);
  const audience = audienceOf(ctx, input.audience);
  const cidrs = canonicalCidrs(input.allowed_ips);
  await requireAllInOrg(ctx, org.id, input.server_ids, "server");
  await requireAllInOrg(ctx, org.id, input.credential_ids, "credential");
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(trustPolicies)
        .values({
          orgId: org.id,
          name: input.name,
          issuer: input.issuer,
          audience,
          conditions: input.conditions,
          operations: [...new Set(input.operations)],
          allServers: input.all_servers,
          serverIds: [...new Set(input.server_ids)],
          allCredentials: input.all_credentials,
          credentialIds: [...new Set(input.credential_ids)],
          allowedCidrs: cidrs,
          rateLimitPerMinute: input.rate_limit_per_minute,
          rateLimitPerHour: input.rate_limit_per_hour,
          lifetimeSeconds: input.lifetime_seconds,
          createdAt: ctx.now(),
          createdBy: ctx.actor ?? "admin-cli",
        })
        .returning();
      if (!row) throw new ServiceError("internal_error", "The trust policy could not be stored.");
      const view = policyView(row);
      await recordChange(ctx, tx, {
        action: "trust_policy.create",
        orgId: org.id,
        details: { policy_id: row.id, ...auditSummary(view) },
      });
      return view;
    });
  } catch (err) {
    if (hasErrorCode(err, "23505")) throw nameTaken(input.name);
    throw err;
  }
}

export async function listPolicies(ctx: ServiceContext, orgName?: string): Promise<PolicyView[]> {
  const org = await resolveOrg(ctx, orgName);
  const rows = await ctx.db
    .select()
    .from(trustPolicies)
    .where(and(eq(trustPolicies.orgId, org.id), isNull(trustPolicies.deletedAt)))
    .orderBy(asc(trustPolicies.createdAt), asc(trustPolicies.id));
  return rows.map(policyView);
}

async function findPolicy(ctx: ServiceContext, id: string, orgName?: string): Promise<PolicyRow> {
  const org = await resolveOrg(ctx, orgName);
  const notFound = new ServiceError("not_found", `Trust policy ${id} not found in organisation ${org.name}.`);
  if (!UUID_PATTERN.test(id)) throw notFound;
  const [row] = await ctx.db
    .select()
    .from(trustPolicies)
    .where(and(eq(trustPolicies.id, id), eq(trustPolicies.orgId, org.id), isNull(trustPolicies.deletedAt)))
    .limit(1);
  if (!row) throw notFound;
  return row;
}

/** Revokes the live keys a policy minted; answers how many. */
async function revokeMintedKeys(tx: Database, policyId: string, now: Date): Promise<number> {
  const revoked = await tx
    .update(automationKeys)
    .set({ revokedAt: now })
    .where(and(eq(automationKeys.trustPolicyId, policyId), isNull(automationKeys.revokedAt)))
    .returning({ id: automationKeys.id });
  return revoked.length;
}

/**
 * Changes a policy in place. A change of what it trusts or grants (anything but its name) revokes
 * the keys it minted, so a narrowed policy holds from the next request; CI exchanges a new token.
 */
export async function updatePolicy(ctx: ServiceContext, raw: UpdatePolicyInput): Promise<PolicyView> {
  const input = parseOrThrow(updatePolicyInput, raw);
  const row = await findPolicy(ctx, input.id, input.org);
  const set: Partial<typeof trustPolicies.$inferInsert> = {};
  if (input.name !== undefined) set.name = input.name;
  if (input.issuer !== undefined) set.issuer = input.issuer;
  if (input.audience !== undefined) set.audience = input.audience;
  if (input.conditions !== undefined) set.conditions = input.conditions;
  if (input.operations !== undefined) set.operations = [...new Set(input.operations)];
  if (input.all_servers !== undefined || input.server_ids !== undefined)
    Object.assign(set, nextServerScope(row, input.all_servers, input.server_ids));
  if (input.all_credentials !== undefined || input.credential_ids !== undefined)
    Object.assign(set, nextCredentialScope(row, input.all_credentials, input.credential_ids));
  if (input.allowed_ips !== undefined) set.allowedCidrs = canonicalCidrs(input.allowed_ips);
  if (input.rate_limit_per_minute !== undefined) set.rateLimitPerMinute = input.rate_limit_per_minute;
  if (input.rate_limit_per_hour !== undefined) set.rateLimitPerHour = input.rate_limit_per_hour;
  if (input.lifetime_seconds !== undefined) set.lifetimeSeconds = input.lifetime_seconds;
  await requireAllInOrg(ctx, row.orgId, input.server_ids ?? [], "server");
  await requireAllInOrg(ctx, row.orgId, input.credential_ids ?? [], "credential");
  const before = auditSummary(policyView(row));
  const after = auditSummary(policyView({ ...row, ...set }));
  const changed = (Object.keys(before) as (keyof typeof before)[]).filter(
    (k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]),
  );
  if (changed.length === 0) return policyView(row);
  try {
    return await ctx.db.transaction(async (tx) => {
      const [updated] = await tx
        .update(trustPolicies)
        .set(set)
        .where(and(eq(trustPolicies.id, row.id), isNull(trustPolicies.deletedAt)))
        .returning();
      if (!updated) throw new ServiceError("not_found", `Trust policy ${row.id} not found.`);
      const grantChanged = changed.some((k) => k !== "name");
      const revokedKeys = grantChanged ? await revokeMintedKeys(tx, row.id, ctx.now()) : 0;
      await recordChange(ctx, tx, {
        action: "trust_policy.update",
        orgId: row.orgId,
        details: {
          policy_id: row.id,
          name: updated.name,
          changed,
          before: Object.fromEntries(changed.map((k) => [k, before[k]])),
          after: Object.fromEntries(changed.map((k) => [k, after[k]])),
          revoked_keys: revokedKeys,
        },
      });
      return policyView(updated);
    });
  } catch (err) {
    if (hasErrorCode(err, "23505") && input.name !== undefined) throw nameTaken(input.name);
    throw err;
  }
}

/** Removes a policy: it mints nothing more, and the keys it minted stop at their next request. */
export async function removePolicy(
  ctx: ServiceContext,
  id: string,
  orgName?: string,
): Promise<PolicyView & { revoked_keys: number }> {
  const row = await findPolicy(ctx, id, orgName);
  const now = ctx.now();
  return ctx.db.transaction(async (tx) => {
    const [removed] = await tx
      .update(trustPolicies)
      .set({ deletedAt: now })
      .where(and(eq(trustPolicies.id, row.id), isNull(trustPolicies.deletedAt)))
      .returning();
    if (!removed) throw new ServiceError("not_found", `Trust policy ${row.id} not found.`);
    const revokedKeys = await revokeMintedKeys(tx, row.id, now);
    await recordChange(ctx, tx, {
      action: "trust_policy.remove",
      orgId: row.orgId,
      details: { policy_id: row.id, name: row.name, issuer: row.issuer, revoked_keys: revokedKeys },
    });
    return { ...policyView(removed), revoked_keys: revokedKeys };
  });
}
