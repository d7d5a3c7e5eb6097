import { and, asc, eq, inArray, isNull } from "drizzle-orm";
import {
  DEFAULT_RATE_LIMIT_PER_HOUR,
  DEFAULT_RATE_LIMIT_PER_MINUTE,
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
export const EXPIRY_DAYS: Record<KeyExpiry, number | null> = { "30d": 30, "90d": 90, "1y": 365, never: null };

export const createKeyInput = z
  .object({
    org: z.string().optional(),
    name: z.string().trim().min(1).max(100),
    operations: z
      .array(
        z.enum(OPERATION_TYPES, { error: `each operation must be one of ${OPERATION_TYPES.join(", ")}` }),
      )
      .min(1, "list at least one operation"),
    all_servers: z.boolean().default(false),
    servers: z.array(z.uuid("each server must be a server id")).default([]),
    all_credentials: z.boolean().default(false),
    credentials: z.array(z.uuid("each credential must be a credential id")).default([]),
    allow_ip: z.array(z.string()).default([]),
    rate_limit_per_minute: z.number().int().min(1).max(100_000).default(DEFAULT_RATE_LIMIT_PER_MINUTE),
    rate_limit_per_hour: z.number().int().min(1).max(1_000_000).default(DEFAULT_RATE_LIMIT_PER_HOUR),
    expires: keyExpirySchema.default("never"),
  })
  .refine((v) => v.all_servers !== v.servers.length > 0, {
    message: "give exactly one of --servers <id,…> or --all-servers",
    path: ["servers"],
  })
  .refine((v) => !(v.all_credentials && v.credentials.length > 0), {
    message: "give --credentials <id,…> or --all-credentials, not both",
    path: ["credentials"],
  });
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
  rate_limit_per_minute: number;
  rate_limit_per_hour: number;
  expires_at: string | null;
  created_at: string;
  last_used_at: string | null;
  last_used_ip: string | null;
  revoked_at: string | null;
}

export function keyStatus(row: Pick<KeyRow, "revokedAt" | "expiresAt">, now: Date): KeyStatus {
  if (row.revokedAt) return "revoked";
  if (row.expiresAt && row.expiresAt.getTime() <= now.getTime()) return "expired";
  return "active";
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

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
  rate_limit_per_minute: k.rateLimitPerMinute,
  rate_limit_per_hour: k.rateLimitPerHour,
  expires_at: iso(k.expiresAt),
  created_at: k.createdAt.toISOString(),
  last_used_at: iso(k.lastUsedAt),
  last_used_ip: k.lastUsedIp,
  revoked_at: iso(k.revokedAt),
});

/** Creates a key; the plaintext is in the answer and nowhere else, ever. */
export async function createKey(
  ctx: ServiceContext,
  raw: CreateKeyInput,
): Promise<KeyView & { key: string }> {
  const input = parseOrThrow(createKeyInput, raw);
  const org = await resolveOrg(ctx, input.org);
  const cidrs: string[] = [];
  const problems: string[] = [];
  for (const c of input.allow_ip) {
    const r = canonicalCidr(c);
    if (r.ok) cidrs.push(r.cidr);
    else problems.push(r.problem);
  }
  if (problems.length)
    throw new ServiceError("validation", `Invalid --allow-ip: ${problems[0]}.`, { allow_ip: problems });
  await requireAllInOrg(ctx, org.id, input.servers, "server");
  await requireAllInOrg(ctx, org.id, input.credentials, "credential");
  const days = EXPIRY_DAYS[input.expires];
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
        serverIds: [...new Set(input.servers)],
        allCredentials: input.all_credentials,
        credentialIds: [...new Set(input.credentials)],
        allowedCidrs: [...new Set(cidrs)],
        rateLimitPerMinute: input.rate_limit_per_minute,
        rateLimitPerHour: input.rate_limit_per_hour,
        expiresAt: days === null ? null : new Date(now.getTime() + days * 86_400_000),
        createdAt: now,
      })
      .returning();
    if (!row) throw new ServiceError("internal_error", "The key could not be stored.");
    const created = view(row, now);
    await recordChange(ctx, tx, {
      action: "key.create",
      orgId: org.id,
      keyId: row.id,
      details: {
        name: created.name,
        prefix: created.prefix,
        operations: created.operations,
        servers: created.servers,
        credentials: created.credentials,
        allow_ip: created.allow_ip,
        rate_limit_per_minute: created.rate_limit_per_minute,
        rate_limit_per_hour: created.rate_limit_per_hour,
        expires_at: created.expires_at,
      },
    });
    return { ...created, key: generated.key };
  });
}

async function requireAllInOrg(
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
  if (!z.uuid().safeParse(id).success) throw new ServiceError("not_found", `Key ${id} not found.`);
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
