import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { ServiceError } from "../errors";

// AES-256-GCM envelopes: `v1.<key id>.<iv>.<ciphertext>.<tag>` (base64url). The key id lets the
// master key be rotated: values under a previous key still decrypt until `secrets rotate` re-encrypts.
// The additional data binds a value to its row and column, so an envelope cannot be moved elsewhere.

const VERSION = "v1";

export function masterKeyId(key: Buffer): string {
  return createHash("sha256").update("reoclo-master-key-id\0").update(key).digest("hex").slice(0, 16);
}

export class SecretBox {
  private readonly keys = new Map<string, Buffer>();
  private readonly currentId: string | undefined;

  constructor(current: Buffer | undefined, previous: readonly Buffer[] = []) {
    for (const k of previous) this.keys.set(masterKeyId(k), k);
    if (current) {
      this.currentId = masterKeyId(current);
      this.keys.set(this.currentId, current);
    }
  }

  get available(): boolean {
    return this.currentId !== undefined;
  }

  get currentKeyId(): string | undefined {
    return this.currentId;
  }

  encrypt(plaintext: string, context: string): string {
    const id = this.requireCurrent();
    const key = this.keys.get(id) as Buffer;
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return [
      VERSION,
      id,
      iv.toString("base64url"),
      ct.toString("base64url"),
      cipher.getAuthTag().toString("base64url"),
    ].join(".");
  }

  decrypt(envelope: string, context: string): string {
    this.requireCurrent();
    const parts = envelope.split(".");
    const [version, id, iv, ct, tag] = parts;
    if (parts.length !== 5 || version !== VERSION || !id || iv === undefined || ct === undefined || !tag) {
      throw new ServiceError(
        "secrets_unavailable",
        "A stored secret is not in a format this service can read.",
      );
    }
    const key = this.keys.get(id);
    if (!key) {
      throw new ServiceError(
        "secrets_unavailable",
        `A stored secret was encrypted under master key ${id}, which is not configured; add it to REOCLO_PREVIOUS_MASTER_KEYS and run "reoclo-admin secrets rotate".`,
      );
    }
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"), {
        authTagLength: 16,
      });
      decipher.setAAD(Buffer.from(context, "utf8"));
      const authTag = Buffer.from(tag, "base64url");
      // A shortened tag would make forgeries cheap: only the full 16 bytes are accepted.
      if (authTag.length !== 16) throw new Error("bad tag length");
      decipher.setAuthTag(authTag);
      return Buffer.concat([decipher.update(Buffer.from(ct, "base64url")), decipher.final()]).toString(
        "utf8",
      );
    } catch {
      throw new ServiceError(
        "secrets_unavailable",
        "A stored secret failed its integrity check and was not used.",
      );
    }
  }

  /** True when the envelope is under a key other than the current one. */
  needsRotation(envelope: string): boolean {
    return envelope.split(".")[1] !== this.currentId;
  }

  private requireCurrent(): string {
    if (!this.currentId) {
      throw new ServiceError(
        "secrets_unavailable",
        "No master key is configured, so SSH keys and registry passwords cannot be used; set REOCLO_MASTER_KEY (32 bytes, hex or base64) and restart.",
      );
    }
    return this.currentId;
  }
}
