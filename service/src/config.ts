import path from "node:path";
import { z } from "zod";
import { canonicalCidr } from "./net/cidr";

// Settings of spec §9, parsed once at start-up; nothing reads process.env after this.

const MIN_MAX_TIMEOUT_SECONDS = 900;

const intFromEnv = (name: string, def: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === "") return def;
      if (!/^\d+$/.test(v.trim())) {
        ctx.addIssue({ code: "custom", message: `${name} must be a whole number, got "${v}"` });
        return z.NEVER;
      }
      const n = Number(v.trim());
      if (n < min || n > max) {
        ctx.addIssue({ code: "custom", message: `${name} must be between ${min} and ${max}, got ${n}` });
        return z.NEVER;
      }
      return n;
    });

const masterKeySchema = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v.trim() === "") return undefined;
    const key = decodeMasterKey(v.trim());
    if (!key) {
      ctx.addIssue({
        code: "custom",
        message: "REOCLO_MASTER_KEY must be 32 bytes, as 64 hex characters or base64 (openssl rand -hex 32)",
      });
      return z.NEVER;
    }
    return key;
  });

const previousKeysSchema = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const out: Buffer[] = [];
    for (const part of (v ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)) {
      const key = decodeMasterKey(part);
      if (!key) {
        ctx.addIssue({
          code: "custom",
          message:
            "REOCLO_PREVIOUS_MASTER_KEYS must be a comma-separated list of 32-byte keys (hex or base64)",
        });
        return z.NEVER;
      }
      out.push(key);
    }
    return out;
  });

const envSchema = z.object({
  HOST: z.string().trim().min(1).default("127.0.0.1"),
  PORT: intFromEnv("PORT", 8080, 0, 65535),
  DATABASE_URL: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === "") return undefined;
      if (!/^postgres(ql)?:\/\//.test(v.trim())) {
        ctx.addIssue({
          code: "custom",
          message: "DATABASE_URL must start with postgres:// or postgresql://",
        });
        return z.NEVER;
      }
      return v.trim();
    }),
  REOCLO_DATA_DIR: z.string().trim().min(1).default("./.reoclo"),
  REOCLO_MASTER_KEY: masterKeySchema,
  REOCLO_PREVIOUS_MASTER_KEYS: previousKeysSchema,
  REOCLO_TRUSTED_PROXIES: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const out: string[] = [];
      for (const part of (v ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)) {
        const r = canonicalCidr(part);
        if (r.ok) out.push(r.cidr);
        else ctx.addIssue({ code: "custom", message: `REOCLO_TRUSTED_PROXIES: ${r.problem}` });
      }
      return out;
    }),
  REOCLO_SYNC_WAIT_SECONDS: intFromEnv("REOCLO_SYNC_WAIT_SECONDS", 20, 0, 25),
  REOCLO_MAX_TIMEOUT_SECONDS: intFromEnv(
    "REOCLO_MAX_TIMEOUT_SECONDS",
    21_600,
    MIN_MAX_TIMEOUT_SECONDS,
    7 * 24 * 3600,
  ),
  REOCLO_OUTPUT_CAP_BYTES: intFromEnv("REOCLO_OUTPUT_CAP_BYTES", 10_485_760, 65_536, 1_073_741_824),
  REOCLO_SHUTDOWN_GRACE_SECONDS: intFromEnv("REOCLO_SHUTDOWN_GRACE_SECONDS", 30, 0, 3600),
  REOCLO_DEPLOY_TIMEOUT_SECONDS: intFromEnv("REOCLO_DEPLOY_TIMEOUT_SECONDS", 3600, 1, 7 * 24 * 3600),
  REOCLO_REBOOT_TIMEOUT_SECONDS: intFromEnv("REOCLO_REBOOT_TIMEOUT_SECONDS", 600, 1, 24 * 3600),
});

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  /** Current master key, if configured; the embedded database may generate one at start-up. */
  readonly masterKey: Buffer | undefined;
  readonly previousMasterKeys: readonly Buffer[];
  readonly trustedProxies: readonly string[];
  readonly syncWaitSeconds: number;
  readonly maxTimeoutSeconds: number;
  readonly outputCapBytes: number;
  readonly shutdownGraceSeconds: number;
  /** How long a deploy or restart script may run (it waits for its turn first, unbounded). */
  readonly deployTimeoutSeconds: number;
  /** How long a reboot may take, from the command to the host answering SSH again. */
  readonly rebootTimeoutSeconds: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid settings:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Parses the settings of spec §9; throws ConfigError listing every invalid one. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = i.path.join(".");
        return i.message.startsWith(name) ? i.message : `${name}: ${i.message}`;
      }),
    );
  }
  const e = parsed.data;
  return {
    host: e.HOST,
    port: e.PORT,
    databaseUrl: e.DATABASE_URL,
    dataDir: path.resolve(e.REOCLO_DATA_DIR),
    masterKey: e.REOCLO_MASTER_KEY,
    previousMasterKeys: e.REOCLO_PREVIOUS_MASTER_KEYS,
    trustedProxies: e.REOCLO_TRUSTED_PROXIES,
    syncWaitSeconds: e.REOCLO_SYNC_WAIT_SECONDS,
    maxTimeoutSeconds: e.REOCLO_MAX_TIMEOUT_SECONDS,
    outputCapBytes: e.REOCLO_OUTPUT_CAP_BYTES,
    shutdownGraceSeconds: e.REOCLO_SHUTDOWN_GRACE_SECONDS,
    deployTimeoutSeconds: e.REOCLO_DEPLOY_TIMEOUT_SECONDS,
    rebootTimeoutSeconds: e.REOCLO_REBOOT_TIMEOUT_SECONDS,
  };
}

/** Accepts 64 hex characters or base64 of exactly 32 bytes. */
export function decodeMasterKey(text: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(text)) {
    const buf = Buffer.from(text, "base64");
    if (buf.length === 32) return buf;
  }
  return undefined;
}
