import { and, asc, eq, inArray, isNull } from "drizzle-orm";
import {
  DEFAULT_RATE_LIMIT_PER_HOUR,
  DEFAULT_RATE_LIMIT_PER_MINUTE,
  UUID_PATTERN,
  keyExpirySchema,
  OPERATION_TYPES,
  type KeyExpiry,
  type KeyStatus,
} from "@reoclo/protocol";
import { z } from "zod";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import { automationKeys, registryCredentials, servers } from "../db/schema";
import { ServiceError } from "../errors";
import { canonicalCidr } from "../net/cidr";
import { resolveOrg } from "../orgs/orgs";
import { parseOrThrow } from "../validation";
import { generateAutomationKey } from "./key-format";

/** Days each expiry choice of spec §2 lasts (integration keys use the same choices); null: never. */
const EXPIRY_DAYS: Record<KeyExpiry, number | null> = { "30d": 30, "90d": 90, "1y": 365, never: null };

/** When a key made or changed now with this expiry choice expires. */
export function expiresAtFor(choice: KeyExpiry, now: Date): Date | null {
  const days = EXPIRY_DAYS[choice];
  return days === null ? null : new Date(now.getTime() + days * 86_400_000);
}

// The fields of a key, named as spec §11's POST /api/automation-keys and reoclo-admin name them.
const keyName = z.string().trim().min(1).max(100);
const keyOperations = z
  .array(z.enum(OPERATION_TYPES, { error: `each operation must be one of ${OPERATION_TYPES.join(", ")}` }))
  .min(1, "list at least one operation");
const serverIds = z.array(z.uuid("each server must be a server id"));
const credentialIds = z.array(z.uuid("each credential must be a credential id"));
/** IPv4 and IPv6 CIDRs (a bare address is one host); empty means no restriction. */
const allowedIps = z.array(z.string());
const perMinute = z.number().int().min(1).max(100_000);
const perHour = z.number().int().min(1).max(1_000_000);

/** What a key may reach and how often; a trust policy gives the keys it mints the same fields. */
export const scopeFields = {
  operations: keyOperations,
  all_servers: z.boolean().default(false),
  server_ids: serverIds.default([]),
  all_credentials: z.boolean().default(false),
  credential_ids: credentialIds.default([]),
  allowed_ips: allowedIps.default([]),
  rate_limit_per_minute: perMinute.default(DEFAULT_RATE_LIMIT_PER_MINUTE),
  rate_limit_per_hour: perHour.default(DEFAULT_RATE_LIMIT_PER_HOUR),
};

/** The same fields in a change: each may be left out, and none has a default. */
export const scopeChangeFields = {
  operations: keyOperations.optional(),
  all_servers: z.boolean().optional(),
  server_ids: serverIds.optional(),
  all_credentials: z.boolean().optional(),
  credential_ids: credentialIds.optional(),
  allowed_ips: allowedIps.optional(),
  rate_limit_per_minute: perMinute.optional(),
  rate_limit_per_hour: perHour.optional(),
};

interface ScopeChoice {
  all_servers?: boolean | undefined;
  server_ids?: string[] | undefined;
  all_credentials?: boolean | undefined;
  credential_ids?: string[] | undefined;
}

/** A list and "all" are never given together; a new scope (`whole`) names its servers one way. */
export const withScopeRules = <T extends z.ZodType<ScopeChoice>>(schema: T, whole: boolean) =>
  schema
    .refine(
      (v) =>
        whole
          ? v.all_servers !== (v.server_ids?.length ?? 0) > 0
          : !(v.all_servers === true && v.server_ids?.length),
      {
        message: whole
          ? "give exactly one of server_ids (a list of server ids) or all_servers"
          : "give server_ids or all_servers, not both",
        path: ["server_ids"],
      },
    )
    .refine((v) => !(v.all_credentials === true && v.credential_ids?.length), {
      message: "give credential_ids or all_credentials, not both",
      path: ["credential_ids"],
    });

export const createKeyInput = withScopeRules(
  z.object({
    org: z.string().optional(),
    name: keyName,
    ...scopeFields,
    expires: keyExpirySchema.default("never"),
  }),
  true,
);
export type CreateKeyInput = z.input<typeof createKeyInput>;

type KeyRow = typeof automationKeys.$inferSelect;

export interface KeyView {
  id: string;
  org_id: string;
  name: string;
  prefix: string;
  status: KeyStatus;
  operations: string[];
  servers: string[] | "all";
  credentials: string[] | "all";
  allow_ip: string[];
  /** Spec §11's names of the same scope, as POST and PATCH take them. */
  all_servers: boolean;
  server_ids: string[];
  all_credentials: boolean;
  credential_ids: string[];
  allowed_ips: string[];
  /** One line for lists: "exec, deploy on 2 servers; all registry credentials; from 10.0.0.0/8". */
  scope: string;
  rate_limit_per_minute: number;
  rate_limit_per_hour: number;
  expires_at: string | null;
  created_at: string;
  last_used_at: string | null;
  last_used_ip: string | null;
  revoked_at: string | null;
  /** The integration key it was made with, if any (revoking that one revokes this one). */
  created_by_key: string | null;
}

export function keyStatus(row: Pick<KeyRow, "revokedAt" | "expiresAt">, now: Date): KeyStatus {
  if (row.revokedAt) return "revoked";
  if (row.expiresAt && row.expiresAt.getTime() <= now.getTime()) return "expired";
  return "active";
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

function scopeSummary(k: KeyRow): string {
  const parts = [
    `${k.operations.join(", ")} on ${k.allServers ? "all servers" : count(k.serverIds.length, "server")}`,
  ];
  if (k.allCredentials) parts.push("all registry credentials");
  else if (k.credentialIds.length) parts.push(count(k.credentialIds.length, "registry credential"));
  if (k.allowedCidrs.length) parts.push(`from ${k.allowedCidrs.join(", ")}`);
  return parts.join("; ");
}

const view = (k: KeyRow, now: Date): KeyView => ({
  id: k.id,
  org_id: k.orgId,
  name: k.name,
  prefix: k.prefix,
  status: keyStatus(k, now),
  operations: k.operations,
  servers: k.allServers ? "all" : k.serverIds,
  credentials: k.allCredentials ? "all" : k.credentialIds,
  allow_ip: k.allowedCidrs,
  all_servers: k.allServers,
  server_ids: k.serverIds,
  all_credentials: k.allCredentials,
  credential_ids: k.credentialIds,
  allowed_ips: k.allowedCidrs,
  scope: scopeSummary(k),
  rate_limit_per_minute: k.rateLimitPerMinute,
  rate_limit_per_hour: k.rateLimitPerHour,
  expires_at: iso(k.expiresAt),
  created_at: k.createdAt.toISOString(),
  last_used_at: iso(k.lastUsedAt),
  last_used_ip: k.lastUsedIp,
  revoked_at: iso(k.revokedAt),
  created_by_key: k.createdByKey,
});

/** What a key may do, as its audit rows show it (never its hash). */
function auditSummary(k: KeyRow) {
  return {
    name: k.name,
    operations: k.operations,
    all_servers: k.allServers,
    server_ids: k.serverIds,
    all_credentials: k.allCredentials,
    credential_ids: k.credentialIds,
    allowed_ips: k.allowedCidrs,
    rate_limit_per_minute: k.rateLimitPerMinute,
    rate_limit_per_hour: k.rateLimitPerHour,
    expires_at: iso(k.expiresAt),
  };
}

/** Canonical CIDRs, or a 422 naming the first that is not one. */
export function canonicalCidrs(given: readonly string[]): string[] {
  const cidrs: string[] = [];
  const problems: string[] = [];
  for (const c of given) {
    const r = canonicalCidr(c);
    if (r.ok) cidrs.push(r.cidr);
    else problems.push(r.problem);
  }
  if (problems.length)
    throw new ServiceError("validation", `Invalid allowed_ips: ${problems[0]}.`, { allowed_ips: problems });
  return [...new Set(cidrs)];
}

/** Creates a key; the plaintext is in the answer and nowhere else, ever. */
export async function createKey(
  ctx: ServiceContext,
  raw: CreateKeyInput,
  /** The integration key it is made with: revoking that one revokes this one too. */
  createdByKey: string | null = null,
): Promise<KeyView & { key: string }> {
  const input = parseOrThrow(createKeyInput, raw);
  const org = await resolveOrg(ctx, input.org);
  const cidrs = canonicalCidrs(input.allowed_ips);
  await requireAllInOrg(ctx, org.id, input.server_ids, "server");
  await requireAllInOrg(ctx, org.id, input.credential_ids, "credential");
  const now = ctx.now();
  const generated = generateAutomationKey();
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(automationKeys)
      .values({
        orgId: org.id,
        name: input.name,
        keyHash: generated.hash,
        prefix: generated.prefix,
        operations: [...new Set(input.operations)],
        allServers: input.all_servers,
        serverIds: [...new Set(input.server_ids)],
        allCredentials: input.all_credentials,
        credentialIds: [...new Set(input.credential_ids)],
        allowedCidrs: cidrs,
        rateLimitPerMinute: input.rate_limit_per_minute,
        rateLimitPerHour: input.rate_limit_per_hour,
        expiresAt: expiresAtFor(input.expires, now),
        createdAt: now,
        createdByKey,
      })
      .returning();
    if (!row) throw new ServiceError("internal_error", "The key could not be stored.");
    await recordChange(ctx, tx, {
      action: "key.create",
      orgId: org.id,
      keyId: row.id,
      details: { prefix: row.prefix, ...auditSummary(row), created_by_key: createdByKey },
    });
    return { ...view(row, now), key: generated.key };
  });
}

export const updateKeyInput = withScopeRules(
  z.object({
    org: z.string().optional(),
    id: z.string().min(1, "give the key's id"),
    name: keyName.optional(),
    ...scopeChangeFields,
    /** Counted from now, as when the key was made. */
    expires: keyExpirySchema.optional(),
  }),
  false,
);
export type UpdateKeyInput = z.input<typeof updateKeyInput>;

type KeyColumns = typeof automationKeys.$inferInsert;

/** The server scope after an update: a list replaces "all", "all" clears the list; never empty. */
export function nextServerScope(
  row: Pick<KeyRow, "allServers" | "serverIds">,
  all: boolean | undefined,
  ids: string[] | undefined,
) {
  if (all === true) return { allServers: true, serverIds: [] };
  if (ids !== undefined && ids.length > 0) return { allServers: false, serverIds: [...new Set(ids)] };
  const allServers = all ?? (ids === undefined ? row.allServers : false);
  const serverIds = ids ?? row.serverIds;
  if (!allServers && serverIds.length === 0)
    throw new ServiceError("validation", "Invalid server_ids: it needs server_ids or all_servers.", {
      server_ids: ["give at least one server id, or all_servers: true"],
    });
  return { allServers, serverIds };
}

/** The credential scope after an update: a list (possibly empty: none) replaces "all", "all" clears the list. */
export function nextCredentialScope(
  row: Pick<KeyRow, "allCredentials" | "credentialIds">,
  all: boolean | undefined,
  ids: string[] | undefined,
) {
  if (all === true) return { allCredentials: true, credentialIds: [] };
  if (ids !== undefined) return { allCredentials: false, credentialIds: [...new Set(ids)] };
  return { allCredentials: all ?? row.allCredentials, credentialIds: row.credentialIds };
}

/**
 * Changes a key in place, keeping its id and its secret. The access pipeline reads the key's row
 * on every request, so the next request on any instance sees the change; event streams already
 * open keep going (only revocation and expiry end them). Audited with what changed, before and after.
 */
export async function updateKey(ctx: ServiceContext, raw: UpdateKeyInput): Promise<KeyView> {
  const input = parseOrThrow(updateKeyInput, raw);
  const row = await findKey(ctx, input.id, input.org);
  const now = ctx.now();
  if (keyStatus(row, now) === "revoked")
    throw new ServiceError(
      "conflict",
      `Key ${row.prefix}… was revoked and cannot be changed; create a new one.`,
    );
  const set: Partial<KeyColumns> = {
    ...nextServerScope(row, input.all_servers, input.server_ids),
    ...nextCredentialScope(row, input.all_credentials, input.credential_ids),
  };
  if (input.name !== undefined) set.name = input.name;
  if (input.operations !== undefined) set.operations = [...new Set(input.operations)];
  if (input.allowed_ips !== undefined) set.allowedCidrs = canonicalCidrs(input.allowed_ips);
  if (input.rate_limit_per_minute !== undefined) set.rateLimitPerMinute = input.rate_limit_per_minute;
  if (input.rate_limit_per_hour !== undefined) set.rateLimitPerHour = input.rate_limit_per_hour;
  if (input.expires !== undefined) set.expiresAt = expiresAtFor(input.expires, now);
  await requireAllInOrg(ctx, row.orgId, input.server_ids ?? [], "server");
  await requireAllInOrg(ctx, row.orgId, input.credential_ids ?? [], "credential");
  const before = auditSummary(row);
  const after = auditSummary({ ...row, ...set });
  const changed = (Object.keys(before) as (keyof typeof before)[]).filter(
    (k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]),
  );
  if (changed.length === 0) return view(row, now);
  return ctx.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(automationKeys)
      .set(set)
      .where(and(eq(automationKeys.id, row.id), isNull(automationKeys.revokedAt)))
      .returning();
    if (!updated)
      throw new ServiceError(
        "conflict",
        `Key ${row.prefix}… was revoked and cannot be changed; create a new one.`,
      );
    await recordChange(ctx, tx, {
      action: "key.update",
      orgId: row.orgId,
      keyId: row.id,
      details: {
        name: updated.name,
        prefix: updated.prefix,
        changed,
        before: Object.fromEntries(changed.map((k) => [k, before[k]])),
        after: Object.fromEntries(changed.map((k) => [k, after[k]])),
      },
    });
    return view(updated, now);
  });
}

export async function requireAllInOrg(
  ctx: ServiceContext,
  orgId: string,
  ids: string[],
  kind: "server" | "credential",
) {
  if (ids.length === 0) return;
  const table = kind === "server" ? servers : registryCredentials;
  const found = await ctx.db
    .select({ id: table.id })
    .from(table)
    .where(and(eq(table.orgId, orgId), inArray(table.id, ids)));
  const known = new Set(found.map((r) => r.id));
  const missing = ids.filter((id) => !known.has(id));
  if (missing.length) {
    throw new ServiceError(
      "not_found",
      `Unknown ${kind} id${missing.length > 1 ? "s" : ""} in this organisation: ${missing.join(", ")}.`,
    );
  }
}

export async function listKeys(ctx: ServiceContext, orgName?: string): Promise<KeyView[]> {
  const org = await resolveOrg(ctx, orgName);
  const rows = await ctx.db
    .select()
    .from(automationKeys)
    .where(eq(automationKeys.orgId, org.id))
    .orderBy(asc(automationKeys.createdAt));
  const now = ctx.now();
  return rows.map((r) => view(r, now));
}

async function findKey(ctx: ServiceContext, id: string, orgName?: string): Promise<KeyRow> {
  const org = await resolveOrg(ctx, orgName);
  if (!UUID_PATTERN.test(id)) throw new ServiceError("not_found", `Key ${id} not found.`);
  const [row] = await ctx.db
    .select()
    .from(automationKeys)
    .where(and(eq(automationKeys.id, id), eq(automationKeys.orgId, org.id)))
    .limit(1);
  if (!row) throw new ServiceError("not_found", `Key ${id} not found in organisation ${org.name}.`);
  return row;
}

export async function showKey(ctx: ServiceContext, id: string, orgName?: string): Promise<KeyView> {
  return view(await findKey(ctx, id, orgName), ctx.now());
}

/** Revokes at once; revoking again is a no-op that keeps the first revocation time. */
export async function revokeKey(ctx: ServiceContext, id: string, orgName?: string): Promise<KeyView> {
  const row = await findKey(ctx, id, orgName);
  const now = ctx.now();
  return ctx.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(automationKeys)
      .set({ revokedAt: now })
      .where(and(eq(automationKeys.id, row.id), isNull(automationKeys.revokedAt)))
      .returning();
    if (updated)
      await recordChange(ctx, tx, {
        action: "key.revoke",
        orgId: row.orgId,
        keyId: row.id,
        details: { name: row.name, prefix: row.prefix },
      });
    return view(updated ?? row, now);
  });
}
