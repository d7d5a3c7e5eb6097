import { timingSafeEqual } from "node:crypto";
import { eq } from "drizzle-orm";
import type { Database } from "../db/database";
import { integrationKeys, users } from "../db/schema";
import type { IntegrationKeyPrincipal } from "../access/principal";
import { hashAutomationKey } from "./key-format";
import { keyStatus } from "./keys";

// An `rk_t_` key as the management API sees it (spec §11): found by hash and compared in
// constant time; refused when revoked, expired, or when the person who made it was removed.
// The creator's role is read with the key, so a role change caps the key on the next request.

export type IntegrationKeyRefusal = "unknown_key" | "revoked_key" | "expired_key" | "creator_removed";

export type IntegrationKeyAuth =
  | { ok: true; principal: IntegrationKeyPrincipal; lastUsedAt: Date | null; lastUsedIp: string | null }
  | { ok: false; reason: IntegrationKeyRefusal; keyId?: string; orgId?: string };

export async function verifyIntegrationKey(
  db: Database,
  key: string,
  now: Date,
): Promise<IntegrationKeyAuth> {
  const hash = hashAutomationKey(key);
  const [row] = await db
    .select({ key: integrationKeys, creatorRole: users.role, creatorRemovedAt: users.removedAt })
    .from(integrationKeys)
    .leftJoin(users, eq(users.id, integrationKeys.createdBy))
    .where(eq(integrationKeys.keyHash, hash))
    .limit(1);
  if (!row || !timingSafeEqual(row.key.keyHash, hash)) return { ok: false, reason: "unknown_key" };
  const k = row.key;
  const refused = (reason: IntegrationKeyRefusal): IntegrationKeyAuth => ({
    ok: false,
    reason,
    keyId: k.id,
    orgId: k.orgId,
  });
  const status = keyStatus(k, now);
  if (status !== "active") return refused(status === "revoked" ? "revoked_key" : "expired_key");
  if (k.createdBy && (row.creatorRemovedAt || !row.creatorRole)) return refused("creator_removed");
  return {
    ok: true,
    lastUsedAt: k.lastUsedAt,
    lastUsedIp: k.lastUsedIp,
    principal: {
      kind: "integration_key",
      orgId: k.orgId,
      keyId: k.id,
      label: k.label,
      prefix: k.prefix,
      acl: k.permissions,
      creator: k.createdBy && row.creatorRole ? { userId: k.createdBy, role: row.creatorRole } : null,
    },
  };
}

/** last_used_at/last_used_ip, at most once a minute per key (or when the address changes). */
export async function touchIntegrationKey(
  db: Database,
  auth: Extract<IntegrationKeyAuth, { ok: true }>,
  ip: string | undefined,
  now: Date,
): Promise<void> {
  const fresh = auth.lastUsedAt && now.getTime() - auth.lastUsedAt.getTime() < 60_000;
  if (fresh && auth.lastUsedIp === (ip ?? null)) return;
  await db
    .update(integrationKeys)
    .set({ lastUsedAt: now, lastUsedIp: ip ?? null })
    .where(eq(integrationKeys.id, auth.principal.keyId));
}
