import { createHash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import {
  automationKeyPattern,
  INTEGRATION_KEY_PREFIX,
  integrationKeyPattern,
  KEY_CHECKSUM_LENGTH,
  KEY_PREFIX,
  KEY_RANDOM_LENGTH,
} from "@reoclo/protocol";

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

function generateKey(prefix: string): GeneratedKey {
  const random = randomBase62(KEY_RANDOM_LENGTH);
  const key = `${prefix}${random}${checksumOf(random)}`;
  return { key, prefix: key.slice(0, prefix.length + DISPLAY_LENGTH), hash: hashAutomationKey(key) };
}

export const generateAutomationKey = () => generateKey(KEY_PREFIX);
/** `rk_t_…` (spec §11): the same format rules as automation keys, hashed the same way. */
export const generateIntegrationKey = () => generateKey(INTEGRATION_KEY_PREFIX);

function wellFormed(key: string, prefix: string, pattern: RegExp): boolean {
  if (!pattern.test(key)) return false;
  const random = key.slice(prefix.length, prefix.length + KEY_RANDOM_LENGTH);
  return key.slice(prefix.length + KEY_RANDOM_LENGTH) === checksumOf(random);
}

/** Shape and checksum only: no I/O, so a bad key costs nothing. */
export const isWellFormedAutomationKey = (key: string) => wellFormed(key, KEY_PREFIX, automationKeyPattern);
export const isWellFormedIntegrationKey = (key: string) =>
  wellFormed(key, INTEGRATION_KEY_PREFIX, integrationKeyPattern);

export function hashAutomationKey(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

export const displayPrefix = (key: string) => key.slice(0, KEY_PREFIX.length + DISPLAY_LENGTH);
