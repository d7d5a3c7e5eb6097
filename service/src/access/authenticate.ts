import { timingSafeEqual } from "node:crypto";
import type { Database } from "../db/database";
import { hashAutomationKey, isWellFormedAutomationKey } from "../keys/key-format";
import { keyStatus } from "../keys/keys";
import { findKeyByHash, type AutomationKeyRow } from "../keys/lookup";

// Steps 1–2 of the pipeline (spec §2). A malformed key or bad checksum is refused with no
// database work; the lookup is by hash, then compared in constant time.

export type AuthFailure = "missing_key" | "malformed_key" | "unknown_key" | "revoked_key" | "expired_key";

export type AuthResult =
  { ok: true; key: AutomationKeyRow } | { ok: false; reason: AuthFailure; key?: AutomationKeyRow };

/** Extracts the key from `Authorization: Bearer rca_…` without touching the database. */
export function parseBearer(header: string | undefined): { key: string } | { reason: AuthFailure } {
  if (!header || !header.trim()) return { reason: "missing_key" };
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header.trim());
  if (!m?.[1] || !isWellFormedAutomationKey(m[1])) return { reason: "malformed_key" };
  return { key: m[1] };
}

export async function verifyAutomationKey(db: Database, key: string, now: Date): Promise<AuthResult> {
  const hash = hashAutomationKey(key);
  const row = await findKeyByHash(db, hash);
  if (!row || row.keyHash.length !== hash.length || !timingSafeEqual(row.keyHash, hash)) {
    return { ok: false, reason: "unknown_key" };
  }
  const status = keyStatus(row, now);
  if (status === "revoked") return { ok: false, reason: "revoked_key", key: row };
  if (status === "expired") return { ok: false, reason: "expired_key", key: row };
  return { ok: true, key: row };
}
