import { createHash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { automationKeyPattern, KEY_CHECKSUM_LENGTH, KEY_PREFIX, KEY_RANDOM_LENGTH } from "@reoclo/protocol";

// `rca_` + 30 base62 random characters (≈178 bits) + 6 base62 characters of CRC32 over the
// random part, as GitHub's tokens do: a mistyped key is refused before any database work and
// secret scanners can recognise the shape.

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const DISPLAY_LENGTH = 6;

function base62(n: number, width: number): string {
  let out = "";
  for (let i = 0; i < width; i++) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // Rejection sampling keeps every character uniformly likely (248 = 4 × 62).
      if (byte < 248 && out.length < length) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

const checksumOf = (random: string) => base62(crc32(random), KEY_CHECKSUM_LENGTH);

export interface GeneratedKey {
  key: string;
  prefix: string;
  hash: Buffer;
}

export function generateAutomationKey(): GeneratedKey {
  const random = randomBase62(KEY_RANDOM_LENGTH);
  const key = `${KEY_PREFIX}${random}${checksumOf(random)}`;
  return { key, prefix: displayPrefix(key), hash: hashAutomationKey(key) };
}

/** Shape and checksum only: no I/O, so a bad key costs nothing. */
export function isWellFormedAutomationKey(key: string): boolean {
  if (!automationKeyPattern.test(key)) return false;
  const random = key.slice(KEY_PREFIX.length, KEY_PREFIX.length + KEY_RANDOM_LENGTH);
  return key.slice(KEY_PREFIX.length + KEY_RANDOM_LENGTH) === checksumOf(random);
}

export function hashAutomationKey(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

export const displayPrefix = (key: string) => key.slice(0, KEY_PREFIX.length + DISPLAY_LENGTH);
