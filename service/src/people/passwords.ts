import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from "node:crypto";

// Passwords are stored as scrypt hashes (spec §11: a slow salted hash), in a self-describing
// string so the cost can be raised later without breaking the hashes already stored:
// `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>`.

const COST = { N: 2 ** 15, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;
const SALT_BYTES = 16;
/** 128·N·r bytes are needed; the default cap (32 MiB) is exactly that at N=2^15, so give room. */
const MAX_MEM = 64 * 1024 * 1024;

function scrypt(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password.normalize("NFKC"), salt, keylen, opts, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, KEY_LENGTH, { ...COST, maxmem: MAX_MEM });
  return ["scrypt", COST.N, COST.r, COST.p, salt.toString("base64"), key.toString("base64")].join("$");
}

/** Compares in constant time; a malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, saltText, hashText] = stored.split("$");
  if (scheme !== "scrypt" || !saltText || !hashText) return false;
  const expected = Buffer.from(hashText, "base64");
  const key = await scrypt(password, Buffer.from(saltText, "base64"), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: MAX_MEM,
  });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * A stored hash for no one: signing in with an unknown email spends the same scrypt work as a
 * wrong password, so the time taken does not say whether the email exists.
 */
let decoy: Promise<string> | undefined;
export const decoyHash = (): Promise<string> => (decoy ??= hashPassword(randomBytes(16).toString("hex")));

const PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz2345678"; // 56 characters: no 0, O, 1, l, I or 9

/** A one-time password: 20 characters of an unambiguous alphabet (~114 bits). */
export function oneTimePassword(): string {
  let out = "";
  while (out.length < 20) {
    for (const byte of randomBytes(40)) {
      // 224 = 4 × 56: rejection sampling keeps every character equally likely.
      if (byte < 224 && out.length < 20) out += PASSWORD_ALPHABET[byte % PASSWORD_ALPHABET.length];
    }
  }
  return out;
}
