import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ServiceError } from "../src/errors";
import { masterKeyId, SecretBox } from "../src/secrets/secret-box";

const SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-really\n-----END OPENSSH PRIVATE KEY-----";

describe("secrets at rest", () => {
  it("round-trips a value under AES-256-GCM and never stores it in clear", () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.encrypt(SECRET, "servers.private_key:1");
    expect(sealed).not.toContain("PRIVATE KEY");
    expect(sealed.split(".")).toHaveLength(5);
    expect(sealed.split(".")[1]).toBe(box.currentKeyId);
    expect(box.decrypt(sealed, "servers.private_key:1")).toBe(SECRET);
  });

  it("uses a fresh IV every time, so equal secrets do not look equal", () => {
    const box = new SecretBox(randomBytes(32));
    expect(box.encrypt("same", "c")).not.toBe(box.encrypt("same", "c"));
  });

  it("refuses a value moved to another row or column", () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.encrypt(SECRET, "servers.private_key:1");
    expect(() => box.decrypt(sealed, "servers.private_key:2")).toThrow(ServiceError);
  });

  it("refuses a tampered value", () => {
    const box = new SecretBox(randomBytes(32));
    const parts = box.encrypt(SECRET, "c").split(".");
    const ct = Buffer.from(parts[3] ?? "", "base64url");
    ct[0] = (ct[0] ?? 0) ^ 1;
    parts[3] = ct.toString("base64url");
    expect(() => box.decrypt(parts.join("."), "c")).toThrow(/integrity/);
  });

  it("answers secrets_unavailable without a master key, with no plaintext fallback", () => {
    const box = new SecretBox(undefined);
    expect(box.available).toBe(false);
    const err = (() => {
      try {
        box.encrypt(SECRET, "c");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe("secrets_unavailable");
    expect((err as ServiceError).status).toBe(503);
  });

  it("decrypts values under a previous key and flags them for rotation", () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const sealedOld = new SecretBox(oldKey).encrypt(SECRET, "c");
    const rotated = new SecretBox(newKey, [oldKey]);
    expect(rotated.needsRotation(sealedOld)).toBe(true);
    expect(rotated.decrypt(sealedOld, "c")).toBe(SECRET);
    const resealed = rotated.encrypt(SECRET, "c");
    expect(rotated.needsRotation(resealed)).toBe(false);
    expect(resealed.split(".")[1]).toBe(masterKeyId(newKey));
    // Without the old key the value is unreadable, and the error names the missing key id.
    expect(() => new SecretBox(newKey).decrypt(sealedOld, "c")).toThrow(masterKeyId(oldKey));
  });
});

describe("secrets at rest, forged tags", () => {
  it("refuses an envelope whose authentication tag was shortened", () => {
    const box = new SecretBox(randomBytes(32));
    const parts = box.encrypt("value", "c").split(".");
    parts[4] = Buffer.from(parts[4] ?? "", "base64url")
      .subarray(0, 4)
      .toString("base64url");
    expect(() => box.decrypt(parts.join("."), "c")).toThrow(/integrity/);
  });
});
