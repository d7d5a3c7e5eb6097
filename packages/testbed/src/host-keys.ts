// Host and client keys of the test hosts, and the fingerprint form hosts are pinned by.
import { createHash } from "node:crypto";

/**
 * `SHA256:<base64 without padding>` of the raw SSH key blob, exactly as `ssh-keygen -lf` prints it:
 * the same as the service's fingerprintOf (service/src/ssh/fingerprint.ts), which the test bed does not import.
 */
export function fingerprintOf(hostKeyBlob: Buffer): string {
  const digest = createHash("sha256").update(hostKeyBlob).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}
