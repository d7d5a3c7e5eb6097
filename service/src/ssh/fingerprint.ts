// OpenSSH-style SHA-256 host key fingerprints: the one format hosts are pinned by.
import { createHash, timingSafeEqual } from "node:crypto";

const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** `SHA256:<base64 without padding>` of the raw SSH key blob, exactly as `ssh-keygen -lf` prints it. */
export function fingerprintOf(hostKeyBlob: Buffer): string {
  const digest = createHash("sha256").update(hostKeyBlob).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

/** True when `s` is a well-formed OpenSSH SHA-256 fingerprint (43 base64 characters, no padding). */
export function isFingerprint(s: string): boolean {
  return FINGERPRINT_RE.test(s);
}

/** Exact comparison of two well-formed fingerprints; malformed input never matches. */
export function fingerprintsEqual(a: string, b: string): boolean {
  if (!isFingerprint(a) || !isFingerprint(b)) return false;
  // Both are exactly 50 ASCII bytes here, so timingSafeEqual cannot throw on length.
  return timingSafeEqual(Buffer.from(a, "ascii"), Buffer.from(b, "ascii"));
}
