// Shape of an automation key (spec §2). The CRC32 checksum itself is computed by the
// service; this check lets any holder refuse an obviously mangled key without a round trip.
import { z } from "zod";
import { INTEGRATION_KEY_PREFIX, KEY_PREFIX } from "./limits.js";

/** Base62 characters of randomness: 30 × log2(62) ≈ 178 bits, above the 160 the spec asks. */
export const KEY_RANDOM_LENGTH = 30;
/** Base62 characters of the CRC32 checksum: 62^6 > 2^32, so 6 always suffice (left-padded). */
export const KEY_CHECKSUM_LENGTH = 6;
export const KEY_TOTAL_LENGTH = KEY_PREFIX.length + KEY_RANDOM_LENGTH + KEY_CHECKSUM_LENGTH;

export const automationKeyPattern = new RegExp(
  `^${KEY_PREFIX}[0-9A-Za-z]{${KEY_RANDOM_LENGTH + KEY_CHECKSUM_LENGTH}}$`,
);

/** Integration keys (`rk_t_…`, spec §11) follow the same rules with their own prefix. */
export const integrationKeyPattern = new RegExp(
  `^${INTEGRATION_KEY_PREFIX}[0-9A-Za-z]{${KEY_RANDOM_LENGTH + KEY_CHECKSUM_LENGTH}}$`,
);

/** True when `value` has the shape of an automation key (prefix, length, base62). */
export function isAutomationKeyShape(value: string): boolean {
  return automationKeyPattern.test(value);
}

/** A key's status (spec §2), as `reoclo-admin keys list` and `GET /key` say it. */
export type KeyStatus = "active" | "expired" | "revoked";

/** Expiry choices of `reoclo-admin keys create --expires`. */
export const KEY_EXPIRY_CHOICES = ["30d", "90d", "1y", "never"] as const;
export const keyExpirySchema = z.enum(KEY_EXPIRY_CHOICES);
export type KeyExpiry = z.infer<typeof keyExpirySchema>;
