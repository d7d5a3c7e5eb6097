import {
  DEFAULT_RATE_LIMIT_PER_HOUR,
  DEFAULT_RATE_LIMIT_PER_MINUTE,
  type OperationOutcome,
  type OperationType,
  type Acl,
  type IntegrationKeyPreset,
  type OutputStream,
  type RegistryType,
  type Role,
  type RunContext,
  type VerifiedRunContext,
} from "@reoclo/protocol";
import { sql } from "drizzle-orm";
import {
  type AnyPgColumn,
  bigint,
  bigserial,
  boolean,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

// One table per entity of spec §2–§6. Secrets are stored only as `*_enc` envelopes (see secrets/).

const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array }>({
  dataType: () => "bytea",
  fromDriver: (v) => (Buffer.isBuffer(v) ? v : Buffer.from(v)),
});

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();

export const organisations = pgTable("organisations", {
  id: uuid("id").primaryKey().defaultRandom(),
  name: text("name").notNull().unique(),
  createdAt: createdAt(),
});

export const servers = pgTable(
  "servers",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    orgId: uuid("org_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    host: text("host").notNull(),
    port: integer("port").notNull().default(22),
    username: text("username").notNull(),
    privateKeyEnc: text("private_key_enc").notNull(),
    passphraseEnc: text("passphrase_enc"),
    /** Pinned `SHA256:…` fingerprint of the host key; a mismatch fails before authentication. */
    hostKeyFingerprint: text("host_key_fingerprint").notNull(),
    containerCli: text("container_cli").notNull().default("docker"),
    rebootCommand: text("reboot_command").notNull().default("sudo -n /sbin/reboot"),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("servers_org_name_uq").on(t.orgId, t.name)],
);

/**
 * What an automation key may reach and how often; a trust policy keeps the same columns for the
 * keys it mints. A function, so each table gets its own column builders.
 */
const scopeColumns = () => ({
  operations: text("operations").array().$type<OperationType[]>().notNull(),
  allServers: boolean("all_servers").notNull().default(false),
  serverIds: uuid("server_ids")
    .array()
    .notNull()
    .default(sql`'{}'::uuid[]`),
  allCredentials: boolean("all_credentials").notNull().default(false),
  credentialIds: uuid("credential_ids")
    .array()
    .notNull()
    .default(sql`'{}'::uuid[]`),
  /** Canonical CIDRs; empty means no IP restriction. */
  allowedCidrs: text("allowed_cidrs")
    .array()
    .notNull()
    .default(sql`'{}'::text[]`),
  rateLimitPerMinute: integer("rate_limit_per_minute").notNull().default(DEFAULT_RATE_LIMIT_PER_MINUTE),
  rateLimitPerHour: integer("rate_limit_per_hour").notNull().default(DEFAULT_RATE_LIMIT_PER_HOUR),
});

export const automationKeys = pgTable(
  "automation_keys",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    orgId: uuid("org_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    /** SHA-256 of the whole key; the plaintext is never stored. */
    keyHash: bytea("key_hash").notNull().unique(),
    /** Short display prefix, e.g. `rca_3kTm9x`. */
    prefix: text("prefix").notNull(),
    ...scopeColumns(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    createdAt: createdAt(),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    lastUsedIp: text("last_used_ip"),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    /**
     * The integration key it was made with, if any: revoking that key revokes this one too (no
     * foreign key: integration keys are declared after this table, and a key row is never deleted).
     */
    createdByKey: uuid("created_by_key"),
    /** The trust policy that minted it from a CI's OIDC token (spec §12); removing the policy revokes it. */
    trustPolicyId: uuid("trust_policy_id").references((): AnyPgColumn => trustPolicies.id, {
      onDelete: "set null",
    }),
    /** The verified claims of the token it was minted for: every audit row of its requests carries them. */
    runContextVerified: jsonb("run_context_verified").$type<VerifiedRunContext>(),
  },
  (t) => [
    index("automation_keys_org_idx").on(t.orgId),
    index("automation_keys_trust_policy_idx").on(t.trustPolicyId),
  ],
);

/**
 * Keyless CI (spec §12): whom an organisation trusts (an OIDC issuer, an audience, claim
 * conditions) and what the short-lived automation key minted for a matching token may do.
 */
export const trustPolicies = pgTable(
  "trust_policies",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    orgId: uuid("org_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    /** Exact `iss` of the tokens (an https URL, or http on loopback). */
    issuer: text("issuer").notNull(),
    /** Exact `aud` the tokens must carry. */
    audience: text("audience").notNull(),
    /** Claim name → exact value or `*` glob; all must match. */
    conditions: jsonb("conditions").$type<Record<string, string>>().notNull(),
    ...scopeColumns(),
    /** How long a minted key lives (spec §12: default 15 min, at most 1 h). */
    lifetimeSeconds: integer("lifetime_seconds").notNull().default(900),
    createdAt: createdAt(),
    /** Who made it: `user:<id>`, `integration_key:<id>` or `admin-cli`. */
    createdBy: text("created_by").notNull(),
    /** Removed policies keep their row (keys and audit rows name them) and mint nothing. */
    deletedAt: timestamp("deleted_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("trust_policies_org_name_live_uq")
      .on(t.orgId, t.name)
      .where(sql`deleted_at is null`),
    index("trust_policies_issuer_idx").on(t.issuer),
  ],
);

/** `jti`s of OIDC tokens already exchanged: a second insert of one is a replay (spec §12). */
export const oidcTokenUses = pgTable(
  "oidc_token_uses",
  {
    issuer: text("issuer").notNull(),
    jti: text("jti").notNull(),
    /** The token's `exp` (plus the allowed skew): past it the token is refused anyway, so the row may go. */
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.issuer, t.jti] }), index("oidc_token_uses_expires_idx").on(t.expiresAt)],
);

export const registryCredentials = pgTable(
  "registry_credentials",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    orgId: uuid("org_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    registryType: text("registry_type").$type<RegistryType>().notNull(),
    registryUrl: text("registry_url").notNull(),
    username: text("username").notNull(),
    passwordEnc: text("password_enc").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("registry_credentials_org_name_uq").on(t.orgId, t.name)],
);

export const applications = pgTable(
  "applications",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    orgId: uuid("org_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    serverId: uuid("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "restrict" }),
    name: text("name").notNull(),
    workingDirectory: text("working_directory").notNull(),
    deployScript: text("deploy_script").notNull(),
    restartScript: text("restart_script"),
    /** Encrypted JSON object of environment values given to the scripts. */
    envEnc: text("env_enc"),
    /** When each variable was last set (names only; the values are in env_enc). */
    envUpdatedAt: jsonb("env_updated_at").$type<Record<string, string>>(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("applications_org_name_uq").on(t.orgId, t.name)],
);

/** An operation's resume point: see `operations.resume`. */
export interface ResumePoint {
  /** Output events up to this number are stored, and cover the raw output up to `raw`. */
  seq: number;
  /** Raw bytes of each stream, as the host printed them, that the stored events cover. */
  raw: { stdout: number; stderr: number };
  /** Masked bytes of each stream emitted up to `seq`, and stored (within the cap). */
  bytes: { stdout: number; stderr: number };
  stored: { stdout: number; stderr: number };
  truncated: { stdout: boolean; stderr: boolean };
}

export const operations = pgTable(
  "operations",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    orgId: uuid("org_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    keyId: uuid("key_id").references(() => automationKeys.id, { onDelete: "set null" }),
    serverId: uuid("server_id")
      .notNull()
      .references(() => servers.id, { onDelete: "cascade" }),
    applicationId: uuid("application_id").references(() => applications.id, { onDelete: "set null" }),
    credentialId: uuid("credential_id").references(() => registryCredentials.id, { onDelete: "set null" }),
    operationType: text("operation_type").$type<OperationType>().notNull(),
    /** The precise outcome (spec §4); answers also say it in the published status vocabulary. */
    status: text("status").$type<OperationOutcome>().notNull().default("running"),
    /** Command text with token-shaped strings and env values redacted. */
    command: text("command"),
    workingDirectory: text("working_directory"),
    timeoutSeconds: integer("timeout_seconds").notNull(),
    exitCode: integer("exit_code"),
    stdoutBytes: bigint("stdout_bytes", { mode: "number" }).notNull().default(0),
    stderrBytes: bigint("stderr_bytes", { mode: "number" }).notNull().default(0),
    stdoutTruncated: boolean("stdout_truncated").notNull().default(false),
    stderrTruncated: boolean("stderr_truncated").notNull().default(false),
    durationMs: integer("duration_ms"),
    /** The last 64 KiB of each stream (masked), kept for the polling answers. */
    stdoutTail: bytea("stdout_tail"),
    stderrTail: bytea("stderr_tail"),
    /** Set by any instance; the instance running the operation sees it at its next heartbeat. */
    cancelRequestedAt: timestamp("cancel_requested_at", { withTimezone: true }),
    /** Who asked for the cancel (`automation key "deploy" (rca_3kTm9x)`), for the operation's reason. */
    cancelledBy: text("cancelled_by"),
    /** Id the `end` event will carry: every output event id is below it. */
    lastSeq: integer("last_seq").notNull().default(0),
    /** One sentence: why it was cancelled, lost or failed, or timed out (the answers' `reason`). */
    error: text("error"),
    /** Reboots: from the host going down to it answering SSH again with the same host key. */
    downtimeMs: integer("downtime_ms"),
    runId: text("run_id"),
    /** As claimed by the request, or the verified claims of a key minted from an OIDC token (spec §12). */
    runContext: jsonb("run_context").$type<RunContext | VerifiedRunContext>(),
    userAgent: text("user_agent"),
    /** Who started it when no automation key did: `user:<id>` or `integration_key:<id>`. */
    actor: text("actor"),
    /** The commit ref a deploy was asked for (deployment history). */
    commitRef: text("commit_ref"),
    /**
     * Where another instance resumes it (issue 19): its output is stored up to this point, which
     * covers the host's raw output up to these byte offsets. Null when it cannot be attached to again
     * (a reboot, or reattaching is turned off).
     */
    resume: jsonb("resume").$type<ResumePoint>(),
    /** The values masked in its output, sealed with the master key, for an instance taking it over; cleared at its end. */
    maskSealed: text("mask_sealed"),
    /** Instance that runs it (null: handed over, for any instance to take), and its heartbeat. */
    runnerId: text("runner_id"),
    /** `runner` (the instance saw the end) or `reconciler` (settled `lost` because its instance went quiet). */
    settledBy: text("settled_by"),
    heartbeatAt: timestamp("heartbeat_at", { withTimezone: true }),
    createdAt: createdAt(),
    startedAt: timestamp("started_at", { withTimezone: true }),
    completedAt: timestamp("completed_at", { withTimezone: true }),
  },
  (t) => [
    index("operations_org_run_idx").on(t.orgId, t.runId, t.createdAt),
    index("operations_org_created_idx").on(t.orgId, t.createdAt, t.id),
    index("operations_running_idx")
      .on(t.status, t.heartbeatAt)
      .where(sql`status = 'running'`),
  ],
);

/**
 * Deploys of one application run one at a time, in arrival order (`seq`), whichever instance
 * took them: an operation starts when it is the oldest running one of its application here.
 */
export const deployQueue = pgTable(
  "deploy_queue",
  {
    seq: bigserial("seq", { mode: "number" }).primaryKey(),
    applicationId: uuid("application_id")
      .notNull()
      .references(() => applications.id, { onDelete: "cascade" }),
    operationId: uuid("operation_id")
      .notNull()
      .unique()
      .references(() => operations.id, { onDelete: "cascade" }),
    createdAt: createdAt(),
  },
  (t) => [index("deploy_queue_app_idx").on(t.applicationId, t.seq)],
);

export const operationOutput = pgTable(
  "operation_output",
  {
    operationId: uuid("operation_id")
      .notNull()
      .references(() => operations.id, { onDelete: "cascade" }),
    /** Event sequence number: also the SSE event id, so resume is a range query. */
    seq: integer("seq").notNull(),
    stream: text("stream").$type<OutputStream>().notNull(),
    data: bytea("data").notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.operationId, t.seq] })],
);

export const auditEvents = pgTable(
  "audit_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    orgId: uuid("org_id"),
    keyId: uuid("key_id"),
    outcome: text("outcome").notNull(),
    reason: text("reason").notNull(),
    operation: text("operation").$type<OperationType>(),
    serverId: uuid("server_id"),
    credentialId: uuid("credential_id"),
    applicationId: uuid("application_id"),
    operationId: uuid("operation_id"),
    method: text("method"),
    path: text("path"),
    peerIp: text("peer_ip"),
    clientIp: text("client_ip"),
    userAgent: text("user_agent"),
    requestId: text("request_id"),
    runId: text("run_id"),
    /** As claimed by the client: never trusted for decisions. */
    runContextClaimed: jsonb("run_context_claimed"),
    /** The verified claims of the OIDC token the request's key was minted for (spec §12); null otherwise. */
    runContextVerified: jsonb("run_context_verified"),
    /** Identical unauthenticated denials are folded into one row (they must cost no query each). */
    repeatCount: integer("repeat_count").notNull().default(1),
    /** Who made a change (`admin-cli`, later a user or an integration key); null for automation API rows, whose key is `key_id`. */
    actor: text("actor"),
    /** What was changed (`server.add`, `key.revoke`, …); null for automation API decisions. */
    action: text("action"),
    /** A summary of the change: names, scopes, fingerprints; never a secret. */
    details: jsonb("details"),
  },
  (t) => [
    index("audit_events_org_at_idx").on(t.orgId, t.at),
    index("audit_events_key_idx").on(t.keyId, t.at),
    index("audit_events_run_idx").on(t.runId),
  ],
);

export const idempotencyRecords = pgTable(
  "idempotency_records",
  {
    keyId: uuid("key_id")
      .notNull()
      .references(() => automationKeys.id, { onDelete: "cascade" }),
    idempotencyKey: text("idempotency_key").notNull(),
    orgId: uuid("org_id").notNull(),
    requestHash: text("request_hash").notNull(),
    operationId: uuid("operation_id"),
    /** Status and body of the first answer, replayed for the same key and body. */
    responseStatus: integer("response_status"),
    responseBody: jsonb("response_body"),
    createdAt: createdAt(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.keyId, t.idempotencyKey] }),
    index("idempotency_expires_idx").on(t.expiresAt),
  ],
);

/** Fixed-window request counters shared by every instance (see access/rate-limit.ts). */
export const rateLimitCounters = pgTable("rate_limit_counters", {
  key: text("key").primaryKey(),
  points: integer("points").notNull().default(0),
  expire: timestamp("expire", { withTimezone: true }),
});

/** People who sign in (spec §11): one organisation and one role each. */
export const users = pgTable(
  "users",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    orgId: uuid("org_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    /** Lower-cased; unique among people not removed. */
    email: text("email").notNull(),
    role: text("role").$type<Role>().notNull(),
    /** `scrypt$N$r$p$salt$hash` (see people/passwords.ts). */
    passwordHash: text("password_hash").notNull(),
    /** Set for a one-time password until its owner chooses one. */
    mustChangePassword: boolean("must_change_password").notNull().default(false),
    createdAt: createdAt(),
    /** Removed people keep their row (audit rows name them); they cannot sign in, and their keys stop. */
    removedAt: timestamp("removed_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("users_email_live_uq")
      .on(t.email)
      .where(sql`removed_at is null`),
    index("users_org_idx").on(t.orgId),
  ],
);

/** Signed-in browsers: the cookie holds a random token, the row its hash. */
export const sessions = pgTable(
  "sessions",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tokenHash: bytea("token_hash").notNull().unique(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    createdAt: createdAt(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }).notNull().defaultNow(),
    /** Absolute end, whatever the activity. */
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    clientIp: text("client_ip"),
    userAgent: text("user_agent"),
  },
  (t) => [index("sessions_user_idx").on(t.userId)],
);

/** `rk_t_` keys for scripts and tools (spec §11): an ACL, never more than their creator's role. */
export const integrationKeys = pgTable(
  "integration_keys",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    orgId: uuid("org_id")
      .notNull()
      .references(() => organisations.id, { onDelete: "cascade" }),
    /** The person who made it; null when reoclo-admin made it for the organisation. */
    createdBy: uuid("created_by").references(() => users.id, { onDelete: "cascade" }),
    /** The integration key it was made with, if any: revoking that key revokes this one too. */
    createdByKey: uuid("created_by_key").references((): AnyPgColumn => integrationKeys.id, {
      onDelete: "set null",
    }),
    label: text("label").notNull(),
    keyHash: bytea("key_hash").notNull().unique(),
    prefix: text("prefix").notNull(),
    preset: text("preset").$type<IntegrationKeyPreset>().notNull(),
    permissions: jsonb("permissions").$type<Acl>().notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    createdAt: createdAt(),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    lastUsedIp: text("last_used_ip"),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [index("integration_keys_org_idx").on(t.orgId)],
);
