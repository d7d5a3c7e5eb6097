import { createHash } from "node:crypto";
import { idempotencyKeySchema } from "@reoclo/protocol";

// Spec §6: the same Idempotency-Key (per API key) with the same body returns the first
// operation instead of running again; another body → 422; while the first is being created → 409.
// The claim is written with the operation, in one transaction (store.ts, createOperation).

export const requestHash = (route: string, input: unknown) =>
  createHash("sha256").update(route).update("\0").update(JSON.stringify(input)).digest("hex");

/** The protocol's rule for the header: 1–IDEMPOTENCY_KEY_MAX_CHARS printable ASCII characters, no spaces. */
export function validIdempotencyKey(value: string): boolean {
  return idempotencyKeySchema.safeParse(value).success;
}
