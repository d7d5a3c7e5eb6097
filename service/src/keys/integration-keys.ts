import {
  aclIntersection,
  aclPermissions,
  aclSchema,
  ALL_PERMISSIONS,
  INTEGRATION_KEY_PRESETS,
  isUuid,
  keyExpirySchema,
  PRESET_ACLS,
  type Acl,
  type IntegrationKeyPreset,
  type KeyStatus,
} from "@reoclo/protocol";
import { and, asc, eq, inArray, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import type { Database } from "../db/database";
import { automationKeys, integrationKeys, users } from "../db/schema";
import { ServiceError } from "../errors";
import { resolveOrg } from "../orgs/orgs";
import { generateIntegrationKey } from "./key-format";
import { expiresAtFor, keyStatus } from "./keys";

// Integration keys (`rk_t_…`, spec §11): made by a person (or reoclo-admin) for scripts and tools,
// with an ACL that never exceeds what their maker may do. The plaintext is in the create answer
// and nowhere else; only its SHA-256 is stored. Verification is in integration-lookup.ts.

export const createIntegrationKeyInput = z
  .object({
    label: z.string().trim().min(1, "give the key a label").max(100),
    preset: z.enum(INTEGRATION_KEY_PRESETS, {
      error: `must be one of ${INTEGRATION_KEY_PRESETS.join(", ")}`,
    }),
    /** Only with the `custom` preset: resource → actions (spec §11). */
    permissions: aclSchema.nullish(),
    expires: keyExpirySchema.default("never"),
  })
  .superRefine((v, ctx) => {
    if (v.preset === "custom" && v.permissions == null)
      ctx.addIssue({
        code: "custom",
        path: ["permissions"],
        message: 'the custom preset needs permissions, e.g. {"servers": ["read"]}',
      });
    if (v.preset !== "custom" && v.permissions != null)
      ctx.addIssue({
        code: "custom",
        path: ["permissions"],
        message: `the ${v.preset} preset sets the permissions itself; send permissions only with "custom"`,
      });
  });
export type CreateIntegrationKeyInput = z.input<typeof createIntegrationKeyInput>;

/**
 * Who makes a key: the most it may hold (null: reoclo-admin, no cap) and the person it is recorded
 * as made by (null: reoclo-admin). The key stops working when that person is removed.
 */
export interface KeyMaker {
  readonly cap: Acl | null;
  readonly createdBy: string | null;
  /** The integration key making it, if any: revoking that key revokes this one (and what it made). */
  readonly viaKey: string | null;
}

type IntegrationKeyRow = typeof integrationKeys.$inferSelect;

export interface IntegrationKeyView {
  id: string;
  org_id: string;
  label: string;
  prefix: string;
  preset: IntegrationKeyPreset;
  permissions: Acl;
  /** `servers:read, servers:execute, …`, or `all permissions`. */
  permission_summary: string;
  status: KeyStatus;
  expires_at: string | null;
  created_at: string;
  /** The person who made it (id and email); null when reoclo-admin made it. */
  created_by: string | null;
  created_by_email: string | null;
  /** The integration key it was made with (revoking that one revoked or revokes this one). */
  created_by_key: string | null;
  last_used_at: string | null;
  last_used_ip: string | null;
  revoked_at: string | null;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function permissionSummary(acl: Acl): string {
  const held = aclPermissions(acl);
  if (held.length === ALL_PERMISSIONS.length) return "all permissions";
  return held.length === 0 ? "no permissions" : held.join(", ");
}

const view = (k: IntegrationKeyRow, createdByEmail: string | null, now: Date): IntegrationKeyView => ({
  id: k.id,
  org_id: k.orgId,
  label: k.label,
  prefix: k.prefix,
  preset: k.preset,
  permissions: k.permissions,
  permission_summary: permissionSummary(k.permissions),
  status: keyStatus(k, now),
  expires_at: iso(k.expiresAt),
  created_at: k.createdAt.toISOString(),
  created_by: k.createdBy,
  created_by_email: createdByEmail,
  created_by_key: k.createdByKey,
  last_used_at: iso(k.lastUsedAt),
  last_used_ip: k.lastUsedIp,
  revoked_at: iso(k.revokedAt),
});

/** The ACL a key is stored with: its preset's (or its custom permissions), within its maker's cap. */
export function grantedAcl(input: z.output<typeof createIntegrationKeyInput>, maker: KeyMaker): Acl {
  const asked = input.preset === "custom" ? (input.permissions ?? {}) : PRESET_ACLS[input.preset];
  return maker.cap === null ? asked : aclIntersection(asked, maker.cap);
}

/** Creates a key; the plaintext is in the answer and nowhere else, ever. */
export async function createIntegrationKey(
  ctx: ServiceContext,
  orgNameOrId: string | undefined,
  maker: KeyMaker,
  input: z.output<typeof createIntegrationKeyInput>,
): Promise<IntegrationKeyView & { key: string }> {
  const org = await resolveOrg(ctx, orgNameOrId);
  const acl = grantedAcl(input, maker);
  if (aclPermissions(acl).length === 0)
    throw new ServiceError(
      "validation",
      "Invalid permissions: none of them is within what you may do yourself, so the key could do nothing.",
      { permissions: ["none is within your own permissions"] },
    );
  const now = ctx.now();
  const generated = generateIntegrationKey();
  const createdByEmail = maker.createdBy ? await emailOf(ctx, maker.createdBy) : null;
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(integrationKeys)
      .values({
        orgId: org.id,
        createdBy: maker.createdBy,
        createdByKey: maker.viaKey,
        label: input.label,
        keyHash: generated.hash,
        prefix: generated.prefix,
        preset: input.preset,
        permissions: acl,
        expiresAt: expiresAtFor(input.expires, now),
        createdAt: now,
      })
      .returning();
    if (!row) throw new ServiceError("internal_error", "The key could not be stored.");
    const created = view(row, createdByEmail, now);
    await recordChange(ctx, tx, {
      action: "integration_key.create",
      orgId: org.id,
      keyId: row.id,
      details: {
        label: created.label,
        prefix: created.prefix,
        preset: created.preset,
        permissions: aclPermissions(acl),
        expires_at: created.expires_at,
        created_by: created.created_by,
      },
    });
    return { ...created, key: generated.key };
  });
}

async function emailOf(ctx: ServiceContext, userId: string): Promise<string | null> {
  const [row] = await ctx.db.select({ email: users.email }).from(users).where(eq(users.id, userId)).limit(1);
  return row?.email ?? null;
}

const withCreator = (ctx: ServiceContext) =>
  ctx.db
    .select({ key: integrationKeys, email: users.email })
    .from(integrationKeys)
    .leftJoin(users, eq(users.id, integrationKeys.createdBy));

/** Every integration key of the organisation, oldest first (revoked and expired ones too). */
export async function listIntegrationKeys(
  ctx: ServiceContext,
  orgNameOrId: string | undefined,
): Promise<IntegrationKeyView[]> {
  const org = await resolveOrg(ctx, orgNameOrId);
  const rows = await withCreator(ctx)
    .where(eq(integrationKeys.orgId, org.id))
    .orderBy(asc(integrationKeys.createdAt), asc(integrationKeys.id));
  const now = ctx.now();
  return rows.map((r) => view(r.key, r.email, now));
}

/**
 * Revokes at once, on every instance (each request reads the key). `onlyMadeBy` limits it to the
 * keys one person made (a developer's own); revoking again keeps the first revocation time.
 */
export async function revokeIntegrationKey(
  ctx: ServiceContext,
  orgNameOrId: string | undefined,
  id: string,
  opts: { onlyMadeBy?: string | undefined } = {},
): Promise<IntegrationKeyView> {
  const org = await resolveOrg(ctx, orgNameOrId);
  const notFound = () => new ServiceError("not_found", `Integration key ${id} not found.`);
  if (!isUuid(id)) throw notFound();
  const [found] = await withCreator(ctx)
    .where(and(eq(integrationKeys.id, id), eq(integrationKeys.orgId, org.id)))
    .limit(1);
  if (!found) throw notFound();
  const { key: row, email } = found;
  if (opts.onlyMadeBy !== undefined && row.createdBy !== opts.onlyMadeBy)
    throw new ServiceError(
      "forbidden",
      "You may revoke only the integration keys you made; a manager or owner can revoke this one.",
    );
  const now = ctx.now();
  return ctx.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(integrationKeys)
      .set({ revokedAt: now })
      .where(and(eq(integrationKeys.id, row.id), isNull(integrationKeys.revokedAt)))
      .returning();
    if (updated) {
      const made = await revokeKeysMadeWith(tx, row.id, now);
      await recordChange(ctx, tx, {
        action: "integration_key.revoke",
        orgId: row.orgId,
        keyId: row.id,
        details: {
          label: row.label,
          prefix: row.prefix,
          created_by: row.createdBy,
          // A leaked key's revocation also stops every key made with it, at any depth.
          also_revoked: made,
        },
      });
    }
    return view(updated ?? row, email, now);
  });
}

/**
 * Revokes, at `now`, the integration keys made with `keyId` (and those made with them, at any
 * depth) and the automation keys made with any of them; answers their ids and prefixes.
 */
async function revokeKeysMadeWith(
  db: Database,
  keyId: string,
  now: Date,
): Promise<{ integration_keys: string[]; automation_keys: string[] }> {
  const made = rowsOf<{ id: string; prefix: string }>(
    await db.execute(
      sql`with recursive tree(id) as (
        select id from integration_keys where created_by_key = ${keyId}
        union select k.id from integration_keys k join tree t on k.created_by_key = t.id
      )
      update integration_keys set revoked_at = ${now.toISOString()}::timestamptz
      where id in (select id from tree) and revoked_at is null
      returning id::text, prefix`,
    ),
  );
  const parents = [keyId, ...made.map((r) => r.id)];
  const automation = await db
    .update(automationKeys)
    .set({ revokedAt: now })
    .where(and(inArray(automationKeys.createdByKey, parents), isNull(automationKeys.revokedAt)))
    .returning({ prefix: automationKeys.prefix });
  return { integration_keys: made.map((r) => r.prefix), automation_keys: automation.map((r) => r.prefix) };
}

/** Rows of `execute`: postgres.js answers an array, PGlite an object with `rows`. */
const rowsOf = <T>(result: unknown): T[] =>
  Array.isArray(result) ? (result as T[]) : ((result as { rows: T[] }).rows ?? []);
