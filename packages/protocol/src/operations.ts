// Operations as the polling clients see them (spec §3, §4, §6).
import { z } from "zod";
import { verifiedRunContextSchema } from "./oidc.js";
import { nullAsAbsent } from "./common.js";
import {
  CURSOR_MAX_CHARS,
  DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE,
  RUN_CONTEXT_VALUE_MAX_CHARS,
  RUN_ID_MAX_CHARS,
} from "./limits.js";

export const OPERATION_TYPES = [
  "exec",
  "deploy",
  "restart",
  "reboot",
  "registry_login",
  "registry_logout",
] as const;
const operationTypeSchema = z.enum(OPERATION_TYPES);
export type OperationType = z.infer<typeof operationTypeSchema>;

/**
 * The wire `status` is the published vocabulary (spec §4): the published CLI polls until one of
 * `completed`, `failed` or `timeout`, so any other value would hang it. `running` also covers
 * "queued". The precise end is `outcome`.
 */
export const OPERATION_STATUSES = ["running", "completed", "failed", "timeout"] as const;
export const operationStatusSchema = z.enum(OPERATION_STATUSES);
type OperationStatus = z.infer<typeof operationStatusSchema>;

export const TERMINAL_STATUSES = ["completed", "failed", "timeout"] as const;
export const terminalStatusSchema = z.enum(TERMINAL_STATUSES);
export type TerminalStatus = z.infer<typeof terminalStatusSchema>;

export function isTerminalStatus(status: string): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/**
 * How an operation ended, precisely (spec §4): `completed` (the process exited, any exit code),
 * `timeout` (killed at timeout_seconds, 124), `cancelled` (130), `failed` (could not be run, 255),
 * `lost` (the connection or the instance running it went away; outcome unknown, 255).
 */
export const OPERATION_OUTCOMES = ["running", "completed", "timeout", "cancelled", "failed", "lost"] as const;
export const operationOutcomeSchema = z.enum(OPERATION_OUTCOMES);
export type OperationOutcome = z.infer<typeof operationOutcomeSchema>;

export const TERMINAL_OUTCOMES = ["completed", "timeout", "cancelled", "failed", "lost"] as const;
export const terminalOutcomeSchema = z.enum(TERMINAL_OUTCOMES);
export type TerminalOutcome = z.infer<typeof terminalOutcomeSchema>;

export function isTerminalOutcome(outcome: string): outcome is TerminalOutcome {
  return (TERMINAL_OUTCOMES as readonly string[]).includes(outcome);
}

/**
 * An answer of a service that predates `outcome` (or of a foreign one) said the precise end in
 * `status`: read it as this version's answer, status in the published vocabulary and the end in
 * `outcome` (also in a nested `result`). Anything else passes unchanged.
 */
export function withOutcome(value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const v = value as Record<string, unknown>;
  if (v.outcome !== undefined || typeof v.status !== "string") return value;
  if (!(OPERATION_OUTCOMES as readonly string[]).includes(v.status)) return value;
  const outcome = v.status as OperationOutcome;
  const out: Record<string, unknown> = { ...v, status: statusOfOutcome(outcome), outcome };
  if (outcome !== "running") {
    out.reason ??= null;
    if (typeof v.result === "object" && v.result !== null) out.result = { outcome, ...v.result };
  }
  return out;
}

/** The wire status of an outcome: itself where the names agree, `failed` for cancelled and lost. */
export function statusOfOutcome(outcome: TerminalOutcome): TerminalStatus;
export function statusOfOutcome(outcome: OperationOutcome): OperationStatus;
export function statusOfOutcome(outcome: OperationOutcome): OperationStatus {
  return outcome === "cancelled" || outcome === "lost" ? "failed" : outcome;
}

export const REGISTRY_TYPES = [
  "docker_hub",
  "ghcr",
  "aws_ecr",
  "google_artifact_registry",
  "azure_acr",
  "harbor",
  "generic",
] as const;
export const registryTypeSchema = z.enum(REGISTRY_TYPES);
export type RegistryType = z.infer<typeof registryTypeSchema>;

const RUN_CONTEXT_KEYS = ["provider", "repository", "workflow", "trigger", "actor", "sha", "ref"] as const;
type RunContextKey = (typeof RUN_CONTEXT_KEYS)[number];

/**
 * One `run_context` value. It is only metadata for the audit log, so it bends rather than
 * refuses: null means absent, numbers and booleans become strings, long values are cut.
 */
function runContextValue(key: RunContextKey) {
  return nullAsAbsent(
    z
      .union([z.string(), z.number(), z.boolean()], { error: `run_context.${key} must be a string.` })
      // NUL cannot be stored as text or jsonb, and a lone surrogate not as jsonb: both bend too.
      .transform((value) =>
        String(value).replaceAll("\u0000", "").slice(0, RUN_CONTEXT_VALUE_MAX_CHARS).toWellFormed(),
      ),
  );
}

/** Where an operation came from (`provider` is "github_actions" for the published actions). */
export const runContextSchema = z
  .object(
    {
      provider: runContextValue("provider"),
      repository: runContextValue("repository"),
      workflow: runContextValue("workflow"),
      trigger: runContextValue("trigger"),
      actor: runContextValue("actor"),
      sha: runContextValue("sha"),
      ref: runContextValue("ref"),
    },
    { error: "run_context must be an object." },
  )
  // Drops keys that were null, so the stored object holds strings only.
  .transform((context) => {
    const clean: Partial<Record<RunContextKey, string>> = {};
    for (const key of RUN_CONTEXT_KEYS) {
      const value = context[key];
      if (value !== undefined) clean[key] = value;
    }
    return clean;
  });
export type RunContext = z.output<typeof runContextSchema>;

/** `run_context` of a request body: optional, null tolerated. */
export const optionalRunContextSchema = nullAsAbsent(runContextSchema).describe(
  "Where the request comes from: provider, repository, workflow, trigger, actor, sha, ref; any may be absent.",
);

/** Outcome of a finished operation; the same object is the SSE `end` event (spec §6). */
export const operationResultSchema = z.object({
  /** The precise end (spec §4); the answers' `status` says it in the published vocabulary. */
  outcome: terminalOutcomeSchema,
  /**
   * One sentence saying why it was cancelled (and by whom: a key, a shutdown), lost or failed,
   * or why it timed out; null when it completed. The same sentence ends `stderr`.
   */
  reason: z.string().nullable().default(null),
  exit_code: z.number().int(),
  /** The last 64 KiB (OUTPUT_TAIL_BYTES) of the stream. */
  stdout: z.string(),
  stderr: z.string(),
  /** Wall time of the command on the host. */
  duration_ms: z.number().int().nonnegative(),
  /** True when `stdout` is not the whole output of the stream (tail cut or cap reached). */
  stdout_truncated: z.boolean().default(false),
  stderr_truncated: z.boolean().default(false),
  /** Ours, reboots only: from the host going down to it answering SSH again with the same host key. */
  downtime_ms: z.number().int().nonnegative().optional(),
});
export type OperationResult = z.output<typeof operationResultSchema>;

const isoTimestamp = z.iso.datetime({ offset: true });

/** `GET /operations/{operation_id}` (spec §3); `result` is present once the status is terminal. */
const operationObjectSchema = z.object({
  operation_id: z.string(),
  operation_type: operationTypeSchema,
  server_id: z.string(),
  server_name: z.string(),
  status: operationStatusSchema,
  /** Present on every answer: `running`, or how it ended. */
  outcome: operationOutcomeSchema,
  /** Why it was cancelled, lost or failed (or timed out); null while running or when completed. */
  reason: z.string().nullable().default(null),
  result: operationResultSchema.optional(),
  run_id: z.string().nullable(),
  /** As the request claimed it, or the verified claims of a key minted from an OIDC token (`verified: true`). */
  run_context: z
    .union([verifiedRunContextSchema, runContextSchema])
    .nullish()
    .transform((value) => value ?? null),
  /** ISO-8601 UTC, e.g. `2025-01-31T12:00:00.000Z`. */
  started_at: isoTimestamp,
  completed_at: isoTimestamp.nullable(),
});
/** The same, reading an older service's answer too (see `withOutcome`). */
export const operationSchema = z.preprocess(withOutcome, operationObjectSchema);
export type Operation = z.output<typeof operationSchema>;

/** `POST /operations/{operation_id}/cancel` answers the operation as it now stands; repeating it is harmless. */
export const cancelOperationResponseSchema = operationSchema;

/** `GET /operations?run_id=…&limit=…&cursor=…` query (spec §6); query values arrive as strings. */
export const operationListQuerySchema = z.object({
  run_id: z
    .string({ error: "run_id is required." })
    .min(1, { error: "run_id is required." })
    .max(RUN_ID_MAX_CHARS, { error: `run_id must be at most ${RUN_ID_MAX_CHARS} characters long.` })
    .refine((value) => !value.includes("\u0000"), { error: "run_id must not contain a NUL character." })
    .describe("The CI run whose operations to list."),
  /** Opaque: the `next_cursor` of the previous page, passed back unchanged. */
  cursor: z
    .string()
    .min(1, { error: "cursor must be the next_cursor of a previous page." })
    .max(CURSOR_MAX_CHARS, { error: "cursor must be the next_cursor of a previous page." })
    .optional()
    .describe("The next_cursor of the previous page, unchanged."),
  limit: z.coerce
    .number({ error: "limit must be a whole number." })
    .int({ error: "limit must be a whole number." })
    .min(1, { error: "limit must be at least 1." })
    .max(MAX_PAGE_SIZE, { error: `limit must be at most ${MAX_PAGE_SIZE}.` })
    .default(DEFAULT_PAGE_SIZE)
    .describe("How many operations per page."),
});

/** Newest first; `next_cursor` is opaque and null on the last page. */
export const operationListResponseSchema = z.object({
  items: z.array(operationSchema),
  next_cursor: z.string().nullable(),
});
export type OperationListResponse = z.output<typeof operationListResponseSchema>;
