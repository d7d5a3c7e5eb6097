// Host and client keys of the test hosts, and the fingerprint form hosts are pinned by.
import { createHash } from "node:crypto";
import ssh2 from "ssh2";
import type { ParsedKey } from "ssh2";
import { generateKeyPair } from "./keys";

/**
 * `SHA256:<base64 without padding>` of the raw SSH key blob, exactly as `ssh-keygen -lf` prints it:
 * the same as the service's fingerprintOf (service/src/ssh/fingerprint.ts), which the test bed does not import.
 */
export function fingerprintOf(hostKeyBlob: Buffer): string {
  const digest = createHash("sha256").update(hostKeyBlob).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

export function generateClientKey(): { privateKey: string; publicKey: string } {
  const pair = generateKeyPair("reoclo-test-client");
  return { privateKey: pair.private, publicKey: pair.public };
}

export function parsePublicKey(publicKey: string): ParsedKey {
  const parsed = ssh2.utils.parseKey(publicKey);
  if (parsed instanceof Error) throw parsed;
  return parsed;
}
