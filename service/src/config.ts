import path from "node:path";
import {
  DEFAULT_MAX_TIMEOUT_SECONDS,
  DEFAULT_OUTPUT_CAP_BYTES,
  DEFAULT_SYNC_WAIT_SECONDS,
  MASK,
  MIN_MAX_TIMEOUT_SECONDS,
  OUTPUT_TAIL_BYTES,
} from "@reoclo/protocol";
import { z } from "zod";
import { canonicalCidr } from "./net/cidr";
import { causes } from "./db/errors";

// Settings of spec §9, parsed once at start-up; nothing reads process.env after this.

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
  REOCLO_SYNC_WAIT_SECONDS: intFromEnv("REOCLO_SYNC_WAIT_SECONDS", DEFAULT_SYNC_WAIT_SECONDS, 0, 25),
  REOCLO_MAX_TIMEOUT_SECONDS: intFromEnv(
    "REOCLO_MAX_TIMEOUT_SECONDS",
    DEFAULT_MAX_TIMEOUT_SECONDS,
    MIN_MAX_TIMEOUT_SECONDS,
    7 * 24 * 3600,
  ),
  // Never below the tail the answers carry of each stream.
  REOCLO_OUTPUT_CAP_BYTES: intFromEnv(
    "REOCLO_OUTPUT_CAP_BYTES",
    DEFAULT_OUTPUT_CAP_BYTES,
    OUTPUT_TAIL_BYTES,
    1_073_741_824,
  ),
  REOCLO_SHUTDOWN_GRACE_SECONDS: intFromEnv("REOCLO_SHUTDOWN_GRACE_SECONDS", 30, 0, 3600),
  // 0 turns reattaching off: a dropped connection or a dead instance makes an operation `lost` at once.
  REOCLO_REATTACH_BOUND_SECONDS: intFromEnv("REOCLO_REATTACH_BOUND_SECONDS", 600, 0, 24 * 3600),
  // An instance silent this long (no heartbeat) has its operations taken over by another (or settled `lost`).
  REOCLO_TAKEOVER_AFTER_SECONDS: intFromEnv("REOCLO_TAKEOVER_AFTER_SECONDS", 60, 3, 3600),
  REOCLO_CANCEL_ON_SHUTDOWN: z
    .enum(["true", "false", "1", "0", ""], {
      error: (i) => `REOCLO_CANCEL_ON_SHUTDOWN must be true or false, got "${String(i.input)}"`,
    })
    .optional()
    .transform((v) => v === "true" || v === "1"),
  REOCLO_DEPLOY_TIMEOUT_SECONDS: intFromEnv("REOCLO_DEPLOY_TIMEOUT_SECONDS", 3600, 1, 7 * 24 * 3600),
  REOCLO_REBOOT_TIMEOUT_SECONDS: intFromEnv("REOCLO_REBOOT_TIMEOUT_SECONDS", 600, 1, 24 * 3600),
  REOCLO_SESSION_IDLE_MINUTES: intFromEnv("REOCLO_SESSION_IDLE_MINUTES", 720, 1, 30 * 24 * 60),
  REOCLO_SESSION_MAX_HOURS: intFromEnv("REOCLO_SESSION_MAX_HOURS", 168, 1, 90 * 24),
  // The URL CI reaches the service at: the default audience of trust policies (spec §12).
  REOCLO_PUBLIC_URL: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === "") return undefined;
      const text = v.trim().replace(/\/+$/, "");
      if (!/^https?:\/\/[^/\s]+(\/\S*)?$/.test(text) || !URL.canParse(text)) {
        ctx.addIssue({ code: "custom", message: `REOCLO_PUBLIC_URL must be an http(s) URL, got "${v}"` });
        return z.NEVER;
      }
      return text;
    }),
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
  /**
   * How long an operation whose host cannot be reached is tried again (after a dropped connection,
   * or by the instance taking it over) before it is `lost`; 0: no reattaching.
   */
  readonly reattachBoundSeconds: number;
  /** After this long without a heartbeat from its instance, another instance takes an operation over. */
  readonly takeoverAfterSeconds: number;
  /** SIGTERM cancels running operations (the old behaviour) instead of handing them to the next instance. */
  readonly cancelOnShutdown: boolean;
  /** How long a deploy or restart script may run (it waits for its turn first, unbounded). */
  readonly deployTimeoutSeconds: number;
  /** How long a reboot may take, from the command to the host answering SSH again. */
  readonly rebootTimeoutSeconds: number;
  /** A dashboard session ends after this long without a request… */
  readonly sessionIdleMinutes: number;
  /** …and after this long whatever the activity. */
  readonly sessionMaxHours: number;
  /** Where CI reaches the service (`https://deploy.example.com`): trust policies' default audience. */
  readonly publicUrl: string | undefined;
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
    reattachBoundSeconds: e.REOCLO_REATTACH_BOUND_SECONDS,
    cancelOnShutdown: e.REOCLO_CANCEL_ON_SHUTDOWN,
    takeoverAfterSeconds: e.REOCLO_TAKEOVER_AFTER_SECONDS,
    deployTimeoutSeconds: e.REOCLO_DEPLOY_TIMEOUT_SECONDS,
    rebootTimeoutSeconds: e.REOCLO_REBOOT_TIMEOUT_SECONDS,
    sessionIdleMinutes: e.REOCLO_SESSION_IDLE_MINUTES,
    sessionMaxHours: e.REOCLO_SESSION_MAX_HOURS,
    publicUrl: e.REOCLO_PUBLIC_URL,
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

// Start-up failures said as the setting to change, in one line (issue 14: a first run that works).

/** `host:port`, an IPv6 host in brackets. */
export const hostPort = (host: string, port: number) =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;

/** Why HOST:PORT cannot be listened on, naming the setting to change; undefined for other errors. */
export function listenProblem(err: unknown, where: { host: string; port: number }): string | undefined {
  const address = hostPort(where.host, where.port);
  switch ((err as NodeJS.ErrnoException | null)?.code) {
    case "EADDRINUSE":
      return `${address} is already in use; set PORT to another port (or stop what listens there)`;
    case "EADDRNOTAVAIL":
      return `cannot listen on ${address}: HOST ${where.host} is not an address of this machine; set HOST to one of its addresses (127.0.0.1 for this machine only, 0.0.0.0 for every interface)`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `cannot listen on ${address}: HOST ${where.host} does not resolve to an address; set HOST to an address of this machine (127.0.0.1 for this machine only, 0.0.0.0 for every interface)`;
    case "EACCES":
      return where.port < 1024
        ? `cannot listen on ${address}: ports below 1024 need privileges; set PORT to 1024 or above (the default is 8080), or give node the CAP_NET_BIND_SERVICE capability`
        : `cannot listen on ${address}: permission denied; set HOST or PORT to an address and port this user may use`;
    default:
      return undefined;
  }
}

/** DATABASE_URL fit for a message: its password, and any password-like query parameter, as ***. */
export function maskDatabaseUrl(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? "";
  const rest = url.slice(scheme.length);
  // The last @: a password with an unencoded @ is masked whole (over-masking is the safe side).
  const at = rest.lastIndexOf("@");
  let masked = url;
  if (at !== -1) {
    const userinfo = rest.slice(0, at);
    const colon = userinfo.indexOf(":");
    masked = scheme + (colon === -1 ? userinfo : `${userinfo.slice(0, colon)}:${MASK}`) + rest.slice(at);
  }
  return masked.replace(/([?&][^=&#]*(?:pass|secret|token|key)[^=&#]*=)[^&#]*/gi, `$1${MASK}`);
}

/** The user and database a postgres:// URL names, for messages (postgres.js's defaults otherwise). */
function urlParts(url: string): { user: string | undefined; database: string | undefined } {
  try {
    const u = new URL(url);
    const database = decodeURIComponent(u.pathname.replace(/^\//, "")) || undefined;
    return { user: decodeURIComponent(u.username) || undefined, database };
  } catch {
    return { user: undefined, database: undefined };
  }
}

/** What a connection that never became usable says, by postgres.js's (or Node's) error code. */
const CONNECT_FAILURES: Record<string, string> = {
  ECONNREFUSED: "connection refused; check that PostgreSQL runs there",
  ENOTFOUND: "its host name does not resolve; check the host in DATABASE_URL",
  EAI_AGAIN: "its host name could not be resolved (DNS); check the host in DATABASE_URL",
  CONNECT_TIMEOUT:
    "no answer within the connect timeout; check the host and port, and that no firewall drops the connection",
  ETIMEDOUT:
    "no answer within the connect timeout; check the host and port, and that no firewall drops the connection",
  EHOSTUNREACH: "the host is unreachable from here; check the host in DATABASE_URL",
  ENETUNREACH: "the host is unreachable from here; check the host in DATABASE_URL",
};

/** Codes along the error and its causes (drizzle and the drivers wrap each other). */
function errorCodes(err: unknown): { code: string; message: string }[] {
  const out: { code: string; message: string }[] = [];
  for (const e of causes(err)) {
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code === "string") out.push({ code, message: e instanceof Error ? e.message : "" });
  }
  return out;
}

/**
 * Why the service could not use DATABASE_URL, naming the setting and never its password;
 * undefined when `err` is no connection or login failure (it is then reported as it is).
 */
export function databaseProblem(err: unknown, databaseUrl: string): string | undefined {
  const where = `DATABASE_URL (${maskDatabaseUrl(databaseUrl)})`;
  const { user, database } = urlParts(databaseUrl);
  const who = user ? `user "${user}"` : "the user";
  for (const { code, message } of errorCodes(err)) {
    const failure = CONNECT_FAILURES[code];
    if (failure) {
      return `cannot connect to the database at ${where}: ${failure}, or unset DATABASE_URL to use the embedded database`;
    }
    // SQLSTATEs of PostgreSQL appendix A: invalid password, invalid authorization, unknown database.
    if (code === "28P01") {
      return `the database at ${where} refused the password of ${who} (authentication failed); check the user name and password in DATABASE_URL`;
    }
    if (code === "28000") {
      return `the database at ${where} refused ${who}: ${message}; check the user in DATABASE_URL and the server's pg_hba.conf`;
    }
    if (code === "3D000") {
      // PostgreSQL names it ("database "x" does not exist"); without a path the user's name is used.
      const name = /database "([^"]+)"/.exec(message)?.[1] ?? database ?? user;
      const which = name ? `the database "${name}"` : "the database DATABASE_URL names";
      const create = name ? ` (createdb ${name})` : "";
      return `${which} does not exist on the PostgreSQL server at ${where}; create it${create} or name an existing database in DATABASE_URL`;
    }
  }
  return undefined;
}
