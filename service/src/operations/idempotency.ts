import { createHash } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { IDEMPOTENCY_RETENTION_MS } from "@reoclo/protocol";
import type { Database } from "../db/database";
import { idempotencyRecords } from "../db/schema";
import { AppError } from "../errors";

// Spec §6: the same Idempotency-Key (per API key) with the same body returns the first
// operation instead of running again; another body → 422; while the first is being created → 409.

export type Claim = { kind: "new" } | { kind: "replay"; operationId: string };

export const requestHash = (route: string, input: unknown) =>
  createHash("sha256").update(route).update("\0").update(JSON.stringify(input)).digest("hex");

export function validIdempotencyKey(value: string): boolean {
  return value.length >= 1 && value.length <= 255 && /^[\x21-\x7e]+$/.test(value);
}

export async function claimIdempotencyKey(
  db: Database,
  scope: { keyId: string; orgId: string },
  idempotencyKey: string,
  hash: string,
  now: Date,
): Promise<Claim> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const inserted = await db
      .insert(idempotencyRecords)
      .values({
        keyId: scope.keyId,
        orgId: scope.orgId,
        idempotencyKey,
        requestHash: hash,
        expiresAt: new Date(now.getTime() + IDEMPOTENCY_RETENTION_MS),
      })
      .onConflictDoNothing()
      .returning({ key: idempotencyRecords.idempotencyKey });
    if (inserted.length) return { kind: "new" };
    const [seen] = await db
      .select()
      .from(idempotencyRecords)
      .where(
        and(eq(idempotencyRecords.keyId, scope.keyId), eq(idempotencyRecords.idempotencyKey, idempotencyKey)),
      )
      .limit(1);
    if (!seen) continue; // removed meanwhile: try again
    if (seen.expiresAt.getTime() <= now.getTime()) {
      await release(db, scope.keyId, idempotencyKey);
      continue;
    }
    if (seen.requestHash !== hash) {
      throw new AppError(
        "idempotency_key_mismatch",
        "This Idempotency-Key was used with a different request body; use a new key for a new request.",
      );
    }
    if (!seen.operationId) {
      throw new AppError(
        "idempotency_in_progress",
        "A request with this Idempotency-Key is still being created; retry shortly.",
      );
    }
    return { kind: "replay", operationId: seen.operationId };
  }
  throw new AppError(
    "idempotency_in_progress",
    "A request with this Idempotency-Key is still being created; retry shortly.",
  );
}

export async function recordIdempotentOperation(
  db: Database,
  keyId: string,
  idempotencyKey: string,
  operationId: string,
) {
  await db
    .update(idempotencyRecords)
    .set({ operationId })
    .where(and(eq(idempotencyRecords.keyId, keyId), eq(idempotencyRecords.idempotencyKey, idempotencyKey)));
}

/** Forgets a claim whose request failed before an operation existed, so a retry may run it. */
export async function release(db: Database, keyId: string, idempotencyKey: string) {
  await db
    .delete(idempotencyRecords)
    .where(and(eq(idempotencyRecords.keyId, keyId), eq(idempotencyRecords.idempotencyKey, idempotencyKey)));
}
